"""One self-contained HTML file per report (``--html FILE``): inline CSS and inline SVG plots, no script, no
external URL — it works offline, attached to a CI run or mailed.

A run's page: the summary and verdict, sizes, per-output metrics and gates, per-layer quantization error
(when the run analysed it: ``Report.extra["analysis"]``), bytes per layer (float32 vs stored), the
fine-tuning curves of each stage, notes and timings.  A sweep's page: the candidate table, the Pareto
scatters (size vs quality, latency vs quality) with the chosen point starred, then the chosen (or
closest) candidate's page.  Every text is escaped.

``extra["analysis"]`` is rendered when it is (or ``to_dict()``s to) ``{"layers": [{"layer": NAME, <metric>:
number, ...}, ...]}`` or such a list; the plot shows the first of ``PLOTTED_ERRORS`` the rows carry.
"""

from __future__ import annotations

import html
import math
from typing import TYPE_CHECKING, Any

from ..report import RESTORED_EPOCH as RESTORED
from ..report import Report
from . import plots
from .markdown import status as run_status
from .markdown import title as report_title
from .tables import (CHANNEL_HEADER, GATE_HEADER, METRIC_HEADER, SIZE_HEADER, SLIM_HEADER, STAGE_HEADER, channel_rows,
                     fmt_bytes, gate_rows, metric_rows, size_rows, slim_rows, slim_section, stage_rows)

if TYPE_CHECKING:
    from ..sweep.result import SweepResult

PLOTTED_ERRORS = ("sqnr_db", "rel_error", "rel_l2_error", "error", "mse", "rmse", "mean_abs_error")
CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0 auto;max-width:1100px;padding:1.5em;
color:#1d3557;line-height:1.4}
h1{font-size:1.5em}h2{font-size:1.25em;border-bottom:1px solid #ccd;padding-bottom:.2em;margin-top:1.6em}
h3{font-size:1.05em}table{border-collapse:collapse;margin:.6em 0;font-size:.9em}
th,td{border:1px solid #ccd;padding:.25em .6em;text-align:left;vertical-align:top}th{background:#eef1f6}
td.num{text-align:right;font-variant-numeric:tabular-nums}tr.pass td.result{color:#1b7f3b;font-weight:600}
tr.fail td.result,tr.fail td:first-child{color:#c1121f;font-weight:600}tr.chosen{background:#fff3d6}
.verdict{display:inline-block;padding:.3em .8em;border-radius:4px;font-weight:600}
.verdict.pass{background:#d8f3dc;color:#1b4332}.verdict.fail{background:#ffd6d6;color:#7a0010}
.verdict.none{background:#eee;color:#333}figure.plot{margin:1em 0}figure.plot svg{max-width:100%;height:auto}
figcaption{font-size:.85em;color:#555}code{background:#f1f3f6;padding:0 .2em}ul.notes li{margin:.2em 0}
"""


def esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def page(title: str, body: list[str]) -> str:
    return ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            f"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>{esc(title)}</title>\n"
            f"<style>{CSS}</style>\n</head>\n<body>\n" + "\n".join(body) + "\n</body>\n</html>\n")


def table(header: tuple, rows: list[tuple], row_class=None) -> str:
    head = "".join(f"<th>{esc(h)}</th>" for h in header)
    out = [f"<table>\n<thead><tr>{head}</tr></thead>\n<tbody>"]
    for i, row in enumerate(rows):
        cls = row_class(i, row) if row_class else ""
        cells = "".join(f"<td class=\"{_cell_class(header, j, c)}\">{esc(c)}</td>" for j, c in enumerate(row))
        out.append(f"<tr class=\"{cls}\">{cells}</tr>" if cls else f"<tr>{cells}</tr>")
    return "\n".join(out + ["</tbody>\n</table>"])


def facts_table(pairs: list[tuple[str, str]]) -> str:
    rows = "".join(f"<tr><th>{esc(k)}</th><td>{esc(v)}</td></tr>" for k, v in pairs)
    return f"<table class=\"facts\">\n<tbody>{rows}</tbody>\n</table>"


def _cell_class(header: tuple, j: int, value: Any) -> str:
    if j < len(header) and header[j] == "result":
        return "result"
    text = str(value).replace(",", "").replace("%", "").replace("x", "").split(" ")[0]
    try:
        float(text)
        return "num"
    except ValueError:
        return ""


def figure(svg: str, caption: str) -> str:
    return f"<figure class=\"plot\">\n{svg}\n<figcaption>{esc(caption)}</figcaption>\n</figure>"


def verdict(report: Report) -> tuple[str, str]:
    if report.verification is None:
        return "none", "not verified (--no-verify)"
    if report.ok:
        return "pass", f"PASSED: {report.verification.gates_evaluated} gates on {report.verification.samples} samples"
    return "fail", "FAILED: " + "; ".join(report.failures)


# ------------------------------------------------------------------ one run


def report_sections(report: Report, level: int = 2) -> list[str]:
    """The sections of one run's page (headings from ``level``)."""
    h = f"h{level}"
    css, text = verdict(report)
    facts = [("model", f"{report.model.path} ({report.model.format}, Keras {report.model.keras_version or '?'})"),
             ("output", report.output or "-"), ("mode", report.mode)]
    if report.failed_output:
        facts.append(("written instead to", report.failed_output))
    if report.io_types:
        facts.append(("io types", ", ".join(f"{k}={v}" for k, v in report.io_types.items())))
    if report.data:
        facts.append(("data", f"{report.data.source}: {report.data.eval_samples} evaluation samples, "
                              f"{report.data.calibration_samples} calibration samples"))
    out = [f"<p class=\"verdict {css}\">{esc(text)}</p>", facts_table(facts)]
    if report.sizes:
        out += [f"<{h}>Sizes</{h}>", table(SIZE_HEADER, size_rows(report))]
    out += _verification(report, h)
    out += _analysis(report.extra.get("analysis"), h)
    out += _layers(report, h)
    out += _stages(report, h)
    out += _notes(report, h)
    return out


def _verification(report: Report, h: str) -> list[str]:
    v = report.verification
    if v is None:
        return []
    kinds = "".join(f"<li><code>{esc(o.name)}</code>: {esc(o.kind.kind)} ({esc(o.kind.source)})</li>" for o in v.outputs)
    gate_class = lambda i, row: "pass" if row[-1] == "pass" else ("fail" if row[-1] == "FAIL" else "")  # noqa: E731
    return [f"<{h}>Verification on {v.samples} samples</{h}>", f"<ul>{kinds}</ul>",
            table(METRIC_HEADER, metric_rows(report)), f"<{h}>Gates ({v.gates_evaluated} evaluated)</{h}>",
            table(GATE_HEADER, gate_rows(report), gate_class)]


def _analysis(analysis: Any, h: str) -> list[str]:
    """Per-layer quantization error, when the run analysed it (issue 14's ``extra["analysis"]``)."""
    if hasattr(analysis, "to_dict"):
        analysis = analysis.to_dict()
    layers = analysis.get("layers") if isinstance(analysis, dict) else analysis
    if not isinstance(layers, list) or not layers or not all(isinstance(r, dict) for r in layers):
        return []
    keys = list(dict.fromkeys(k for r in layers for k, v in r.items() if not isinstance(v, (dict, list))))
    rows = [tuple(_fmt(r.get(k)) for k in keys) for r in layers]
    out = [f"<{h}>Quantization error per layer</{h}>", table(tuple(keys), rows)]
    metric = next((m for m in PLOTTED_ERRORS if all(_number(r.get(m)) for r in layers)), None)
    if metric is not None:
        names = [str(r.get("layer", r.get("name", i))) for i, r in enumerate(layers)]
        out.append(figure(plots.bars(names, {metric: [float(r[metric]) for r in layers]}, metric),
                          f"{metric} per layer (the analysis of this run)"))
    return out


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "-" if value is None else str(value)


def _layers(report: Report, h: str) -> list[str]:
    rows = report.layer_sizes
    if not rows:
        return []
    table_rows = [(r.layer, "/".join(d.lower() for d in r.dtypes), fmt_bytes(r.float32_bytes), fmt_bytes(r.bytes),
                   f"{r.ratio:.3f}x" if r.ratio is not None else "-") for r in rows]
    svg = plots.bars([r.layer for r in rows], {"float32": [r.float32_bytes / 1024 for r in rows],
                                               report.mode: [r.bytes / 1024 for r in rows]}, "KiB")
    return [f"<{h}>Size per layer</{h}>", table(("layer", "stored as", "float32", "stored", "ratio"), table_rows),
            figure(svg, "bytes of each layer's weights: in float32 and as stored in the .tflite")]


def _stages(report: Report, h: str) -> list[str]:
    if not report.stages:
        return []
    out = [f"<{h}>Fine-tuning stages</{h}>", table(STAGE_HEADER, stage_rows(report))]
    for s in report.stages:
        series = {k: v for k, v in s.history.items()
                  if k != RESTORED and v and len(v) == s.epochs and all(_number(x) for x in v)}
        kept = f"; the weights of epoch {s.history[RESTORED][0]} kept" if s.history.get(RESTORED) else ""
        if series:
            out.append(figure(plots.curves(series, "epoch", next(iter(series)) if len(series) == 1 else ""),
                              f"{s.label}: {', '.join(series)} per epoch ({s.steps} steps, {s.train_samples} "
                              f"samples{kept})"))
    slim = slim_section(report)
    if slim is not None:
        out += [f"<p>Slimming: the original and the slimmed model ({esc(slim.latency_note)})</p>",
                table(SLIM_HEADER, slim_rows(slim)), "<p>Channels per layer</p>",
                table(CHANNEL_HEADER, channel_rows(slim))]
    return out


def _notes(report: Report, h: str) -> list[str]:
    notes = report.notes + (report.verification.notes if report.verification else [])
    out = [f"<{h}>Notes</{h}>", "<ul class=\"notes\">" + "".join(f"<li>{esc(n)}</li>" for n in notes) + "</ul>"] \
        if notes else []
    timing = ", ".join(f"{k} {t:.2f} s" for k, t in report.timings.items())
    versions = ", ".join(f"{k} {v}" for k, v in report.versions.items())
    return out + [f"<p><small>timings: {esc(timing)}<br>versions: {esc(versions)}</small></p>"]


def report_html(report: Report) -> str:
    """``tfopt convert --html`` / ``tfopt verify --html``: one run's page."""
    return page(f"tfopt — {report_title(report)}", [f"<h1>tfopt: <code>{esc(report_title(report))}</code> — "
                                                   f"{esc(report.mode)}</h1>"] + report_sections(report))


def runs_html(title: str, header: tuple, rows: list[tuple], runs: list[tuple[str, Report | None, str | None]]) -> str:
    """``tfopt run --html``: the summary table, then each recipe's page (or its error)."""
    body = [f"<h1>{esc(title)}</h1>", table(header, rows)]
    for name, report, error in runs:
        body.append(f"<h2>{esc(name)} — {esc(run_status(report) if report else 'error')}</h2>")
        body += report_sections(report, level=3) if report else [f"<p class=\"verdict fail\">Error: {esc(error)}</p>"]
    return page(title, body)


# ------------------------------------------------------------------ sweep


def sweep_html(result: SweepResult) -> str:
    """``tfopt sweep --html``: candidates, Pareto scatters, the chosen candidate's page."""
    from .sweep import METRIC_NAMES, header, rows, verdict as sweep_verdict

    names = [r.name for r in result.rows]
    chosen_class = lambda i, row: ("chosen" if row[0] == result.chosen else "") if i < len(names) else ""  # noqa: E731
    css = "pass" if result.chosen else "fail"
    body = [f"<h1>tfopt sweep: <code>{esc(result.baseline.report.model.path)}</code></h1>",
            f"<p class=\"verdict {css}\">{esc(sweep_verdict(result))}</p>",
            "<h2>Candidates</h2>", table(header(result), rows(result), chosen_class),
            f"<p>Quality is the {esc(METRIC_NAMES[result.metric])}; <em>front</em> (*) marks the candidates no other "
            f"beats on both {esc(result.objective)} and quality. Latency: p50 of one invoke() in LiteRT (XNNPACK), "
            f"{esc(result.latency_settings.get('threads'))} thread(s), measured one model at a time.</p>",
            "<h2>Pareto front</h2>"]
    body += _scatters(result)
    focus = result.row(result.chosen or result.closest)
    if focus is not None and focus.report is not None:
        body += [f"<h2>{'Chosen' if result.chosen else 'Closest'}: {esc(focus.name)} ({esc(focus.summary)})</h2>"]
        body += report_sections(focus.report, level=3)
    where = ", ".join(f"{k} {v}" for k, v in result.executor.items())
    timing = ", ".join(f"{k} {v:.1f} s" for k, v in result.timings.items())
    body.append(f"<p><small>executor: {esc(where)}; timings: {esc(timing)}</small></p>")
    return page(f"tfopt sweep — {result.baseline.report.model.path}", body)


def _scatters(result: SweepResult) -> list[str]:
    from .sweep import METRIC_NAMES

    percent = result.metric != "sqnr_db"
    size_key = "gzip" if result.objective == "gzip" else "size"
    out = []
    for key, xlabel in ((size_key, "gzip size (KiB)" if size_key == "gzip" else "size (KiB)"),
                        ("latency", "latency p50 (ms)")):
        points = []
        for r in result.rows:
            x, y = r.cost(key), r.quality(result.metric)
            if x is not None and y is not None:
                points.append(plots.Point(r.name, x / 1024 if key != "latency" else x, y, r.status))
        b = result.baseline
        bx = (b.latency.p50_ms if b.latency else None) if key == "latency" else (
            (b.report.sizes.output.gzip_bytes if key == "gzip" else b.report.sizes.output.bytes) / 1024)
        if bx is not None and b.quality is not None:
            points.append(plots.Point("float32", bx, b.quality, "reference"))
        if not points:
            continue
        svg = plots.scatter(points, xlabel, METRIC_NAMES[result.metric], result.chosen, result.fronts.get(key), percent)
        what = f"{xlabel.split(' (')[0]} vs {METRIC_NAMES[result.metric]}"
        out.append(figure(svg, f"{what}: the ringed points (dashed line) are the Pareto front, the star the choice"))
    return out
