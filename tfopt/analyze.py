"""Per-layer int8 quantization error (``tfopt analyze``): the debugger's statistics and measured sensitivity.

For every Keras layer whose ops full int8 quantizes:

* the TFLite quantization debugger's layer statistics, computed the way it does (a debug model from
  ``mlir_quantize(..., enable_numeric_verify=True)`` whose NumericVerify ops output the difference
  between each op's float and quantized result on the same quantized input; per sample, averaged):
  mean error, max abs error, and the derived ``rmse/scale`` = sqrt(mse) / scale (≈ 0.29 is plain
  rounding noise) and ``range`` = 255 * scale;
* single-layer sensitivity: the model's final outputs when *only that layer* is kept in float (all the
  rest int8), scored by verification against the original — SQNR and agreement, and their gain over
  full int8.  Layers are ranked by that measured effect (SQNR gain, then agreement gain, then model
  order): the error statistics alone do not rank layers by what they do to the outputs.

    probe = Probe(calibrated, make, check, feeds)       # auto.probe(...) builds it for a run
    analysis = analyze(probe, debug_samples=32)
    print(analysis.table()); analysis.to_dict()
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from . import _tf
from .costs import Costs
from .selective import Calibrated, Node
from .tflite import TFLiteModel, read
from .verify import VerifyResult


@dataclass
class Probe:
    """What analysis and the auto search need: the calibrated model, how to build an int8 candidate with
    some layers in float (io types and id inputs handled), and the gates."""

    calibrated: Calibrated
    make: Callable[[Sequence[str]], TFLiteModel]
    check: Callable[[TFLiteModel], VerifyResult]
    feeds: dict[str, np.ndarray]  # evaluation inputs (the debug statistics use the first samples)


@dataclass(frozen=True)
class Score:
    """A candidate's effect on the final outputs: the worst output's SQNR and agreement."""

    sqnr_db: float
    agreement: float | None
    passed: bool

    @classmethod
    def of(cls, result: VerifyResult) -> Score:
        sqnr = min((o.metrics.get("sqnr_db") for o in result.outputs), key=_nan_low)
        agreements = [o.metrics["agreement"] for o in result.outputs if o.metrics.get("agreement") is not None]
        return cls(float(sqnr), min(agreements) if agreements else None, result.passed)

    def to_dict(self) -> dict:
        return {"sqnr_db": _r(self.sqnr_db), "agreement": self.agreement, "passed": self.passed}


@dataclass(frozen=True)
class OpStats:
    """The debugger's numbers for one quantized op (averaged over the debug samples)."""

    node: Node
    scale: float
    mean_error: float
    max_abs_error: float
    mean_squared_error: float

    @property
    def rmse_scale(self) -> float:
        return math.sqrt(self.mean_squared_error) / self.scale if self.scale else math.inf

    def to_dict(self) -> dict:
        return {"op": self.node.op, "tensor": self.node.name, "scale": self.scale, "mean_error": _r(self.mean_error),
                "max_abs_error": _r(self.max_abs_error), "rmse_scale": _r(self.rmse_scale),
                "range": _r(255.0 * self.scale)}


@dataclass
class LayerReport:
    layer: str
    ops: tuple[str, ...]  # its quantized op types
    stats: tuple[OpStats, ...]
    macs: int
    weights: int
    score: Score  # the outputs with only this layer in float
    sqnr_gain_db: float = 0.0
    agreement_gain: float = 0.0
    rank: int = 0

    @property
    def rmse_scale(self) -> float | None:
        return max((s.rmse_scale for s in self.stats), default=None)

    @property
    def mean_error(self) -> float | None:
        worst = max(self.stats, key=lambda s: abs(s.mean_error), default=None)
        return worst.mean_error if worst else None

    @property
    def range(self) -> float | None:
        return max((255.0 * s.scale for s in self.stats), default=None)

    def why(self, baseline: Score) -> str:
        """The measured single-layer effect, for the auto report."""
        agree = "" if self.score.agreement is None or baseline.agreement is None else \
            f"agreement {baseline.agreement:.3f} -> {self.score.agreement:.3f}, "
        return f"sensitivity rank {self.rank}: alone in float it moves {agree}SQNR {self.sqnr_gain_db:+.1f} dB"

    def to_dict(self) -> dict:
        return {"rank": self.rank, "layer": self.layer, "ops": ",".join(self.ops), "macs": self.macs,
                "weights": self.weights, "rmse_scale": _r(self.rmse_scale), "mean_error": _r(self.mean_error),
                "range": _r(self.range), "sqnr_gain_db": _r(self.sqnr_gain_db),
                "agreement_gain": _r(self.agreement_gain), "score": self.score.to_dict(),
                "op_stats": [s.to_dict() for s in self.stats]}


@dataclass
class Analysis:
    baseline: Score  # full int8
    layers: list[LayerReport]  # ranked, most sensitive first
    samples: int = 0
    debug_samples: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def ranking(self) -> list[str]:
        return [r.layer for r in self.layers]

    def why(self) -> dict[str, str]:
        return {r.layer: r.why(self.baseline) for r in self.layers}

    def to_dict(self) -> dict:
        return {"schema": "tfopt.analysis/1", "samples": self.samples, "debug_samples": self.debug_samples,
                "full_int8": self.baseline.to_dict(), "rank_by": "sqnr_gain_db, then agreement_gain",
                "layers": [r.to_dict() for r in self.layers], "notes": list(self.notes)}

    def table(self, top: int | None = None) -> str:
        """A fixed-width text table, most sensitive layer first."""
        b = self.baseline
        head = (f"full int8: agreement {_pct(b.agreement)}, SQNR {b.sqnr_db:.1f} dB on {self.samples} samples; "
                "layers ranked by the SQNR gain of the outputs when only that layer is float")
        rows = [("#", "layer", "ops", "MACs", "rmse/scale", "mean err", "range", "agree (float)", "Δagree pts",
                 "SQNR", "ΔSQNR dB")]
        for r in self.layers[:top]:
            rows.append((str(r.rank), r.layer, ",".join(r.ops), _human(r.macs), _f(r.rmse_scale, ".3f"),
                         _f(r.mean_error, "+.2e"), _f(r.range, ".3g"), _pct(r.score.agreement),
                         f"{r.agreement_gain * 100:+.1f}", f"{r.score.sqnr_db:.1f}", f"{r.sqnr_gain_db:+.1f}"))
        widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
        lines = ["  ".join(c.ljust(w) if i in (1, 2) else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths)))
                 for row in rows]
        return "\n".join([head, *lines, *(f"note: {n}" for n in self.notes)])


def analyze(probe: Probe, debug_samples: int = 32) -> Analysis:
    """Statistics and single-layer sensitivity of every quantized layer, ranked (deterministic)."""
    cal = probe.calibrated
    debug = {k: v[:debug_samples] for k, v in probe.feeds.items()} if debug_samples else None
    stats = {s.node.name: s for s in op_statistics(cal, debug)} if debug else {}
    costs = {c.name: c for c in Costs.of(read(cal.data, "the calibrated model")).by_op}
    baseline = Score.of(probe.check(probe.make([])))
    reports = []
    for layer, nodes in cal.layers.items():
        score = Score.of(probe.check(probe.make([layer])))
        reports.append(LayerReport(
            layer, tuple(n.op for n in nodes), tuple(stats[n.name] for n in nodes if n.name in stats),
            sum(costs[n.name].macs for n in nodes if n.name in costs),
            sum(costs[n.name].weights for n in nodes if n.name in costs), score,
            _gain(score.sqnr_db, baseline.sqnr_db), _gain(score.agreement, baseline.agreement)))
    order = {name: i for i, name in enumerate(cal.layers)}
    reports.sort(key=lambda r: (-round(r.sqnr_gain_db, 6), -round(r.agreement_gain, 9), order[r.layer]))
    for i, r in enumerate(reports, start=1):
        r.rank = i
    n = len(next(iter(probe.feeds.values())))
    return Analysis(baseline, reports, n, len(next(iter(debug.values()))) if debug else 0)


def op_statistics(calibrated: Calibrated, feeds: dict[str, np.ndarray]) -> list[OpStats]:
    """The debugger's per-op statistics, from NumericVerify ops, one sample per invoke (as it does)."""
    _tf.tf()
    with _tf.quiet_native():
        debug = bytes(_tf.tflite_convert_internal().mlir_quantize(calibrated.data, enable_numeric_verify=True))
    model = read(debug, "the debug model")
    verify_ops = [op for op in model.ops if op.name == "NumericVerify"]
    by_name = {n.name: n for n in calibrated.nodes}
    # NumericVerify checks the quantized tensor "<name>1": the debugger strips one trailing digit
    nodes = [by_name.get(name[:-1] if name[-1:].isdigit() else name)
             for name in (model.tensors[op.inputs[0]].name for op in verify_ops)]
    interpreter = _tf.litert().Interpreter(model_content=debug, num_threads=1,
                                           experimental_preserve_all_tensors=True)
    runner = interpreter.get_signature_runner()
    values: list[list[list[float]]] = [[] for _ in verify_ops]
    for s in range(len(next(iter(feeds.values())))):
        runner(**{k: v[s:s + 1].astype(np.float32) if v.dtype.kind == "f" else v[s:s + 1] for k, v in feeds.items()})
        for i, op in enumerate(verify_ops):
            diffs = interpreter.get_tensor(op.outputs[0]).astype(np.float64)
            values[i].append([float(np.mean(diffs)), float(np.max(np.abs(diffs))), float(np.mean(diffs**2))])
    out = []
    for i, op in enumerate(verify_ops):
        if nodes[i] is None:
            continue
        q = model.tensors[op.inputs[0]].quantization
        mean, mx, mse = np.nanmean(np.asarray(values[i]), axis=0)
        out.append(OpStats(nodes[i], float(q.scale[0]) if q and len(q.scale) else 0.0, float(mean), float(mx),
                           float(mse)))
    return out


def _gain(value: float | None, base: float | None) -> float:
    if value is None or base is None or (math.isinf(value) and math.isinf(base)):
        return 0.0
    return min(value - base, 1e9)


def _nan_low(x: float | None) -> float:
    return -math.inf if x is None or math.isnan(x) else x


def _r(x: float | None) -> float | None:
    return round(float(x), 6) if x is not None and math.isfinite(x) else None


def _f(x: float | None, spec: str) -> str:
    return "-" if x is None else format(x, spec)


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{x * 100:.1f}%"


def _human(n: int) -> str:
    for unit, size in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if n >= size:
            return f"{n / size:.1f}{unit}"
    return str(n)
