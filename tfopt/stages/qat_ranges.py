"""Start QAT from measured activation ranges instead of TF-MOT's fixed [-6, 6].

TF-MOT's ``MovingAverageQuantizer`` creates every activation range as min = -6, max = 6 and
moves it with an exponential moving average of decay 0.999 (hard-coded): after the ~60-600
optimizer steps of a typical tfopt fine-tune the ranges have moved 6-45 % of the way to the
real ones.  A tensor in [0, 1] is then quantized with a 12/255 step (12x too coarse), one that
reaches 20 is clipped at 6 — and the converter exports exactly these ranges.

``calibrate_ranges(qat_model, batches)`` runs the QAT model forward (training mode, no
optimizer step) on a few batches with the EMA decay replaced by a running mean (decay k/(k+1)
for batch k), so every range becomes the mean per-batch min/max, then restores every other
variable (BatchNormalization statistics move in training mode).  QAT then fine-tunes from
there.  The replacement is scoped: ``quant_ops.MovingAvgQuantize`` is patched only inside the
call.
"""

from __future__ import annotations

import contextlib
from typing import Iterable, Iterator

import numpy as np

from .. import _tf

RANGE_SUFFIXES = ("_min:0", "_max:0", "_min", "_max")


@contextlib.contextmanager
def _running_mean_ema(decay) -> Iterator[None]:
    """Inside: TF-MOT's moving-average quantizers use ``decay`` (a tf.Variable) instead of 0.999."""
    _tf.tfmot()
    from tensorflow_model_optimization.python.core.quantization.keras import quant_ops

    original = quant_ops.MovingAvgQuantize

    def patched(*args, **kwargs):
        kwargs["ema_decay"] = decay
        return original(*args, **kwargs)

    quant_ops.MovingAvgQuantize = patched
    try:
        yield
    finally:
        quant_ops.MovingAvgQuantize = original


def is_range_variable(variable) -> bool:
    name = variable.name
    return name.endswith(RANGE_SUFFIXES) and "quant" in name


def calibrate_ranges(qat_model, batches: Iterable, max_batches: int = 8) -> dict:
    """Set the QAT model's activation ranges from ``batches`` (inputs as ``model`` takes them)."""
    tf = _tf.tf()
    variables = qat_model.weights
    keep = [(v, v.numpy()) for v in variables if not is_range_variable(v)]
    ranges = [v for v in variables if is_range_variable(v)]
    before = {v.name: float(np.mean(v.numpy())) for v in ranges}
    decay = tf.Variable(0.0, trainable=False, dtype=tf.float32)
    count = 0
    with _running_mean_ema(decay):
        for count, batch in enumerate(batches, start=1):
            decay.assign(float(count - 1) / count)
            qat_model(batch, training=True)
            if count >= max_batches:
                break
    for variable, value in keep:
        variable.assign(value)
    moved = sum(1 for v in ranges if abs(float(np.mean(v.numpy())) - before[v.name]) > 1e-6)
    return {"batches": count, "range_variables": len(ranges), "changed": moved}


def range_summary(qat_model) -> dict[str, tuple[float, float]]:
    """name -> (min, max) of every activation range variable pair (for reports and tests)."""
    out: dict[str, list[float]] = {}
    for v in qat_model.weights:
        if is_range_variable(v):
            base = v.name.rsplit("_", 1)[0]
            out.setdefault(base, [0.0, 0.0])["_max" in v.name] = float(np.mean(v.numpy()))
    return {k: (lo, hi) for k, (lo, hi) in out.items()}


def batches_of(x, batch_size: int = 64, max_batches: int = 8, seed: int = 0):
    """Shuffled batches of ``x`` (an array, or a list of arrays for several inputs)."""
    parts = x if isinstance(x, (list, tuple)) else [x]
    n = len(parts[0])
    order = np.random.default_rng(seed).permutation(n)
    for start in range(0, min(n, batch_size * max_batches), batch_size):
        idx = order[start : start + batch_size]
        chunk = [p[idx] for p in parts]
        yield chunk if len(chunk) > 1 else chunk[0]
