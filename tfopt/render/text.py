"""The human summary of a run (what ``tfopt convert`` / ``verify`` print on stderr)."""

from __future__ import annotations

from ..report import Report
from .tables import (CHANNEL_HEADER, GATE_HEADER, METRIC_HEADER, SIZE_HEADER, SKIPPED_HEADER, SLIM_HEADER, STAGE_HEADER,
                     channel_rows, gate_rows, metric_rows, size_rows, skipped_rows, slim_rows, slim_section,
                     stage_rows, text_table)


def summary(report: Report) -> str:
    """Sizes, verification metrics and gates, stages, timings, notes and the verdict."""
    if report.mode == "verify" or report.recipe is None:
        head = f"tfopt verify: {report.output} against {report.model.path}"
    else:
        head = f"tfopt: {report.model.path} -> {report.output or '(not written)'}  [{report.mode}]"
    out = [head]
    if report.io_types:
        out.append("io types: " + ", ".join(f"{k}={v}" for k, v in report.io_types.items()))
    rows = size_rows(report)
    if rows:
        out += [""] + text_table(SIZE_HEADER, rows)
    v = report.verification
    if v:
        out += ["", f"verification on {v.samples} samples:"] + text_table(METRIC_HEADER, metric_rows(report))
        out += ["", f"gates ({v.gates_evaluated} evaluated):"] + text_table(GATE_HEADER, gate_rows(report))
        out += [f"  {o.name}: {o.kind.kind} ({o.kind.source})" for o in v.outputs]
    if report.stages:
        out += ["", "fine-tuning stages (measured in their TFLite export):"] + text_table(STAGE_HEADER, stage_rows(report))
        skipped = skipped_rows(report.stages)
        if skipped:
            out += ["", "layers the stages left alone:"] + text_table(SKIPPED_HEADER, skipped)
    analysis, auto = report.extra.get("analysis"), report.extra.get("auto")
    if analysis is not None and hasattr(analysis, "table"):
        out += ["", "per-layer int8 error (ranked by the effect of keeping only that layer in float):",
                analysis.table(top=15)]
    if auto is not None and hasattr(auto, "lines"):
        out += [""] + auto.lines()
    slim = slim_section(report)
    if slim is not None:
        out += ["", "slim: the original and the slimmed model:"] + text_table(SLIM_HEADER, slim_rows(slim))
        out += [f"  {slim.latency_note}"] if slim.latency_note else []
        out += ["", "slim: channels per layer:"] + text_table(CHANNEL_HEADER, channel_rows(slim))
    out.append("")
    out.append("timings: " + ", ".join(f"{k} {t:.2f}s" for k, t in report.timings.items()))
    out += [f"note: {n}" for n in report.notes + (v.notes if v else [])]
    out.append(verdict(report))
    return "\n".join(out)


def verdict(report: Report) -> str:
    if "worker" in report.extra:
        return "verification: by the chief worker"
    if report.verification is None:
        return "verification: skipped (--no-verify)"
    if report.ok:
        return f"verification: PASSED ({report.verification.gates_evaluated} gates)"
    lines = ["verification: FAILED"] + [f"  - {f}" for f in report.failures]
    if report.failed_output:
        lines.append(f"  the model was written to {report.failed_output}, not to the output path")
    return "\n".join(lines)
