"""Markdown for CI job summaries and PR comments: GitHub-flavoured tables, every cell escaped."""

from __future__ import annotations

from pathlib import Path

from ..report import Report
from .tables import (CHANNEL_HEADER, GATE_HEADER, METRIC_HEADER, SIZE_HEADER, SKIPPED_HEADER, SLIM_HEADER, channel_rows,
                     gate_rows, metric_rows, size_rows, skipped_rows, slim_rows, slim_section)


def cell(value: object) -> str:
    """One table cell: pipes, backslashes and line breaks escaped so the row keeps its columns."""
    text = str(value).replace("\\", "\\\\").replace("|", "\\|")
    return " ".join(text.split())


def table(header: tuple, rows: list[tuple]) -> list[str]:
    line = lambda r: "| " + " | ".join(cell(c) for c in r) + " |"  # noqa: E731
    return [line(header), "|" + "---|" * len(header)] + [line(r) for r in rows]


def status(report: Report) -> str:
    if report.verification is None:
        return "⚠️ not verified"
    return "✅ passed" if report.ok else "❌ failed"


def title(report: Report) -> str:
    return Path(report.output).name if report.output else report.model.path


def report_section(report: Report, level: int = 2) -> list[str]:
    out = [f"{'#' * level} `{cell(title(report))}` — {cell(report.mode)} — {status(report)}", ""]
    out += table(SIZE_HEADER, size_rows(report))
    v = report.verification
    if v:
        out += ["", f"Verified on {v.samples} samples ({v.gates_evaluated} gates evaluated).", ""]
        out += table(METRIC_HEADER, metric_rows(report)) + [""] + table(GATE_HEADER, gate_rows(report))
    skipped = skipped_rows(report.stages)
    if skipped:
        out += ["", "Layers the stages left alone:", ""] + table(SKIPPED_HEADER, skipped)
    slim = slim_section(report)
    if slim is not None:
        out += ["", "Slimming: the original and the slimmed model:", ""] + table(SLIM_HEADER, slim_rows(slim))
        out += ["", f"_{cell(slim.latency_note)}_"] if slim.latency_note else []
        out += ["", "Channels per layer:", ""] + table(CHANNEL_HEADER, channel_rows(slim))
    if report.failures:
        out += [""] + [f"- **{cell(f)}**" for f in report.failures]
    if report.failed_output:
        out += ["", f"The model that missed its gates was written to `{cell(report.failed_output)}`."]
    return out + [""]


def markdown(reports: list[Report]) -> str:
    """A Markdown summary of one or more runs."""
    out = ["# tfopt report", ""]
    for r in reports:
        out += report_section(r)
    return "\n".join(out)
