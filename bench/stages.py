"""Benchmark the fine-tuning stages on the shipped sample model (bench/RESULTS.md, "Fine-tuning stages").

Goals (issue 3): prune 0.8 + QAT int8 is >= 12x smaller (gzip) than the float .h5 with an
accuracy drop <= 1 point; QAT int8 accuracy >= PTQ int8 accuracy.

    .venv/bin/python bench/stages.py                      # defaults of the shipped recipes

The "prune80-qat-int8" row runs the shipped recipe's own stages and [train] settings
(tfopt/recipe/shipped/prune80-qat-int8.toml: 8x1 block pruning of the dense layers, 3 epochs,
learning rate 1e-3), so it measures what `tfopt run prune80-qat-int8` ships; the other rows use
the flags below (default: the [train] defaults).
    .venv/bin/python bench/stages.py --epochs 4 --learning-rate 5e-4 --no-write
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tfopt import _tf  # noqa: E402
from tfopt.pipeline import run  # noqa: E402
from tfopt.recipe import from_dict  # noqa: E402
from tfopt.recipe.schema import TrainSection  # noqa: E402
from tfopt.recipe.templates import load  # noqa: E402

MODEL = ROOT / "sample_models" / "mnist_cnn.h5"
DATA = ROOT / "sample_models" / "mnist.npz"
HEADING = "## Fine-tuning stages"
PRUNE80 = "prune80-qat-int8"


def shipped_settings(name: str) -> tuple[list[dict], dict]:
    """The stages and [train] table of a shipped recipe, as from_dict input."""
    raw = load(name, [f"model.path={MODEL}", f"data.path={DATA}"]).to_dict()
    return [dict(s) for s in raw.get("stages", [])], dict(raw.get("train", {}))


def one(name: str, stages: list[dict], train: dict, out: Path, sparse: bool = False) -> dict:
    recipe = from_dict({
        "model": {"path": str(MODEL)}, "data": {"path": str(DATA)}, "stages": stages, "train": train,
        "convert": {"quantize": "int8", "sparse_encoding": sparse},
        "verify": {"max_accuracy_drop": 1.0, "min_agreement": 0.0},
        "output": {"tflite": str(out / f"{name}.tflite")},
    })
    start = time.perf_counter()
    report = run(recipe)
    metrics = report.verification.outputs[0].metrics
    return {
        "name": name,
        "seconds": round(time.perf_counter() - start, 1),
        "input_gzip": report.sizes.input.gzip_bytes,
        "output_gzip": report.sizes.output.gzip_bytes,
        "ratio": report.sizes.input.gzip_bytes / report.sizes.output.gzip_bytes,
        "accuracy_reference": metrics["accuracy_reference"],
        "accuracy": metrics["accuracy"],
        "drop_points": 100 * metrics["accuracy_drop"],
        "sparsity": (report.stages[-1].exported_output.kernel_sparsity if report.stages else None),
    }


def main() -> int:
    defaults = TrainSection()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=defaults.epochs)
    parser.add_argument("--learning-rate", type=float, default=defaults.learning_rate)
    parser.add_argument("--batch-size", type=int, default=defaults.batch_size)
    parser.add_argument("--no-write", action="store_true", help="print only; do not update bench/RESULTS.md")
    args = parser.parse_args()
    train = {"epochs": args.epochs, "learning_rate": args.learning_rate, "batch_size": args.batch_size}
    _tf.tf()
    p80_stages, p80_train = shipped_settings(PRUNE80)
    with tempfile.TemporaryDirectory() as tmp:
        rows = [
            one("ptq-int8", [], train, Path(tmp)),
            one("qat-int8", [{"kind": "qat"}], train, Path(tmp)),
            one(PRUNE80, p80_stages, p80_train, Path(tmp)),
            one("prune80-cluster16-qat-int8", [{"kind": "prune", "sparsity": 0.8}, {"kind": "cluster", "clusters": 16},
                                               {"kind": "qat"}], train, Path(tmp)),
        ]
    text = render(rows, train, p80_stages, p80_train)
    print(text)
    if not args.no_write:
        write_section(ROOT / "bench" / "RESULTS.md", text)
    ptq, qat, pq, _ = rows
    ok = pq["ratio"] >= 12 and pq["drop_points"] <= 1.0 and qat["accuracy"] >= ptq["accuracy"]
    return 0 if ok else 1


def render(rows: list[dict], train: dict, p80_stages: list[dict], p80_train: dict) -> str:
    ptq, qat, pq, pcq = rows
    lines = [
        HEADING,
        "",
        f"`bench/stages.py` on `sample_models/mnist_cnn.h5` (float .h5 gzip {ptq['input_gzip']:,} bytes), "
        f"fine-tuned on the 4,000 training digits, verified on the 1,000 test digits with LiteRT. "
        f"Fine-tuning: {describe_train(train)}, seed 0; the {PRUNE80} row runs the shipped recipe's settings "
        f"({describe(p80_stages, p80_train)}).",
        "",
        "| run | gzip bytes | smaller than .h5 (gzip) | kernel sparsity | accuracy | drop (pts) | seconds |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        sparsity = "-" if r["sparsity"] is None else f"{r['sparsity']:.3f}"
        lines.append(f"| {r['name']} | {r['output_gzip']:,} | {r['ratio']:.1f}x | {sparsity} | {r['accuracy']:.4f} "
                     f"| {r['drop_points']:+.2f} | {r['seconds']} |")
    lines += [
        "",
        f"* prune 0.8 + QAT int8: {pq['ratio']:.1f}x smaller than the float .h5 (goal >= 12x), "
        f"accuracy drop {pq['drop_points']:+.2f} points (goal <= 1) — "
        f"{'met' if pq['ratio'] >= 12 and pq['drop_points'] <= 1 else 'NOT met'}.",
        f"* QAT int8 accuracy {qat['accuracy']:.4f} vs PTQ int8 {ptq['accuracy']:.4f} (goal QAT >= PTQ) — "
        f"{'met' if qat['accuracy'] >= ptq['accuracy'] else 'NOT met'}.",
        f"* prune 0.8 + cluster 16 + QAT (PCQAT): {pcq['ratio']:.1f}x smaller, drop {pcq['drop_points']:+.2f} points.",
        "* gzip's deflate spends about 2.8 bits per weight on a randomly sparse int8 kernel, so unstructured 80%",
        "  pruning reached only 10.7x. TFLite stores a Dense kernel as [out, in] row-major: an 8x1 block of the",
        "  Keras [in, out] kernel is 8 consecutive zero bytes, which deflate's LZ77 codes cheaply. TF-MOT block",
        "  pruning takes 2-D kernels only, so the recipe skips the Conv2D layers (4% of the weights, left dense):",
        "  kernel sparsity is ~0.77 overall, 0.80 in the Dense layers.",
        "* Measured with `/tmp` variants of this script (prune 0.8 + QAT, 3 epochs, lr 1e-3, seeds 0/1/2):",
        "  unstructured (the previous recipe) 10.7x (drop -1.0); block 4x1 11.8x (-1.4); block 8x1 13.2x/13.2x/13.4x",
        "  (-0.6/-0.8/-1.2); block 16x1 14.1x/14.1x (-0.8/-1.6). `--sparse-encoding` made the int8 file larger",
        "  after gzip.",
        "",
    ]
    return "\n".join(lines)


def describe(stages: list[dict], train: dict) -> str:
    prune = next((s for s in stages if s["kind"] == "prune"), {})
    block = f"block {'x'.join(str(b) for b in prune['block'])}, " if prune.get("block") else ""
    skip = ", unsupported layers skipped" if train.get("skip_unsupported") else ""
    return (f"sparsity {prune.get('sparsity')}, {block}{prune.get('schedule', 'polynomial')} schedule{skip}; "
            f"{describe_train(train)}")


def describe_train(train: dict) -> str:
    defaults = TrainSection()
    epochs, steps = train.get("epochs", defaults.epochs), train.get("min_steps", defaults.min_steps)
    rate = train.get("learning_rate")
    rate_text = f"learning rate {rate:g}" if rate else "the model's saved learning rate (else 1e-3)"
    return (f"at least {epochs} epochs and {steps} optimizer steps per stage, {rate_text}, "
            f"batch {train.get('batch_size', defaults.batch_size)}, "
            f"{train.get('validation_split', defaults.validation_split):g} held out for best-epoch restore")


def write_section(path: Path, text: str, heading: str = HEADING) -> None:
    """Replace (or append) only the section under ``heading``; other sections are left alone."""
    old = path.read_text() if path.exists() else "# Benchmark results\n"
    start = old.find(heading)
    if start < 0:
        new = old.rstrip("\n") + "\n\n" + text
    else:
        end = old.find("\n## ", start + len(heading))
        new = old[:start] + text + (old[end + 1:] if end >= 0 else "")
    path.write_text(new)


if __name__ == "__main__":
    sys.exit(main())
