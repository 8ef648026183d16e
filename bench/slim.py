"""Benchmark slimming (bench/RESULTS.md, "Slimming"): parameters, .tflite bytes, accuracy and LiteRT latency.

Goals (issue 15): on the sample CNN ``--slim 0.5`` + distill + int8 keeps <= 0.35x the parameters with an
accuracy drop <= 1.5 points; on MobileNetV2 (alpha 1.0, 96x96) slim 0.5 + int8 runs at <= 0.55x the latency of
plain int8 with <= 0.35x the parameters; 80 % weight pruning + int8 in the same table for the honest comparison.

    .venv/bin/python bench/slim.py                 # the sample CNN through tfopt's pipeline (~3 min on 2 cores)
    .venv/bin/python bench/slim.py --mobilenet     # + MobileNetV2 1.0 at 96x96, random weights (library calls)

Latency: LiteRT, 1 thread, batch 1, ``--invokes`` timed invokes per round after 30 warm-up ones, the models
interleaved round by round (``--rounds``), the median of the round medians.  On a shared machine single
series drift by up to +-40 %: compare rows of one run only.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tfopt import _tf  # noqa: E402
from tfopt.bench import BenchConfig, bench_bytes  # noqa: E402
from tfopt.recipe import from_dict  # noqa: E402

SAMPLE_H5, SAMPLE_NPZ = ROOT / "sample_models" / "mnist_cnn.h5", ROOT / "sample_models" / "mnist.npz"
CNN_ROWS = {  # row -> stages (int8 for every row)
    "original int8": [],
    "slim 0.5 + distill + int8": [{"kind": "slim", "ratio": 0.5}, {"kind": "distill"}],
    "slim 0.6 + distill + int8": [{"kind": "slim", "ratio": 0.6}, {"kind": "distill"}],
    "slim 0.7 + distill + int8": [{"kind": "slim", "ratio": 0.7}, {"kind": "distill"}],
    "slim 0.5 + distill + QAT + int8": [{"kind": "slim", "ratio": 0.5}, {"kind": "distill"}, {"kind": "qat"}],
    "prune 0.8 + int8": [{"kind": "prune", "sparsity": 0.8}],
}


def latency_us(flatbuffers: dict[str, bytes], invokes: int, rounds: int) -> dict[str, float]:
    config = BenchConfig(threads=1, runs=invokes, warmup=30)
    times: dict[str, list[float]] = {k: [] for k in flatbuffers}
    feeds = None
    for _ in range(rounds):
        for name, data in flatbuffers.items():
            run, feeds = bench_bytes(data, name, config, feeds)
            times[name].append(run.p50_ms * 1000)
    return {k: round(statistics.median(v), 1) for k, v in times.items()}


def cnn(invokes: int, rounds: int) -> list[dict]:
    from tfopt.pipeline import execute

    rows, flat = [], {}
    for name, stages in CNN_ROWS.items():
        raw = {"model": {"path": str(SAMPLE_H5)}, "data": {"path": str(SAMPLE_NPZ)}, "seed": 0, "stages": stages,
               "convert": {"quantize": "int8"}}
        report, data = execute(from_dict(raw, source=name))
        metrics = report.verification.outputs[0].metrics
        slim = next((s.slim for s in report.stages if s.slim is not None), None)
        params = slim.params_after if slim else 108618
        rows.append({"model": name, "params": params, "params_ratio": params / 108618, "bytes": len(data),
                     "accuracy": metrics["accuracy"], "drop_pts": metrics["accuracy_drop"] * 100,
                     "seconds": sum(report.timings.values())})
        flat[name] = data
    lat = latency_us(flat, invokes, rounds)
    for row in rows:
        row["latency_us"], row["latency_ratio"] = lat[row["model"]], lat[row["model"]] / lat["original int8"]
    return rows


def mobilenet(invokes: int, rounds: int) -> list[dict]:
    from tfopt.convert import ConvertConfig, convert
    from tfopt.data import random_calibration
    from tfopt.macs import total_macs
    from tfopt.models import load_model
    from tfopt.modes import MODES
    from tfopt.stages.slim import slim

    K = _tf.tf_keras()
    _tf.seed_everything(0)
    base = K.applications.MobileNetV2(alpha=1.0, weights=None, input_shape=(96, 96, 3), classes=10)
    models = {"MobileNetV2 1.0 int8": base, "slim 0.5 + int8": slim(base, 0.5)[0]}
    flat, rows = {}, []
    with tempfile.TemporaryDirectory() as tmp:
        for name, model in models.items():
            path = Path(tmp) / f"{len(flat)}.keras"
            model.save(path)
            loaded = load_model(path)
            calibration = random_calibration(loaded.inputs, 32, 0)
            flat[name] = convert(loaded, ConvertConfig(MODES["int8"]), calibration).data
            rows.append({"model": name, "params": int(model.count_params()),
                         "params_ratio": model.count_params() / base.count_params(), "macs": total_macs(model),
                         "bytes": len(flat[name])})
    lat = latency_us(flat, invokes, rounds)
    for row in rows:
        row["latency_us"], row["latency_ratio"] = lat[row["model"]], lat[row["model"]] / lat["MobileNetV2 1.0 int8"]
    return rows


def table(rows: list[dict]) -> str:
    keys = list(rows[0])
    out = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    for r in rows:
        out.append("| " + " | ".join(f"{v:,.3f}".rstrip("0").rstrip(".") if isinstance(v, float) else
                                      f"{v:,}" if isinstance(v, int) else str(v) for v in r.values()) + " |")
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mobilenet", action="store_true", help="also MobileNetV2 1.0 at 96x96")
    parser.add_argument("--no-cnn", action="store_true", help="skip the sample CNN")
    parser.add_argument("--invokes", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    _tf.prefer_legacy_keras(True)
    if not args.no_cnn:
        print(table(cnn(args.invokes, args.rounds)), flush=True)
    if args.mobilenet:
        print(table(mobilenet(args.invokes, args.rounds)), flush=True)


if __name__ == "__main__":
    main()
