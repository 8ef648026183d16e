"""Magnitude pruning (TF-MOT ``prune_low_magnitude``): unstructured, 2:4 or block sparsity.

The schedule reaches the target sparsity after 60 % of the fine-tuning steps, so the last 40 % let
the remaining weights recover (measured: bench/RESULTS.md "Fine-tuning defaults"); the best
validation epoch is kept only among the epochs at the final sparsity.  The wrappers are stripped
before export, leaving plain layers whose kernels hold exact zeros.
"""

from __future__ import annotations

from typing import Any

from .. import _tf
from ..recipe.schema import PruneStage

from .budget import Budget, first_epoch_at_target

RAMP = 0.6  # fraction of the steps over which the sparsity ramps up (polynomial schedule)


def unsupported_reason(layer, stage: PruneStage) -> str | None:
    """None when TF-MOT can prune ``layer`` this way (layers without weights need nothing), else why not."""
    if not layer.weights:
        return None
    if not _tf.tfmot_supports()["prune"](layer):
        return ""
    kernel = getattr(layer, "kernel", None)
    if stage.block and kernel is not None and len(kernel.shape) != 2:
        return f"block sparsity needs 2-D weights, its kernel is {len(kernel.shape)}-D"
    if stage.block and kernel is not None and any(d % b for d, b in zip(kernel.shape, stage.block)):
        shape = "x".join(str(d) for d in kernel.shape)
        return f"its {shape} kernel does not divide into {stage.block[0]}x{stage.block[1]} blocks"
    return None


def end_step(stage: PruneStage, steps: int) -> int:
    """The step at which the mask reaches its final sparsity."""
    if stage.schedule == "constant" or steps < 4:
        return 0
    end = max(1, int(steps * RAMP))
    frequency = max(1, end // 10)
    return frequency * (end // frequency)


def restore_from(stage: PruneStage, budget: Budget) -> int:
    """The first epoch whose weights may be kept: restoring an earlier, less sparse epoch would undo pruning."""
    return first_epoch_at_target(end_step(stage, budget.steps), budget.steps_per_epoch)


def schedule(stage: PruneStage, steps: int):
    """The pruning schedule over ``steps`` optimizer steps (pruning step counts from 0)."""
    s = _tf.tfmot().sparsity.keras
    if stage.schedule == "constant" or steps < 4:
        return s.ConstantSparsity(stage.sparsity, begin_step=0, frequency=max(1, steps // 10))
    end = end_step(stage, steps)
    frequency = max(1, end // 10)
    return s.PolynomialDecay(initial_sparsity=0.0, final_sparsity=stage.sparsity, begin_step=0, end_step=end,
                             frequency=frequency)


def wrap_layer(layer, stage: PruneStage, steps: int, previous: tuple[str, ...]) -> Any:
    kwargs: dict[str, Any] = {"pruning_schedule": schedule(stage, steps)}
    if stage.block:
        kwargs["block_size"] = tuple(stage.block)
    if stage.pattern == "2:4":
        kwargs["sparsity_m_by_n"] = (2, 4)
    return _tf.tfmot().sparsity.keras.prune_low_magnitude(layer, **kwargs)


def callbacks(stage: PruneStage) -> list:
    return [_tf.tfmot().sparsity.keras.UpdatePruningStep()]


def strip(model):
    return _tf.tfmot().sparsity.keras.strip_pruning(model)


def describe(stage: PruneStage, previous: tuple[str, ...]) -> dict:
    out = {"target_sparsity": stage.sparsity, "schedule": stage.schedule, "pattern": stage.pattern}
    if stage.block:
        out["block"] = "x".join(str(b) for b in stage.block)
    return out
