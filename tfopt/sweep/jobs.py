"""What a sweep runs in worker processes: the shared preparation, one candidate, the latency measurements.

Each is a module-level function ``fn(..., progress)`` (``worker.run_isolated`` and Ray call it by reference);
each returns picklable results and raises ``TfoptError`` subclasses.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from .. import _tf, modes
from ..bench import BenchConfig, bench_bytes
from ..errors import TfoptError
from ..files import size_of
from ..pipeline import Shared, execute
from ..session import Session, Timings, data_info, keras_layer_names, load, model_info, plan_data
from ..progress import Progress, noop
from ..recipe import Recipe
from ..report import Report, Sizes
from ..tflite.sizes import layer_sizes
from .result import Latency


def prepare(recipe: Recipe, progress: Progress = noop) -> tuple[Shared, bytes, Report]:
    """Computed once for every candidate: the data plan, the original's outputs on the evaluation samples, the
    output kinds, the float32 baseline.  Returns (Shared, the baseline's bytes, a report of the original)."""
    timings = Timings(progress)
    with timings("load"):
        original, fixed = load(recipe)
        plan = plan_data(recipe, original)
    session = Session(recipe, original, plan, fixed, progress)
    try:
        with timings("reference outputs"):
            session.prepare_reference()
        with timings("convert float32 baseline"):
            baseline = session.converter(original).convert(session.config(modes.FLOAT32))
    finally:
        session.close()
    size = size_of(baseline.data)
    report = Report(recipe=recipe, model=model_info(original), mode=modes.FLOAT32.name, output=None,
                    data=data_info(plan, plan.calibration if plan else None), io_types=baseline.tflite.io_types(),
                    sizes=Sizes(size_of(Path(recipe.model.path)), size, size), timings=dict(timings),
                    notes=list(plan.notes if plan else []), versions=_tf.versions(),
                    layer_sizes=layer_sizes(baseline.tflite, keras_layer_names(original)))
    return Shared(plan, session.reference, session.kinds, size), baseline.data, report


@dataclass
class CandidateRun:
    """What one candidate's worker returns: its report, its .tflite bytes and its wall time."""

    report: Report
    data: bytes
    seconds: float


def run_candidate(recipe: Recipe, shared: Shared, progress: Progress = noop) -> CandidateRun:
    """One candidate: load the model, fine-tune, convert, verify against the shared reference; write nothing."""
    start = time.perf_counter()
    report, data = execute(recipe, progress, checked=True, shared=shared)
    return CandidateRun(report, data, time.perf_counter() - start)


def measure_latency(models: list[tuple[str, bytes]], config: BenchConfig,
                    progress: Progress = noop) -> dict[str, Latency | str]:
    """Each model's latency, one after the other in this one process on the same seeded inputs (so no
    candidate is timed while another trains); a model that cannot run gets its error message instead."""
    from ..progress import Count

    out: dict[str, Latency | str] = {}
    feeds = None
    for i, (name, data) in enumerate(models):
        progress(Count("latency", i, len(models), "models", info=name))
        try:
            run, feeds = bench_bytes(data, name, config, feeds)
        except TfoptError as e:
            out[name] = str(e)
            continue
        out[name] = Latency(round(run.p50_ms, 4), round(run.p90_ms, 4), round(run.mean_ms, 4), round(run.min_ms, 4))
    progress(Count("latency", len(models), len(models), "models"))
    return out
