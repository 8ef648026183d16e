"""``--quantize auto``: as much int8 as the budget (the verification gates) allows.

1. Full int8.  If it meets every gate and is not slower than float32, done.
2. Otherwise keep the most sensitive layers in float (selective quantization): layers ordered by their
   measured single-layer effect on the outputs (``analyze.py``); the smallest passing prefix is found
   by galloping (1, 2, 4, ... layers) then bisecting, and every kept layer that is not needed is
   dropped again (least sensitive first).  Each step quantizes the calibrated model and runs the gates.
3. The int8 mix is chosen when it meets the gates, computes at least half of its MACs in int8 and is not
   slower than float32 (``--allow-slower`` lifts that).  Otherwise the other modes are converted and the best candidate that meets the gates
   is taken by the objective (size or latency), never one slower than float32 unless allowed (slower:
   more than 10 % and more than 10 µs per inference; latency = the lowest of 3 medians of 30 invokes, 1
   thread); float32 itself is the last resort.
4. Nothing meets the budget: no choice (exit 3), and the candidate that came closest with its shortfall.

The layers chosen depend only on the data and the gates (deterministic); latency decides only
"slower than float32" and the latency objective.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from . import modes
from .analyze import Analysis, Probe, Score
from .bench import BenchConfig, bench_bytes
from .costs import Costs
from .tflite import TFLiteModel
from .verify import VerifyResult

LATENCY_TOLERANCE = 0.10  # "slower than float32" means more than 10 % slower ...
LATENCY_NOISE_MS = 0.01  # ... and more than 10 µs slower (timer and scheduling resolution)
MIN_INT8_MAC_SHARE = 0.5  # an int8 mix with less of its MACs in int8 competes with the other modes by the objective
LATENCY = BenchConfig(runs=30, warmup=5)
LATENCY_REPEATS = 3  # a candidate's latency: the least-disturbed (lowest) median of 3 runs of 30 invokes


@dataclass
class Candidate:
    label: str
    mode: str
    tflite: TFLiteModel = field(repr=False)
    verification: VerifyResult = field(repr=False)
    float_layers: tuple[str, ...] = ()
    latency_ms: float = 0.0
    costs: Costs | None = None

    @property
    def size(self) -> int:
        return self.tflite.size

    @property
    def passed(self) -> bool:
        return self.verification.passed

    @property
    def margin(self) -> float:
        return margin(self.verification)

    def to_dict(self) -> dict:
        return {"label": self.label, "mode": self.mode, "float_layers": list(self.float_layers), "bytes": self.size,
                "latency_ms": round(self.latency_ms, 4), "passed": self.passed, "margin": round(self.margin, 6),
                "failures": self.verification.failures, "score": Score.of(self.verification).to_dict(),
                "int8_mac_share": round(self.costs.int8_mac_share, 4) if self.costs else None,
                "int8_weight_share": round(self.costs.int8_weight_share, 4) if self.costs else None}


def margin(result: VerifyResult) -> float:
    """The worst evaluated gate's relative margin: >= 0 passes; the closer to 0, the closer a miss."""
    worst = 0.0
    for o in result.outputs:
        for g in o.evaluated:
            room = (g.value - g.limit) if g.op == ">=" else (g.limit - g.value)
            worst = min(worst, room / abs(g.limit) if g.limit else room)
    return worst


@dataclass
class AutoResult:
    chosen: Candidate | None
    float32: Candidate
    full_int8: Candidate
    candidates: list[Candidate]  # every candidate measured (full int8 first)
    evaluations: int  # gate runs of the search
    why: dict[str, str] = field(default_factory=dict)  # kept layer -> its measured effect
    notes: list[str] = field(default_factory=list)

    @property
    def closest(self) -> Candidate | None:
        pool = [c for c in [self.float32] + self.candidates if not c.passed]
        return max(pool, key=lambda c: c.margin) if pool else None

    def lines(self) -> list[str]:
        """The report: choice, layers kept in float and why, int8 shares, size and latency vs int8 and float32."""
        out = [f"auto: {self.chosen.label if self.chosen else 'no candidate meets every gate'}"]
        if self.chosen is not None and self.chosen.float_layers:
            out.append("  kept in float:")
            out += [f"    {layer}: {self.why.get(layer, '')}" for layer in self.chosen.float_layers]
        out.append(f"  {'candidate':<30} {'gates':<5} {'bytes':>9} {'vs int8':>8} {'vs f32':>7} {'latency':>10} "
                   f"{'vs int8':>8} {'vs f32':>7} {'int8 MACs':>9} {'int8 wts':>8}")
        f32, i8 = self.float32, self.full_int8
        for c in [f32] + self.candidates:
            out.append(f"  {c.label[:30]:<30} {'pass' if c.passed else 'miss':<5} {c.size:>9} {c.size / i8.size:>7.2f}x "
                       f"{c.size / f32.size:>6.2f}x {c.latency_ms:>8.3f}ms {c.latency_ms / i8.latency_ms:>7.2f}x "
                       f"{c.latency_ms / f32.latency_ms:>6.2f}x {c.costs.int8_mac_share:>9.0%} "
                       f"{c.costs.int8_weight_share:>8.0%}")
        if self.chosen is None and self.closest is not None:
            c = self.closest
            out.append(f"  closest: {c.label}, its worst gate missed by {-c.margin:.1%} of the limit "
                       f"({'; '.join(c.verification.failures)})")
        return out + [f"  {n}" for n in self.notes]

    def to_dict(self) -> dict:
        kept = self.chosen.float_layers if self.chosen else ()
        return {"chosen": self.chosen.to_dict() if self.chosen else None, "float32": self.float32.to_dict(),
                "full_int8": self.full_int8.to_dict(), "candidates": [c.to_dict() for c in self.candidates],
                "kept_in_float": {layer: self.why.get(layer, "") for layer in kept}, "evaluations": self.evaluations,
                "closest": self.closest.to_dict() if self.chosen is None and self.closest else None,
                "notes": list(self.notes)}


@dataclass
class Search:
    """Everything the choice needs: the probe, the ranking (measured only when full int8 misses), and
    conversions of float32 and the other modes (``None``: the converter refused that mode)."""

    probe: Probe
    rank: Callable[[], Analysis]
    float32: Callable[[], tuple[TFLiteModel, VerifyResult]]
    others: dict[str, Callable[[], tuple[TFLiteModel, VerifyResult] | None]]
    objective: str = "size"
    allow_slower: bool = False
    cache: dict[frozenset, tuple[TFLiteModel, VerifyResult]] = field(default_factory=dict)

    def try_layers(self, layers: Sequence[str]) -> tuple[TFLiteModel, VerifyResult]:
        key = frozenset(layers)
        if key not in self.cache:
            model = self.probe.make(list(layers))
            self.cache[key] = (model, self.probe.check(model))
        return self.cache[key]

    def passes(self, layers: Sequence[str]) -> bool:
        return self.try_layers(layers)[1].passed


def fewest_float_layers(order: Sequence[str], passes: Callable[[Sequence[str]], bool]) -> list[str] | None:
    """The smallest passing prefix of ``order`` (gallop 1, 2, 4, ... then bisect), then pruned: each kept
    layer, least sensitive first, is dropped when the rest still passes.  None if all in float fails."""
    n = len(order)
    if n == 0 or not passes(order):
        return None
    lo, hi, k = 0, n, 1  # prefix(lo) fails (0 = full int8), prefix(hi) passes
    while k < n:
        if passes(order[:k]):
            hi = k
            break
        lo, k = k, k * 2
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if passes(order[:mid]):
            hi = mid
        else:
            lo = mid
    kept = list(order[:hi])
    for layer in reversed(order[:hi]):
        trial = [x for x in kept if x != layer]
        if trial and passes(trial):
            kept = trial
    return kept


def choose(search: Search, sample: dict[str, np.ndarray]) -> AutoResult:
    """Full int8, else the fewest float layers, else the best other mode (see the module docstring)."""
    measure = _Measure(sample)
    f32, int8 = modes.FLOAT32, modes.INT8
    float32 = measure(f32.name, f32.file_tag, *search.float32())
    full = measure(int8.name, f"{int8.name} (full)", *search.try_layers([]))
    notes: list[str] = []
    if full.passed and (search.allow_slower or not measure.slower(full, float32)):
        return AutoResult(full, float32, full, [full], len(search.cache), {}, ["full int8 meets every gate"])
    candidates = [full]
    ranking = search.rank().ranking if not full.passed else []
    why = search.rank().why() if not full.passed else {}
    kept = None if full.passed else fewest_float_layers(ranking, search.passes)
    if kept is not None:
        mix = measure(int8.name, f"{int8.name}, {len(kept)} layer(s) float", *search.try_layers(kept), tuple(kept))
        candidates.append(mix)
        total = len(ranking)
        notes.append(f"full int8 misses the gates; keeping {len(kept)} of {total} quantized layers in float meets "
                     f"them with {mix.costs.int8_mac_share:.0%} of the MACs in int8")
        share = mix.costs.int8_mac_share if mix.costs.macs else mix.costs.int8_weight_share
        if share < MIN_INT8_MAC_SHARE:
            notes.append(f"int8 does not pay: the mix leaves only {share:.0%} of the MACs (weights) in int8 "
                         f"(< {MIN_INT8_MAC_SHARE:.0%}): trying the other modes")
        elif search.allow_slower or not measure.slower(mix, float32):
            return AutoResult(mix, float32, full, candidates, len(search.cache), why, notes)
        else:
            notes.append(_slower(mix, float32) + ": trying the other modes")
    elif not full.passed:
        notes.append(f"no int8 mix meets the gates, even with all {len(ranking)} quantized layers "
                     "in float: trying the other modes")
    for name, make in search.others.items():
        made = make()
        if made is not None:
            candidates.append(measure(name, name, *made))
    allowed = [c for c in candidates if c.passed and (search.allow_slower or not measure.slower(c, float32))]
    for c in candidates:
        if c.passed and c not in allowed and not (kept is not None and c is candidates[1]):  # the mix: noted
            notes.append(_slower(c, float32) + ": not chosen without --allow-slower")
    if not allowed and float32.passed:  # the float32 model meets the gates and is never slower than itself
        allowed = [float32]
        notes.append("no quantized candidate meets the gates without being slower than float32: float32 is kept")
    key = (lambda c: (c.size, c.latency_ms, c.label)) if search.objective == "size" else \
        (lambda c: (c.latency_ms, c.size, c.label))
    chosen = min(allowed, key=key) if allowed else None
    return AutoResult(chosen, float32, full, candidates, len(search.cache), why, notes)


def _slower(c: Candidate, float32: Candidate) -> str:
    return (f"{c.label} meets the gates but is {c.latency_ms / float32.latency_ms:.1f}x slower than float32 "
            f"({c.latency_ms:.3f} ms vs {float32.latency_ms:.3f} ms)")


@dataclass
class _Measure:
    sample: dict[str, np.ndarray]

    def __call__(self, mode: str, label: str, tflite: TFLiteModel, verification: VerifyResult,
                 float_layers: tuple[str, ...] = ()) -> Candidate:
        latency = min(bench_bytes(tflite.raw, label, LATENCY, self.sample)[0].p50_ms for _ in range(LATENCY_REPEATS))
        return Candidate(label, mode, tflite, verification, float_layers, latency, Costs.of(tflite))

    @staticmethod
    def slower(c: Candidate, float32: Candidate) -> bool:
        return c.latency_ms > max(float32.latency_ms * (1 + LATENCY_TOLERANCE), float32.latency_ms + LATENCY_NOISE_MS)
