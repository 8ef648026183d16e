"""Benchmark the fine-tuning defaults (bench/RESULTS.md, "Fine-tuning defaults"; issue 13, §4).

Goal: `tfopt convert MODEL --prune 0.8 --qat --data D` with no other flag loses <= 1 point of accuracy on
the sample MNIST (4,000 training samples) and on an 8x8 digits-sized problem (1,400 training samples,
tests/digits8.py, made from the sample MNIST).  "before" runs today's code with the [train] values of the
earlier defaults (2 epochs at learning rate 1e-4, no minimum step budget, no validation split); the
pruning schedule's earlier ramp (to the target at the last step) is not a setting and is not restored.

    .venv/bin/python bench/defaults.py            # measure and update bench/RESULTS.md
    .venv/bin/python bench/defaults.py --no-write
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

import digits8  # noqa: E402
from stages import write_section  # noqa: E402
from tfopt.pipeline import run  # noqa: E402
from tfopt.recipe import from_dict  # noqa: E402

HEADING = "## Fine-tuning defaults"
SAMPLE_H5, SAMPLE_NPZ = ROOT / "sample_models" / "mnist_cnn.h5", ROOT / "sample_models" / "mnist.npz"
SETTINGS = {
    "before": {"epochs": 2, "learning_rate": 1e-4, "min_steps": 0, "validation_split": 0.0},
    "now (defaults)": {},
}


def problems(work: Path) -> dict[str, tuple[Path, Path]]:
    d = digits8.data(SAMPLE_NPZ)
    digits8.train_model(d).save(work / "digits8.h5")
    np.savez(work / "digits8.npz", **d)
    return {"sample MNIST (4,000 train)": (SAMPLE_H5, SAMPLE_NPZ),
            "8x8 digits (1,400 train)": (work / "digits8.h5", work / "digits8.npz")}


def one(model: Path, data: Path, train: dict, out: Path) -> dict:
    recipe = from_dict({"model": {"path": str(model)}, "data": {"path": str(data)}, "train": train,
                        "stages": [{"kind": "prune", "sparsity": 0.8}, {"kind": "qat"}],
                        "convert": {"quantize": "int8"}, "output": {"tflite": str(out)}})
    start = time.perf_counter()
    report = run(recipe)
    (output,) = report.verification.outputs
    stages = report.to_dict()["stages"]
    return {"drop": output.metrics["accuracy_drop"] * 100, "accuracy": output.metrics["accuracy"] * 100,
            "steps": sum(s["steps"] for s in stages),
            "seconds": time.perf_counter() - start, "passed": report.ok}


def render(rows: list[tuple[str, str, dict]]) -> str:
    lines = [HEADING, "", f"`bench/defaults.py`, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}: "
             "`tfopt convert MODEL --prune 0.8 --qat --data D` (int8), accuracy of the int8 `.tflite` on the held-out "
             "test split against the original float model. Goal: drop <= 1 point with no flag.", "",
             "| problem | settings | accuracy | drop (points) | optimizer steps (both stages) | wall s | verdict |",
             "|---|---|---|---|---|---|---|"]
    for problem, name, r in rows:
        lines.append(f"| {problem} | {name} | {r['accuracy']:.1f}% | {r['drop']:+.1f} | {r['steps']} | "
                     f"{r['seconds']:.0f} | {'passed' if r['passed'] else 'missed a gate'} |")
    lines += ["", "* before = the earlier [train] values (2 epochs, learning rate 1e-4, no minimum steps, no "
              "validation split) on today's code; now = the defaults (at least 300 steps per stage, the saved "
              "optimizer's learning rate else 1e-3, 10 % validation with best-epoch restore, BatchNorm frozen)."]
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-write", action="store_true", help="print only; do not update bench/RESULTS.md")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for problem, (model, data) in problems(work).items():
            for name, train in SETTINGS.items():
                rows.append((problem, name, one(model, data, train, work / "m.tflite")))
                print(problem, name, rows[-1], flush=True)
    text = render(rows)
    print(text)
    if not args.no_write:
        write_section(ROOT / "bench" / "RESULTS.md", text, HEADING)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
