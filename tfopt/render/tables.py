"""The rows every rendering shares (sizes, verification gates, stages) and plain-text tables."""

from __future__ import annotations

from ..report import Report, SlimSection, StageResult
from ..verify import METRIC_LABELS, Gate, OutputResult

SIZE_HEADER = ("model", "size", "gzip", "vs float32")
GATE_HEADER = ("output", "kind", "gate", "value", "limit", "result")
METRIC_HEADER = ("output", "kind", "agreement", "acc (ref)", "acc (tflite)", "drop (pts)", "F1 drop (pts)",
                 "max abs err", "cosine", "SQNR dB")
STAGE_HEADER = ("stage", "target", "epochs", "steps", "sparsity", "max unique/kernel", "gzip", "accuracy", "agreement")
SKIPPED_HEADER = ("stage", "layer", "class", "reason")
SLIM_HEADER = ("", "original", "slim", "ratio")
CHANNEL_HEADER = ("layer", "class", "channels")


def fmt_bytes(n: int) -> str:
    return f"{n / 1024:,.1f} KiB" if n >= 1024 else f"{n} B"


def pct(x: float | None) -> str:
    return "-" if x is None else f"{x * 100:.2f}%"


def num(x: float | None, spec: str = ".4f") -> str:
    return "-" if x is None else format(x, spec)


def points(x: float | None) -> str:
    return "-" if x is None else f"{x * 100:+.2f}"


def size_rows(report: Report) -> list[tuple[str, ...]]:
    sizes = report.sizes
    if sizes is None:
        return []
    base = sizes.float32_tflite
    rows = []
    for size, label in ((sizes.input, "input model"), (base, "float32 TFLite"), (sizes.output, "output")):
        if size:
            ratio = f"{size.bytes / base.bytes:.3f}x" if base else "-"
            rows.append((label, fmt_bytes(size.bytes), fmt_bytes(size.gzip_bytes), ratio))
    return rows


def metric_rows(report: Report) -> list[tuple[str, ...]]:
    if not report.verification:
        return []
    rows = []
    for o in report.verification.outputs:
        m = o.metrics
        rows.append((o.name, str(o.kind.kind), pct(m.get("agreement")), pct(m.get("accuracy_reference")),
                     pct(m.get("accuracy")), points(m.get("accuracy_drop")), points(m.get("f1_drop")),
                     num(m.get("max_abs_error")), num(m.get("cosine"), ".5f"), num(m.get("sqnr_db"), ".1f")))
    return rows


def gate_value(gate: Gate) -> str:
    if gate.value is None:
        return "not evaluated"
    if gate.metric in ("accuracy_drop", "f1_drop"):
        return f"{gate.value * 100:.2f} pts"
    if gate.metric == "sqnr_db":
        return f"{gate.value:.1f} dB"
    return f"{gate.value:.4f}"


def gate_limit(gate: Gate) -> str:
    if gate.metric in ("accuracy_drop", "f1_drop"):
        return f"{gate.op} {gate.limit * 100:g} pts"
    if gate.metric == "sqnr_db":
        return f"{gate.op} {gate.limit:g} dB"
    return f"{gate.op} {gate.limit:g}"


def gate_name(output: OutputResult, gate: Gate) -> str:
    if gate.metric == "agreement":
        return "top-1 agreement" if str(output.kind.kind) == "classification" else "decision agreement"
    return METRIC_LABELS[gate.metric]


def gate_rows(report: Report) -> list[tuple[str, ...]]:
    if not report.verification:
        return []
    rows = []
    for o in report.verification.outputs:
        for g in o.gates:
            result = "-" if not g.evaluated else ("pass" if g.passed else "FAIL")
            rows.append((o.name, str(o.kind.kind), gate_name(o, g), gate_value(g), gate_limit(g), result))
    return rows


def stage_rows(report: Report) -> list[tuple[str, ...]]:
    rows = []
    for s in report.stages:
        m = s.measured
        unique = max((v.get("unique_values", 0) for v in m.layers.values()), default=None) if m else None
        rows.append((s.label, _target(s), str(s.epochs), str(s.steps),
                     pct(m.kernel_sparsity) if m else "-", "-" if unique is None else str(unique),
                     fmt_bytes(m.size.gzip_bytes) if m and m.size else "-", pct(m.accuracy) if m else "-",
                     pct(m.agreement) if m else "-"))
    return rows


def _target(s: StageResult) -> str:
    if not s.steps:
        return "-"
    if s.target == "labels":
        return "labels"
    return "distillation + labels" if "labels" in s.target and "no labels" not in s.target else "distillation"


def slim_section(report: Report) -> SlimSection | None:
    return next((s.slim for s in report.stages if s.slim is not None), None)


def slim_rows(section: SlimSection) -> list[tuple[str, ...]]:
    """Parameters and MACs (the Keras models), .tflite bytes and latency (the original and the final output)."""
    rows = [("parameters", f"{section.params_before:,}", f"{section.params_after:,}", f"{section.params_ratio:.3f}x"),
            ("MACs", f"{section.macs_before:,}", f"{section.macs_after:,}", f"{section.macs_ratio:.3f}x")]
    t = section.tflite
    if "original" in t and "final" in t:
        o, f = t["original"], t["final"]
        rows.append((f".tflite ({o['mode']})", fmt_bytes(o["bytes"]), fmt_bytes(f["bytes"]),
                     f"{f['bytes'] / o['bytes']:.3f}x"))
        rows.append(("latency (µs)", f"{o['latency_us']:.1f}", f"{f['latency_us']:.1f}",
                     f"{f['latency_us'] / max(o['latency_us'], 1e-9):.2f}x"))
    return rows


def channel_rows(section: SlimSection) -> list[tuple[str, ...]]:
    return [(c.name, c.cls, f"{c.before} → {c.after}") for c in section.channels]


def skipped_rows(stages: list[StageResult]) -> list[tuple[str, ...]]:
    return [(s.kind, k.name, k.cls, k.reason or "not supported by TF-MOT") for s in stages for k in s.skipped_layers]


def text_table(header: tuple, rows: list[tuple]) -> list[str]:
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows)]

    def line(r):
        return "  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip()

    return [line(header), line(tuple("-" * w for w in widths))] + [line(r) for r in rows]
