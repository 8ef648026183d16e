"""The slim section's side-by-side numbers: the original and the final model as .tflite files of the same mode.

Sizes are the bytes of the two conversions; latency is measured with ``bench.py`` (LiteRT, 1 thread, batch 1,
the same seeded inputs), models interleaved over ``ROUNDS`` rounds and the median of the round medians kept —
the machine may be shared, and a single series drifts (bench/RESULTS.md "Slimming").  It costs
``ROUNDS × (WARMUP + RUNS)`` invokes per model: about 0.1 s for the sample CNN, ~1 s for MobileNetV2 at 96×96,
so it is always part of a run with a slim stage.
"""

from __future__ import annotations

import statistics

from .bench import BenchConfig, bench_bytes
from .files import size_of
from .report import SlimSection

ROUNDS, RUNS, WARMUP = 3, 50, 5


def measure_slim(section: SlimSection, original: bytes, final: bytes, mode: str) -> None:
    """Fill ``section.tflite`` (bytes, gzip bytes, p50 latency in µs) and ``section.latency_note``."""
    config = BenchConfig(threads=1, runs=RUNS, warmup=WARMUP)
    times: dict[str, list[float]] = {"original": [], "final": []}
    feeds = None
    for _ in range(ROUNDS):
        for label, data in (("original", original), ("final", final)):
            run, feeds = bench_bytes(data, label, config, feeds)
            times[label].append(run.p50_ms * 1000)
    for label, data in (("original", original), ("final", final)):
        size = size_of(data)
        section.tflite[label] = {"mode": mode, "bytes": size.bytes, "gzip_bytes": size.gzip_bytes,
                                 "latency_us": round(statistics.median(times[label]), 1)}
    section.latency_note = (f"LiteRT p50 latency, 1 thread, batch 1, median of {ROUNDS} interleaved rounds of {RUNS} "
                            "invokes; small models are dominated by per-op overhead, so fewer channels may not be "
                            "faster there")
