"""The ``Report`` of one run, and its renderings: JSON (versioned schema), text, Markdown.

JSON schema ``tfopt.report/1`` (top-level keys; documented in README.md):
``schema, ok, exit_code, recipe, model, data, output, mode, io_types, sizes, timings,
verification, stages, notes, versions``.
"""

from __future__ import annotations

import gzip
import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

SCHEMA = "tfopt.report/1"


def size_of(data: bytes | Path) -> dict[str, int]:
    """Bytes and gzip bytes (level 9, fixed mtime) of a file, folder or buffer."""
    if isinstance(data, Path):
        files = sorted(p for p in data.rglob("*") if p.is_file()) if data.is_dir() else [data]
        data = b"".join(p.read_bytes() for p in files)
    return {"bytes": len(data), "gzip_bytes": len(gzip.compress(data, compresslevel=9, mtime=0))}


@dataclass
class Report:
    recipe: dict
    model: dict
    mode: str
    output: str | None
    data: dict = field(default_factory=dict)
    io_types: dict[str, str] = field(default_factory=dict)
    sizes: dict[str, Any] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    verification: dict | None = None
    stages: list[dict] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    versions: dict[str, str] = field(default_factory=dict)
    schema: str = SCHEMA

    @property
    def failures(self) -> list[str]:
        return list(self.verification["failures"]) if self.verification else []

    @property
    def ok(self) -> bool:
        return not self.failures

    @property
    def exit_code(self) -> int:
        return 0 if self.ok else 3

    def to_dict(self) -> dict:
        d = asdict(self)
        d["ok"], d["exit_code"] = self.ok, self.exit_code
        return {"schema": d.pop("schema"), "ok": d.pop("ok"), "exit_code": d.pop("exit_code"), **d}

    def to_json(self) -> str:
        return json.dumps(finite(self.to_dict()), indent=2, allow_nan=False, default=_json_default) + "\n"


def reports_json(reports: list["Report"]) -> str:
    """One JSON document for one report, a JSON list for several."""
    if len(reports) == 1:
        return reports[0].to_json()
    docs = [finite(r.to_dict()) for r in reports]
    return json.dumps(docs, indent=2, allow_nan=False, default=_json_default) + "\n"


def finite(value: Any) -> Any:
    """JSON has no Infinity/NaN: they become null (an SQNR of null means identical outputs)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite(v) for v in value]
    return value


def _json_default(o: Any) -> Any:
    if hasattr(o, "item"):
        return o.item()
    return str(o)


def _fmt_bytes(n: int) -> str:
    return f"{n / 1024:,.1f} KiB" if n >= 1024 else f"{n} B"


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{x * 100:.2f}%"


def _num(x: float | None, spec: str = ".4f") -> str:
    return "-" if x is None else format(x, spec)


def size_rows(report: Report) -> list[tuple[str, str, str, str]]:
    rows = []
    base = report.sizes.get("float32_tflite")
    for key, label in (("input", "input model"), ("float32_tflite", "float32 TFLite"), ("output", "output")):
        s = report.sizes.get(key)
        if s:
            ratio = f"{s['bytes'] / base['bytes']:.3f}x" if base else "-"
            rows.append((label, _fmt_bytes(s["bytes"]), _fmt_bytes(s["gzip_bytes"]), ratio))
    return rows


def metric_rows(report: Report) -> list[tuple[str, ...]]:
    if not report.verification:
        return []
    rows = []
    for m in report.verification["outputs"]:
        rows.append(
            (
                m["name"],
                _pct(m["accuracy_reference"]),
                _pct(m["accuracy_tflite"]),
                "-" if m["accuracy_drop"] is None else f"{m['accuracy_drop'] * 100:+.2f}",
                _pct(m["agreement"]),
                _num(m["max_abs_error"]),
                _num(m["cosine"], ".5f"),
                _num(m["sqnr_db"], ".1f"),
            )
        )
    return rows


STAGE_HEADER = ("stage", "scheme", "target", "epochs", "sparsity", "max unique/kernel", "gzip", "accuracy", "agreement")


def stage_rows(report: Report) -> list[tuple[str, ...]]:
    rows = []
    for s in report.stages:
        layers = s.get("layers") or {}
        unique = max((v.get("unique_values", 0) for v in layers.values()), default=None)
        rows.append(
            (
                s.get("kind", "?"),
                s.get("scheme") or s.get("pattern") or s.get("init") or "-",
                s.get("target", "-"),
                str(s.get("epochs", "-")),
                _pct(s.get("kernel_sparsity")),
                "-" if unique is None else str(unique),
                _fmt_bytes(s["gzip_bytes"]) if "gzip_bytes" in s else "-",
                _pct(s.get("accuracy")),
                _pct(s.get("agreement")),
            )
        )
    return rows


METRIC_HEADER = ("output", "acc (ref)", "acc (tflite)", "drop (pts)", "agreement", "max |err|", "cosine", "SQNR dB")
SIZE_HEADER = ("model", "size", "gzip", "vs float32")


def _table(header: tuple, rows: list[tuple]) -> list[str]:
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows)]
    line = lambda r: "  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip()  # noqa: E731
    return [line(header), line(tuple("-" * w for w in widths))] + [line(r) for r in rows]


def summary(report: Report) -> str:
    """Human summary for stderr."""
    out = [f"tfopt: {report.model.get('path')} -> {report.output or '(not written)'}  [{report.mode}]"]
    if report.io_types:
        out.append("io types: " + ", ".join(f"{k}={v}" for k, v in report.io_types.items()))
    out += [""] + _table(SIZE_HEADER, size_rows(report))
    if report.verification:
        v = report.verification
        out += ["", f"verification on {v['samples']} samples:"] + _table(METRIC_HEADER, metric_rows(report))
    if report.stages:
        out += ["", "fine-tuning stages (measured in their TFLite export):"] + _table(STAGE_HEADER, stage_rows(report))
        for stage in report.stages:
            if stage.get("skipped_layers"):
                out.append(f"  {stage.get('kind')}: skipped layers {stage['skipped_layers']}")
    out.append("")
    out.append("timings: " + ", ".join(f"{k} {v:.2f}s" for k, v in report.timings.items()))
    for note in report.notes:
        out.append(f"note: {note}")
    if report.verification is None:
        out.append("verification: skipped (--no-verify)")
    elif report.ok:
        out.append("verification: PASSED")
    else:
        out += ["verification: FAILED"] + [f"  - {f}" for f in report.failures]
    return "\n".join(out)


def markdown(reports: list[Report]) -> str:
    """A Markdown summary (CI job summaries, PR comments) of one or more runs."""
    out = ["# tfopt report", ""]
    for r in reports:
        status = "✅ passed" if r.ok else ("⚠️ not verified" if r.verification is None else "❌ failed")
        out += [f"## `{Path(r.output).name if r.output else r.model.get('path')}` — {r.mode} — {status}", ""]
        out += _md_table(SIZE_HEADER, size_rows(r))
        if r.verification:
            out += ["", f"Verified on {r.verification['samples']} samples.", ""]
            out += _md_table(METRIC_HEADER, metric_rows(r))
        if r.failures:
            out += [""] + [f"- **{f}**" for f in r.failures]
        out.append("")
    return "\n".join(out)


def _md_table(header: tuple, rows: list[tuple]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)] + [
        "| " + " | ".join(str(c) for c in row) + " |" for row in rows
    ]
