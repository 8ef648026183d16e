"""Output safety: atomic writes, and refusing to overwrite an input."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from .errors import OutputError


def write_atomic(path: str | Path, data: bytes | str) -> Path:
    """Write via a temp file in the same folder + os.replace: readers never see half a file."""
    path = Path(path)
    if path.is_dir():
        raise OutputError(f"output path {path} is a directory: expected a file path")
    if not path.parent.is_dir():
        raise OutputError(f"cannot write {path}: folder {path.parent} does not exist")
    payload = data.encode() if isinstance(data, str) else data
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(payload)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


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


def refuse_inputs(outputs: dict[str, str | None], inputs: dict[str, str | None]) -> None:
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


def refuse_clashes(outputs: dict[str, str | None]) -> None:
    """Raise OutputError when two outputs are one file or an output's folder does not exist (before any work)."""
    given = [(label, path) for label, path in outputs.items() if path]
    for i, (label, path) in enumerate(given):
        if not Path(path).resolve().parent.is_dir():
            raise OutputError(f"cannot write {label} {path}: folder {Path(path).parent} does not exist")
        for other_label, other in given[:i]:
            if same_path(path, other):
                raise OutputError(f"{label} and {other_label} are the same file ({path}): choose distinct output paths")
