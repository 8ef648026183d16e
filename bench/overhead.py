"""Time a prune + QAT run outside `fit` (issue 10's goal: <= 50 % of the time before the rebuild).

    .venv/bin/python bench/overhead.py                       # one run of this checkout: one JSON line
    .venv/bin/python bench/overhead.py --compare OLD [--write] # interleaved runs of this checkout and another
                                                             # (e.g. `git worktree add /tmp/old a8b411c`)

One run per process: wall seconds of `pipeline.run`, seconds inside Keras `fit` (every stage), and the rest.
`--write` replaces the "Fine-tuning overhead" section of bench/RESULTS.md.
"""

from __future__ import annotations

import importlib
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MODEL, DATA = ROOT / "sample_models" / "mnist_cnn.h5", ROOT / "sample_models" / "mnist.npz"


def main() -> None:
    import tfopt
    from tfopt import _tf
    from tfopt.pipeline import run
    from tfopt.recipe import from_dict

    _tf.tf()
    # the module whose `fit` the stages call: tfopt.stages.apply now, tfopt.stages before the rebuild
    holder = next(m for m in (_try("tfopt.stages.apply"), _try("tfopt.stages")) if m is not None and hasattr(m, "fit"))
    inside = [0.0]
    real = holder.fit

    def timed(*args, **kwargs):
        start = time.perf_counter()
        try:
            return real(*args, **kwargs)
        finally:
            inside[0] += time.perf_counter() - start

    holder.fit = timed
    with tempfile.TemporaryDirectory() as tmp:
        recipe = from_dict({"model": {"path": str(MODEL)}, "data": {"path": str(DATA)},
                            "stages": [{"kind": "prune", "sparsity": 0.8}, {"kind": "qat"}],
                            "convert": {"quantize": "int8"}, "output": {"tflite": f"{tmp}/m.tflite"}})
        start = time.perf_counter()
        run(recipe)
        wall = time.perf_counter() - start
    print(json.dumps({"tfopt": str(Path(tfopt.__file__).parent), "wall_s": wall, "fit_s": inside[0],
                      "outside_fit_s": wall - inside[0]}))


def _try(name: str):
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


from render import write_section  # noqa: E402

HEADING = "## Fine-tuning overhead"


def compare(old: str, reps: int = 3) -> dict:
    import os
    import statistics
    import subprocess

    runs: dict[str, list[dict]] = {"new": [], "old": []}
    for _ in range(reps):  # interleaved: both versions see the same machine load
        for label, path in (("new", str(ROOT)), ("old", old)):
            env = {**os.environ, "PYTHONPATH": path}
            out = subprocess.run([sys.executable, __file__], env=env, capture_output=True, text=True, check=True)
            runs[label].append(json.loads(out.stdout.strip().splitlines()[-1]))
    med = {k: {m: statistics.median(r[m] for r in v) for m in ("wall_s", "fit_s", "outside_fit_s")}
           for k, v in runs.items()}
    return {"runs": runs, "median": med, "ratio": med["new"]["outside_fit_s"] / med["old"]["outside_fit_s"]}


def render(result: dict, old: str) -> str:
    med, ratio = result["median"], result["ratio"]
    pairs = [n["outside_fit_s"] / o["outside_fit_s"] for n, o in zip(result["runs"]["new"], result["runs"]["old"])]
    return "\n".join([
        HEADING, "",
        f"`bench/overhead.py --compare {old}`: `tfopt convert` of the sample model with `--prune 0.8 --qat` "
        "(`pipeline.run` in one process each, TensorFlow already imported), this checkout against the version "
        f"before the rebuild (commit a8b411c), {len(pairs)} interleaved runs each; medians.", "",
        "| version | wall s | inside `fit` s | outside `fit` s |", "|---|---|---|---|",
        *[f"| {k} | {v['wall_s']:.1f} | {v['fit_s']:.1f} | {v['outside_fit_s']:.1f} |" for k, v in med.items()], "",
        f"Outside `fit`: **{ratio:.2f}×** the time before — goal ≤ 0.5×: {'met' if ratio <= 0.5 else '**missed**'} "
        f"(per pair {', '.join(f'{p:.2f}×' for p in pairs)}). Removed: the repeated int8 conversion and verification "
        "of the last stage, the float32 conversion of the QAT model as a size baseline (now the original's, "
        "converted once), a TFLite export of each earlier stage (measured in its stripped weights), a model copy "
        "per stage, and the reference predictions per stage.", ""])


if __name__ == "__main__":
    if "--compare" in sys.argv:
        other = sys.argv[sys.argv.index("--compare") + 1]
        text = render(compare(other), other)
        print(text)
        if "--write" in sys.argv:
            write_section(ROOT / "bench" / "RESULTS.md", HEADING, text)
    else:
        sys.exit(main())
