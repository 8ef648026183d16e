"""``tfopt bench``: latency and throughput of a .tflite in the LiteRT interpreter (XNNPACK).

    result = bench("model.int8.tflite", BenchConfig(threads=2, runs=200), compare="model.float32.tflite")
    result.runs[0].p50_ms, result.ratios["p50"]

Every model gets the same seeded inputs (float samples; integer-input models receive them
quantized with their input tensor's scale and zero point).  The timed region is one
``invoke()`` (inputs are set before the loop, as in TFLite's benchmark_model).  Peak RSS is
the peak resident set of the process that ran the models, read after each model; TFLite
models run before any Keras model so that TensorFlow's memory is not counted for them.
"""

from __future__ import annotations

import os
import platform
import resource
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from .errors import DataError, UsageError
from .files import size_of


@dataclass(frozen=True)
class BenchConfig:
    threads: int = 1
    runs: int = 100
    warmup: int = 10
    batch: int = 1
    seed: int = 0

    def __post_init__(self):
        for name, low in (("threads", 1), ("runs", 1), ("warmup", 0), ("batch", 1)):
            value = getattr(self, name)
            if not isinstance(value, int) or value < low:
                raise UsageError(f"--{name}: got {value!r}, expected an integer >= {low}")


@dataclass
class BenchRun:
    """One model's numbers."""

    label: str
    kind: str  # "tflite" | "keras"
    bytes: int
    gzip_bytes: int
    load_ms: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    mean_ms: float
    min_ms: float
    throughput: float  # samples per second at p50
    peak_rss_mb: float  # peak RSS of the benchmarking process after this model ran
    rss_increase_mb: float  # resident memory this model added (interpreter, arena, weights)


@dataclass
class BenchResult:
    config: BenchConfig
    runs: list[BenchRun]
    ratios: dict[str, dict[str, float]] = field(default_factory=dict)  # label -> metric -> other / first
    machine: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    schema: str = "tfopt.bench/1"

    def to_dict(self) -> dict:
        d = asdict(self)
        return {"schema": d.pop("schema"), **d}


def machine() -> dict[str, str]:
    return {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
            "cpus": str(os.cpu_count()), "python": platform.python_version()}


def rss_mb() -> tuple[float, float]:
    """(current, peak) resident set size of this process in MiB."""
    current = peak = 0.0
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                current = int(line.split()[1]) / 1024
            elif line.startswith("VmHWM:"):
                peak = int(line.split()[1]) / 1024
    except OSError:  # not Linux: ru_maxrss (KiB on Linux, bytes on macOS)
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / (1024 * 1024 if platform.system() == "Darwin" else 1024)
    return round(current, 1), round(peak, 1)


def percentiles(times_s: list[float], batch: int) -> dict[str, float]:
    ms = np.asarray(times_s) * 1000
    p50 = float(np.percentile(ms, 50))
    return {"p50_ms": round(p50, 6), "p90_ms": round(float(np.percentile(ms, 90)), 6),
            "p99_ms": round(float(np.percentile(ms, 99)), 6), "mean_ms": round(float(ms.mean()), 6),
            "min_ms": round(float(ms.min()), 6), "throughput": round(batch * 1000 / p50, 2) if p50 else 0.0}


def sample_inputs(shapes: dict[str, tuple[int, ...]], batch: int, seed: int) -> dict[str, np.ndarray]:
    """Seeded float samples in [0, 1) for each named input (batch replaces the first dimension)."""
    rng = np.random.default_rng(seed)
    return {name: rng.random((batch, *shape[1:]), dtype=np.float32) for name, shape in shapes.items()}


def _time_loop(step: Callable[[], object], config: BenchConfig) -> list[float]:
    for _ in range(config.warmup):
        step()
    times = []
    for _ in range(config.runs):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    return times


def bench_tflite(path: str | Path, config: BenchConfig, feeds: dict[str, np.ndarray] | None = None
                 ) -> tuple[BenchRun, dict[str, np.ndarray]]:
    """Benchmark one .tflite; returns its numbers and the float inputs it used (to reuse)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"TFLite model not found: {path} (expected a .tflite file)")
    return bench_bytes(path.read_bytes(), str(path), config, feeds)


def bench_bytes(data: bytes, label: str, config: BenchConfig, feeds: dict[str, np.ndarray] | None = None
                ) -> tuple[BenchRun, dict[str, np.ndarray]]:
    """Benchmark a .tflite held in memory (``tfopt sweep`` measures its candidates so)."""
    from .tflite import Runner, read

    model = read(data, label)  # a clear error for bytes that are not a TFLite model
    before, _ = rss_mb()
    t0 = time.perf_counter()
    try:
        runner = Runner(model, threads=config.threads, batch=config.batch)
    except Exception as e:  # noqa: BLE001 - LiteRT raises RuntimeError/ValueError for a batch it cannot take
        if config.batch == 1:
            raise
        raise UsageError(f"--batch {config.batch}: {label} cannot run with this batch size "
                         f"({' '.join(str(e).split())[:200]}); use --batch 1") from e
    load_ms = (time.perf_counter() - t0) * 1000
    shapes = runner.raw_input_shapes()
    feeds = feeds or sample_inputs(shapes, config.batch, config.seed)
    if len(feeds) != len(shapes):
        raise DataError(f"the models to compare have different inputs: {len(feeds)} vs {len(shapes)}")
    runner.set_inputs(feeds)
    times = _time_loop(runner.invoke, config)
    current, peak = rss_mb()
    size = size_of(data)
    run = BenchRun(label, "tflite", size.bytes, size.gzip_bytes, round(load_ms, 2),
                   **percentiles(times, config.batch), peak_rss_mb=peak, rss_increase_mb=round(current - before, 1))
    return run, feeds


def bench_keras(path: str | Path, config: BenchConfig, feeds: dict[str, np.ndarray]) -> BenchRun:
    """The original Keras model on the same inputs: a traced ``tf.function`` call (no predict overhead)."""
    from . import _tf
    from .models import load_model

    tf = _tf.tf()
    try:
        tf.config.threading.set_intra_op_parallelism_threads(config.threads)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError:  # already initialized in this process
        pass
    before, _ = rss_mb()
    t0 = time.perf_counter()
    model = load_model(path)
    if len(feeds) != len(model.inputs):
        raise DataError(f"{path} has {len(model.inputs)} input(s) but the .tflite has {len(feeds)}: not the same model")
    values = [feeds.get(s.name, v) for s, v in zip(model.inputs, feeds.values())]
    args = [tf.constant(v) for v in values]
    call = tf.function(lambda *a: model.model(list(a) if len(a) > 1 else a[0], training=False))
    call(*args)  # trace
    load_ms = (time.perf_counter() - t0) * 1000
    times = _time_loop(lambda: [np.asarray(o) for o in tf.nest.flatten(call(*args))], config)
    current, peak = rss_mb()
    size = size_of(Path(path))
    return BenchRun(str(path), "keras", size.bytes, size.gzip_bytes, round(load_ms, 2),
                    **percentiles(times, config.batch), peak_rss_mb=peak, rss_increase_mb=round(current - before, 1))


def bench(tflite: str, config: BenchConfig | None = None, compare: list[str] | None = None,
          keras: str | None = None, progress: Callable[[str], None] | None = None) -> BenchResult:
    """Benchmark ``tflite`` (and ``compare`` models, and the ``keras`` original) on the same inputs."""
    config = config or BenchConfig()
    progress = progress or (lambda _m: None)
    progress(f"bench {Path(tflite).name}")
    first, feeds = bench_tflite(tflite, config)
    runs = [first]
    for other in compare or []:
        progress(f"bench {Path(other).name}")
        runs.append(bench_tflite(other, config, feeds)[0])
    if keras:
        progress(f"bench {Path(keras).name}")
        runs.append(bench_keras(keras, config, feeds))
    ratios = {r.label: {"p50": _ratio(r.p50_ms, first.p50_ms), "throughput": _ratio(r.throughput, first.throughput),
                        "bytes": _ratio(r.bytes, first.bytes)} for r in runs[1:]}
    notes = [f"latency of one invoke() with batch {config.batch}, {config.threads} thread(s), "
             f"{config.runs} runs after {config.warmup} warm-up runs; XNNPACK where it applies"]
    if keras:
        notes.append("the Keras model runs as a traced tf.function after TensorFlow was imported; "
                     "its peak RSS includes TensorFlow")
    return BenchResult(config, runs, ratios, machine(), notes)


def _ratio(a: float, b: float) -> float:
    return round(a / b, 4) if b else float("nan")


def render_text(result: BenchResult) -> str:
    head = f"{'model':40s} {'bytes':>10s} {'p50 ms':>9s} {'p90 ms':>9s} {'p99 ms':>9s} {'samples/s':>10s} {'peak RSS MB':>11s}"
    lines = [head, "-" * len(head)]
    for r in result.runs:
        name = Path(r.label).name + (" (keras)" if r.kind == "keras" else "")
        lines.append(f"{name[:40]:40s} {r.bytes:>10,} {r.p50_ms:>9.3f} {r.p90_ms:>9.3f} {r.p99_ms:>9.3f} "
                     f"{r.throughput:>10.1f} {r.peak_rss_mb:>11.1f}")
    for label, ratio in result.ratios.items():
        lines.append(f"{Path(label).name}: p50 {ratio['p50']:.2f}x, throughput {ratio['throughput']:.2f}x, "
                     f"size {ratio['bytes']:.2f}x of {Path(result.runs[0].label).name}")
    lines += [f"note: {n}" for n in result.notes]
    return "\n".join(lines)
