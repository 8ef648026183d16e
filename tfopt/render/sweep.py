"""A sweep as text (stderr), Markdown (CI summaries; every cell escaped) and JUnit XML (a suite per candidate,
a case per gate, an error case for a candidate that did not run)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .junit import junit_xml
from .markdown import cell, report_section, table
from .tables import fmt_bytes, text_table

if TYPE_CHECKING:
    from ..sweep.result import CandidateRow, SweepResult

HEADER = ("candidate", "recipe", "status", "size", "gzip", "p50 ms", "quality", "gates", "front", "")
METRIC_NAMES = {"accuracy": "accuracy", "agreement": "agreement", "sqnr_db": "SQNR dB"}


def quality_text(value: float | None, metric: str) -> str:
    if value is None:
        return "-"
    return f"{value:.1f} dB" if metric == "sqnr_db" else f"{value * 100:.2f}%"


def _row(r: CandidateRow, result: SweepResult) -> tuple[str, ...]:
    mark = "chosen" if r.name == result.chosen else ("closest" if r.name == result.closest else "")
    if not r.ran:
        return (r.name, r.summary, "ERROR", "-", "-", "-", "-", "-", "", mark)
    size = r.report.sizes.output
    v = r.report.verification
    gates = f"{v.gates_evaluated - len(r.failed_gates())}/{v.gates_evaluated}" if v else "-"
    p50 = f"{r.latency.p50_ms:.3f}" if r.latency else "-"
    return (r.name, r.summary, r.status, fmt_bytes(size.bytes), fmt_bytes(size.gzip_bytes), p50,
            quality_text(r.quality(result.metric), result.metric), gates, "*" if r.pareto else "", mark)


def rows(result: SweepResult) -> list[tuple[str, ...]]:
    b = result.baseline
    size = b.report.sizes.output
    base = ("float32 baseline", "the original, converted", "reference", fmt_bytes(size.bytes),
            fmt_bytes(size.gzip_bytes), f"{b.latency.p50_ms:.3f}" if b.latency else "-",
            quality_text(b.quality, result.metric), "-", "", "")
    return [_row(r, result) for r in result.rows] + [base]


def header(result: SweepResult) -> tuple[str, ...]:
    return HEADER[:6] + (METRIC_NAMES[result.metric],) + HEADER[7:]


def verdict(result: SweepResult) -> str:
    if result.chosen:
        row = result.row(result.chosen)
        return (f"chosen: {row.name} (lowest {result.objective} among the {sum(r.passed for r in result.rows)} "
                f"candidate(s) that passed every gate) -> {result.output}")
    return "no candidate passed: " + "; ".join(result.failures)


def summary(result: SweepResult) -> str:
    """The table printed on stderr after a sweep, errors and the verdict."""
    lines = ["", f"sweep of {len(result.rows)} candidates, objective {result.objective} "
                 f"(front: * = on the Pareto front of {result.objective} and {METRIC_NAMES[result.metric]}):"]
    lines += ["  " + line for line in text_table(header(result), rows(result))]
    lines += [f"  {r.name}: Error: {r.error}" for r in result.rows if r.error]
    lines += [f"  {r.name}: {f}" for r in result.rows if r.ran and not r.passed for f in r.report.failures]
    return "\n".join(lines + [verdict(result)])


def markdown(result: SweepResult) -> str:
    title = f"✅ chose `{cell(result.chosen)}`" if result.chosen else "❌ no candidate passed"
    out = [f"# tfopt sweep — {title}", "",
           f"Objective: **{result.objective}**; quality: **{METRIC_NAMES[result.metric]}**; front: candidates no "
           "other beats on both.", ""]
    out += table(header(result), rows(result)) + [""]
    out += [f"- **{cell(r.name)}**: Error: {cell(r.error)}" for r in result.rows if r.error]
    out += [f"- **{cell(f)}**" for f in result.failures]
    chosen = result.row(result.chosen or result.closest)
    if chosen is not None and chosen.report is not None:
        out += ["", f"## {'Chosen' if result.chosen else 'Closest'}: {cell(chosen.name)}", ""]
        out += report_section(chosen.report, level=3)
    return "\n".join(out).rstrip() + "\n"


def junit(result: SweepResult) -> str:
    suites = [(r.name, r.report if r.ran else None, r.error) for r in result.rows]
    return junit_xml([s[1] for s in suites if s[1] is not None], suites=suites)
