"""``sweep(config)``: run every candidate the same way, mark the Pareto fronts, choose, write — the sweep's one path.

    prepare (1 worker) ─► candidates (N workers, or Ray tasks) ─► latency (1 worker, one model at a time)
        ─► fronts, choice ─► write the chosen model and the reports

The preparation loads the model and data once, computes the original's outputs on the evaluation samples,
the output kinds and the float32 baseline; every candidate gets them (``pipeline.Shared``).  Latency is
measured after all candidates finished, one model after the other in one process, so no candidate is
timed while another one trains.  Nothing is printed; progress goes to ``progress`` (``tfopt.progress``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from ..bench import BenchConfig
from ..errors import DataError, OutputError, UsageError
from ..files import check_outputs, failed_path, write_atomic
from ..models import sniff
from ..convert import output_stem
from ..progress import Count, Ended, Progress, noop
from ..recipe import Recipe
from ..report import dumps
from ..worker import WorkerCrashed, run_isolated
from . import executors, jobs
from .candidates import CandidateSpec
from .result import OBJECTIVES, Baseline, CandidateRow, SweepResult, choose, fronts, quality_metric, quality_of

BASELINE = "float32 baseline"


@dataclass(frozen=True)
class SweepConfig:
    base: Recipe  # model, data, training settings, gates, seed (each candidate sets the mode and stages)
    candidates: tuple[CandidateSpec, ...]
    objective: str = "size"
    jobs: int = 1
    executor: str = "local"
    address: str | None = None  # a Ray cluster (None: a local Ray instance for this sweep)
    latency: BenchConfig = field(default_factory=lambda: BenchConfig(threads=1, runs=50, warmup=5))
    output: str | None = None  # the chosen model (default beside the model: <stem>.best.tflite)
    output_dir: str | None = None  # every candidate's model: DIR/<name>.tflite or DIR/<name>.failed.tflite
    report: str | None = None
    markdown: str | None = None
    junit: str | None = None
    html: str | None = None
    debug: bool = False

    @property
    def output_path(self) -> str:
        if self.output:
            return self.output
        folder, stem = output_stem(self.base.model.path)
        return str(folder / f"{stem}.best.tflite")

    def outputs(self) -> dict[str, str | None]:
        return {"-o": self.output_path, "--report": self.report, "--markdown": self.markdown,
                "--junit": self.junit, "--html": self.html}


def check(config: SweepConfig) -> None:
    """Before any work: settings, inputs, every output path (and Ray, when asked for)."""
    if config.objective not in OBJECTIVES:
        raise UsageError(f"--objective: got {config.objective!r}, expected one of {', '.join(OBJECTIVES)}")
    if config.jobs < 1:
        raise UsageError(f"--jobs: got {config.jobs}, expected an integer >= 1")
    if config.executor not in executors.EXECUTORS:
        raise UsageError(f"--executor: got {config.executor!r}, expected one of {', '.join(executors.EXECUTORS)}")
    if config.address and config.executor != "ray":
        raise UsageError("--address: only with --executor ray")
    if config.executor == "ray":
        executors.import_ray()
    sniff(Path(config.base.model.path))
    if config.base.data.path is None:
        raise UsageError("tfopt sweep verifies every candidate: pass --data FILE (held-out data)")
    if not Path(config.base.data.path).exists():
        raise DataError(f"data not found: {config.base.data.path} (expected a .npz or .npy file or a folder of class "
                        "sub-folders)")
    check_outputs(config.outputs(), config.base.input_paths())
    if config.output_dir:
        folder = Path(config.output_dir)
        if folder.exists() and not folder.is_dir():
            raise OutputError(f"--output-dir {folder}: it is a file, expected a folder")
        folder.mkdir(parents=True, exist_ok=True)


def sweep(config: SweepConfig, progress: Progress = noop, *, checked: bool = False) -> SweepResult:
    """Run every candidate, measure, choose and write; raises TfoptError for what stops the whole sweep
    (bad model or data, an interrupt); a candidate's own error is its row."""
    if not checked:
        check(config)
    timings: dict[str, float] = {}
    start = time.perf_counter()
    shared, baseline_bytes, base_report = run_isolated(jobs.prepare, (config.base,), {}, progress, config.debug)
    timings["prepare"] = round(time.perf_counter() - start, 2)
    rows = [CandidateRow(s.name, s.source, s.summary) for s in config.candidates]
    models: dict[str, bytes] = {}
    start = time.perf_counter()
    _run_candidates(config, shared, rows, models, progress)
    timings["candidates"] = round(time.perf_counter() - start, 2)
    start = time.perf_counter()
    progress("latency")
    ran = [(r.name, models[r.name]) for r in rows if r.ran]
    latencies = _latencies([(BASELINE, baseline_bytes)] + ran, config, progress)
    timings["latency"] = round(time.perf_counter() - start, 2)
    result = _assemble(config, rows, base_report, latencies, timings)
    result.models = models
    write_outputs(result, config)
    return result


def _run_candidates(config: SweepConfig, shared, rows: list[CandidateRow], models: dict, progress: Progress) -> None:
    recipes = [(s.name, s.recipe) for s in config.candidates]
    finished = [0]

    def done(i: int, outcome) -> None:
        row = rows[i]
        if isinstance(outcome, jobs.CandidateRun):
            row.report, row.seconds, models[row.name] = outcome.report, outcome.seconds, outcome.data
        else:
            row.error, row.error_code = str(outcome), getattr(outcome, "exit_code", 1)
        finished[0] += 1
        what = f"{row.status}, {row.seconds:.1f} s" if row.ran else f"error: {row.error}"
        progress(Count("sweep", finished[0], len(rows), "candidates", f"{row.name}: {what}", milestone=True))
        progress(Ended(row.name))

    progress("sweep candidates")
    progress(Count("sweep", 0, len(rows), "candidates"))
    if config.executor == "ray":
        executors.run_ray(recipes, shared, config.address, config.jobs, done, config.debug)
    else:
        executors.run_local(recipes, shared, config.jobs, progress, done, config.debug)


def _latencies(models: list[tuple[str, bytes]], config: SweepConfig, progress: Progress) -> dict:
    """All in one worker; if a model crashes the interpreter, each one in its own (the crash is its error)."""
    try:
        return run_isolated(jobs.measure_latency, (models, config.latency), {}, progress, config.debug)
    except WorkerCrashed:
        out = {}
        for name, data in models:
            try:
                out.update(run_isolated(jobs.measure_latency, ([(name, data)], config.latency), {}, None, config.debug))
            except WorkerCrashed as e:
                out[name] = str(e)
        return out


def _assemble(config: SweepConfig, rows: list[CandidateRow], base_report, latencies: dict,
              timings: dict) -> SweepResult:
    for row in rows:
        measured = latencies.get(row.name)
        if isinstance(measured, str):
            row.error = f"latency: {measured}"
        elif row.ran:
            row.latency = measured
    metric = quality_metric([r.report for r in rows if r.ran])
    first = next((r.report for r in rows if r.ran), None)
    quality = {"accuracy": quality_of(first, metric, reference=True), "agreement": 1.0}.get(metric)
    baseline = latencies.get(BASELINE)
    result = SweepResult(config.objective, rows, Baseline(base_report, baseline if not isinstance(baseline, str)
                                                          else None, quality), metric)
    result.fronts = fronts(rows, metric)
    for row in rows:
        row.pareto = row.name in result.fronts[config.objective]
    result.chosen, result.closest = choose(rows, config.objective, metric)
    lat = config.latency
    result.latency_settings = {"threads": lat.threads, "runs": lat.runs, "warmup": lat.warmup,
                               "measured": "one model at a time in one process, after every candidate ran"}
    result.executor = {"kind": config.executor, **({"address": config.address} if config.address else
                                                    {"jobs": config.jobs})}
    result.timings = timings
    return result


def write_outputs(result: SweepResult, config: SweepConfig) -> None:
    """The chosen model at -o (none passed: the closest at <stem>.failed.tflite), every candidate in
    --output-dir, then the reports.  A candidate's report names where its model was written (or null)."""
    for row in result.rows:
        if row.report is not None:
            row.report.output = row.report.failed_output = None
    if config.output_dir:
        for row in result.rows:
            if row.ran and row.name in result.models:
                path = Path(config.output_dir) / f"{row.name}{'' if row.passed else '.failed'}.tflite"
                write_atomic(path, result.models[row.name])
                row.report.output, row.report.failed_output = (str(path), None) if row.passed else (None, str(path))
    chosen, closest = result.row(result.chosen), result.row(result.closest)
    if chosen is not None:
        result.output = chosen.report.output = str(write_atomic(config.output_path, result.models[chosen.name]))
    elif closest is not None:
        result.failed_output = str(write_atomic(failed_path(config.output_path), result.models[closest.name]))
    write_reports(result, config)


def write_reports(result: SweepResult, config: SweepConfig) -> None:
    from ..render import sweep as render

    if config.report:
        write_atomic(config.report, dumps(result.to_dict()))
    if config.markdown:
        write_atomic(config.markdown, render.markdown(result))
    if config.junit:
        write_atomic(config.junit, render.junit(result))
    if config.html:
        from ..render.html import sweep_html

        write_atomic(config.html, sweep_html(result))
