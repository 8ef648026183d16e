"""A sweep's results: one row per candidate, the Pareto fronts, the choice, and the ``tfopt.sweep/1`` document.

Definitions (README "Choosing a model"):

* **quality** — the lowest accuracy over the outputs that have labels; without labels the lowest agreement
  with the original; with neither (regression only) the lowest SQNR.  The same metric for every candidate.
* **cost** — by ``--objective``: ``size`` (bytes of the .tflite), ``gzip`` (its gzip bytes) or ``latency``
  (p50 of one ``invoke()`` in LiteRT/XNNPACK with ``--threads``).
* **Pareto front** — the candidates (that ran) no other candidate beats on both cost and quality, per cost.
* **chosen** — among the candidates that passed every gate, the lowest cost (ties: higher quality, then
  the order given).  None passed: the **closest** is the candidate whose missed gates miss by the least in
  total — fraction metrics (agreement, accuracy / F1 drop, cosine) in percentage points, SQNR in dB.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from ..report import Report, dumps
from ..verify import Gate

SCHEMA = "tfopt.sweep/1"
OBJECTIVES = ("size", "gzip", "latency")
QUALITY_METRICS = ("accuracy", "agreement", "sqnr_db")


@dataclass(frozen=True)
class Latency:
    """One model's invoke() latency in the LiteRT interpreter (XNNPACK), measured after all candidates ran."""

    p50_ms: float
    p90_ms: float
    mean_ms: float
    min_ms: float

    def to_dict(self) -> dict:
        return {"p50_ms": self.p50_ms, "p90_ms": self.p90_ms, "mean_ms": self.mean_ms, "min_ms": self.min_ms}


@dataclass
class CandidateRow:
    name: str
    source: str  # "table" or the recipe file it came from
    summary: str  # "prune → qat → int8"
    report: Report | None = None  # None: the candidate ended with an error
    error: str | None = None
    error_code: int = 1
    latency: Latency | None = None
    seconds: float = 0.0  # wall time of its worker
    pareto: bool = False  # on the front of the sweep's objective

    @property
    def ran(self) -> bool:
        return self.report is not None and self.error is None

    @property
    def passed(self) -> bool:
        return self.ran and self.report.ok

    @property
    def status(self) -> str:
        return "error" if not self.ran else ("passed" if self.report.ok else "failed")

    @property
    def exit_code(self) -> int:
        return self.error_code if not self.ran else self.report.exit_code

    def cost(self, objective: str) -> float | None:
        if not self.ran or self.report.sizes is None or self.report.sizes.output is None:
            return None
        size = self.report.sizes.output
        if objective == "latency":
            return self.latency.p50_ms if self.latency else None
        return float(size.gzip_bytes if objective == "gzip" else size.bytes)

    def quality(self, metric: str) -> float | None:
        return quality_of(self.report, metric) if self.ran else None

    def failed_gates(self) -> list[Gate]:
        if not self.ran or self.report.verification is None:
            return []
        return [g for o in self.report.verification.outputs for g in o.evaluated if not g.passed]

    @property
    def miss(self) -> float | None:
        """How far its missed gates miss, in total (points; SQNR in dB); 0 when it passed; None when it did not run."""
        return round(sum(gate_miss(g) for g in self.failed_gates()), 4) if self.ran else None

    def to_dict(self, metric: str) -> dict:
        v = self.report.verification if self.ran else None
        size = self.report.sizes.output if self.ran and self.report.sizes else None
        return {
            "name": self.name, "source": self.source, "summary": self.summary, "status": self.status,
            "exit_code": self.exit_code, "error": self.error, "bytes": size.bytes if size else None,
            "gzip_bytes": size.gzip_bytes if size else None,
            "latency": self.latency.to_dict() if self.latency else None, "quality": self.quality(metric),
            "gates_evaluated": v.gates_evaluated if v else None,
            "gates_failed": len(self.failed_gates()) if v else None, "miss": self.miss, "pareto": self.pareto,
            "seconds": round(self.seconds, 2), "report": self.report.to_dict() if self.report else None,
        }


def gate_miss(gate: Gate) -> float:
    """A missed gate's distance to its limit: percentage points for fractions, dB for SQNR."""
    if gate.value is None or gate.passed:
        return 0.0
    if math.isnan(gate.value):
        return math.inf
    return abs(gate.value - gate.limit) * (1.0 if gate.metric == "sqnr_db" else 100.0)


def quality_of(report: Report | None, metric: str, reference: bool = False) -> float | None:
    """The lowest ``metric`` over the outputs that have it (``reference``: the original model's accuracy)."""
    if report is None or report.verification is None:
        return None
    key = f"{metric}_reference" if reference and metric == "accuracy" else metric
    values = [o.metrics.get(key) for o in report.verification.outputs]
    values = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    return min(values) if values else None


def quality_metric(reports: list[Report]) -> str:
    """accuracy when any output has labels, else agreement, else SQNR (the same for every candidate)."""
    for metric in QUALITY_METRICS:
        if any(quality_of(r, metric) is not None for r in reports):
            return metric
    return QUALITY_METRICS[-1]


def pareto_front(points: dict[str, tuple[float, float]]) -> list[str]:
    """Names whose (cost ↓, quality ↑) no other point beats on both (at least as good on both, better on one)."""
    def beaten(a: tuple[float, float]) -> bool:
        return any(b[0] <= a[0] and b[1] >= a[1] and (b[0] < a[0] or b[1] > a[1]) for b in points.values())

    return [name for name, p in points.items() if not beaten(p)]


def fronts(rows: list[CandidateRow], metric: str) -> dict[str, list[str]]:
    out = {}
    for objective in OBJECTIVES:
        points = {r.name: (r.cost(objective), r.quality(metric)) for r in rows}
        out[objective] = pareto_front({k: p for k, p in points.items() if None not in p})
    return out


def choose(rows: list[CandidateRow], objective: str, metric: str) -> tuple[str | None, str | None]:
    """(chosen, closest): the cheapest candidate that passed every gate; else the one that missed by the least."""
    order = {r.name: i for i, r in enumerate(rows)}

    def key(r: CandidateRow):
        quality = r.quality(metric)
        return (r.cost(objective), -(quality if quality is not None else -math.inf), order[r.name])

    passed = [r for r in rows if r.passed and r.cost(objective) is not None]
    if passed:
        return min(passed, key=key).name, None
    ran = [r for r in rows if r.ran]
    if not ran:
        return None, None
    closest = min(ran, key=lambda r: (r.miss, len(r.failed_gates()), r.cost(objective) or math.inf, order[r.name]))
    return None, closest.name


@dataclass
class Baseline:
    """The original model's float32 conversion, measured like the candidates (sizes, latency)."""

    report: Report  # model, data, sizes, timings of the shared preparation (no verification)
    latency: Latency | None = None
    quality: float | None = None  # the original model's own quality (accuracy; agreement = 1)

    def to_dict(self) -> dict:
        size = self.report.sizes.output
        return {"bytes": size.bytes, "gzip_bytes": size.gzip_bytes,
                "latency": self.latency.to_dict() if self.latency else None, "quality": self.quality,
                "shared_timings": self.report.timings}  # what every candidate reuses instead of recomputing


@dataclass
class SweepResult:
    objective: str
    rows: list[CandidateRow]
    baseline: Baseline
    metric: str  # the quality metric
    chosen: str | None = None
    closest: str | None = None
    fronts: dict[str, list[str]] = field(default_factory=dict)
    executor: dict[str, Any] = field(default_factory=dict)
    latency_settings: dict[str, Any] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    output: str | None = None  # where the chosen model was written
    failed_output: str | None = None  # where the closest was written when none passed
    models: dict[str, bytes] = field(default_factory=dict, repr=False)  # each candidate's .tflite (not in JSON)

    def row(self, name: str | None) -> CandidateRow | None:
        return next((r for r in self.rows if r.name == name), None)

    @property
    def ok(self) -> bool:
        return self.chosen is not None

    @property
    def exit_code(self) -> int:
        if self.chosen is not None:
            return 0
        return 3 if any(r.ran for r in self.rows) else 1

    @property
    def failures(self) -> list[str]:
        """Why nothing was chosen (empty when a candidate was)."""
        if self.chosen is not None:
            return []
        closest = self.row(self.closest)
        if closest is None:
            return [f"no candidate ran: {r.name}: {r.error}" for r in self.rows[:1]]
        return [f"no candidate met every gate; closest: {closest.name} (misses by {closest.miss:g}: "
                + "; ".join(closest.report.failures) + ")"]

    def to_dict(self) -> dict:
        r = self.baseline.report
        return {
            "schema": SCHEMA, "ok": self.ok, "exit_code": self.exit_code, "objective": self.objective,
            "quality_metric": self.metric, "chosen": self.chosen, "closest": self.closest, "output": self.output,
            "failed_output": self.failed_output, "failures": self.failures,
            "model": r.model.to_dict(), "data": r.data.to_dict() if r.data else None,
            "baseline": self.baseline.to_dict(), "fronts": self.fronts, "executor": self.executor,
            "latency_settings": self.latency_settings, "timings": self.timings,
            "candidates": [row.to_dict(self.metric) for row in self.rows], "versions": r.versions,
        }

    def to_json(self) -> str:
        return dumps(self.to_dict())
