"""Files: atomic writes, output-path checks made before any work, and sizes (bytes and gzip bytes).

    check_outputs({"-o": "out/m.tflite", "--report": "out/r.json"}, inputs={"model": "m.h5"})
    write_atomic("out/m.tflite", data)       # temp file in the same folder + os.replace
    size_of(data).gzip_bytes
"""

from __future__ import annotations

import errno
import gzip
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from .errors import OutputError, WriteError

_REASONS = {errno.EROFS: "read-only file system", errno.EACCES: "permission denied", errno.EPERM: "permission denied",
            errno.ENOSPC: "no space left on device", errno.EDQUOT: "disk quota exceeded",
            errno.ENAMETOOLONG: "file name too long"}


@dataclass(frozen=True)
class Size:
    """Bytes and gzip bytes (level 9, fixed mtime: deterministic) of a file, folder or buffer."""

    bytes: int
    gzip_bytes: int

    def to_dict(self) -> dict[str, int]:
        return {"bytes": self.bytes, "gzip_bytes": self.gzip_bytes}


def size_of(data: bytes | Path) -> Size:
    if isinstance(data, Path):
        files = sorted(p for p in data.rglob("*") if p.is_file()) if data.is_dir() else [data]
        data = b"".join(p.read_bytes() for p in files)
    return Size(len(data), len(gzip.compress(data, compresslevel=9, mtime=0)))


def reason(e: OSError) -> str:
    """A short, user-facing reason for an OSError."""
    return _REASONS.get(e.errno, e.strerror or type(e).__name__)


def write_atomic(path: str | Path, data: bytes | str) -> Path:
    """Write via a temp file in the same folder + os.replace: readers never see half a file."""
    path = Path(path)
    _check_target(path, "output")
    payload = data.encode() if isinstance(data, str) else data
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as e:
        raise WriteError(f"cannot write {path}: {reason(e)}") from e
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(payload)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except OSError as e:
        Path(tmp).unlink(missing_ok=True)
        raise WriteError(f"cannot write {path}: {reason(e)}; nothing was written there") from e
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _check_target(path: Path, label: str) -> None:
    if path.is_dir():
        raise OutputError(f"cannot write {label} {path}: it is a directory, expected a file path")
    if not path.parent.is_dir():
        raise OutputError(f"cannot write {label} {path}: folder {path.parent} does not exist")


def probe_writable(path: Path, label: str) -> None:
    """Create and remove a temporary file beside ``path``: the folder really takes writes."""
    _check_target(path, label)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".probe", dir=path.parent)
    except OSError as e:
        raise OutputError(f"cannot write {label} {path}: {reason(e)}") from e
    os.close(fd)
    os.unlink(tmp)


def same_path(a: str | Path, b: str | Path) -> bool:
    a, b = Path(a).resolve(), Path(b).resolve()
    if a == b:
        return True
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def inside(child: str | Path, parent: str | Path) -> bool:
    child, parent = Path(child).resolve(), Path(parent).resolve()
    return parent.is_dir() and (parent == child or parent in child.parents)


def refuse_inputs(outputs: dict[str, str | Path | None], inputs: dict[str, str | Path | None]) -> None:
    """Raise OutputError if any output path is (or lies inside) an input."""
    for out_label, out in outputs.items():
        if not out:
            continue
        for in_label, inp in inputs.items():
            if inp and (same_path(out, inp) or inside(out, inp)):
                raise OutputError(
                    f"refusing to write {out_label} {out}: it is the {in_label} ({inp}); "
                    "inputs are never overwritten, choose another output path"
                )


def check_outputs(outputs: dict[str, str | Path | None], inputs: dict[str, str | Path | None]) -> None:
    """Every output path, before any work: not an input, distinct, its folder exists and takes writes."""
    refuse_inputs(outputs, inputs)
    given = [(label, Path(path)) for label, path in outputs.items() if path]
    for i, (label, path) in enumerate(given):
        for other_label, other in given[:i]:
            if same_path(path, other):
                raise OutputError(f"{label} and {other_label} are the same file ({path}): choose distinct output paths")
        probe_writable(path, label)


def failed_path(path: str | Path) -> Path:
    """Where a model that missed a gate is written: ``<stem>.failed.tflite`` beside the output path."""
    path = Path(path)
    return path.with_name(f"{path.stem}.failed{path.suffix or '.tflite'}")
