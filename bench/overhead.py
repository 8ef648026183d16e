"""Time a prune + QAT run outside `fit` (issue 10's goal: <= 50 % of the time before the rebuild), one run per process.

    .venv/bin/python bench/overhead.py            # this checkout
    PYTHONPATH=/path/to/other/checkout .venv/bin/python bench/overhead.py   # another version of tfopt

Prints one JSON line: wall seconds of `pipeline.run`, seconds inside Keras `fit` (every stage), and the rest.
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


if __name__ == "__main__":
    sys.exit(main())
