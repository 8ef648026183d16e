"""Quantization-aware training (TF-MOT ``quantize_apply``) for full-int8 conversion.

The quantize scheme keeps what earlier stages made: after pruning the pruning-preserving
scheme (PQAT), after clustering the cluster-preserving scheme (CQAT), after both the
cluster-preserving scheme with sparsity preservation (PCQAT).  The quantize wrappers are
what the TFLite converter reads, so they stay on the exported model.
"""

from __future__ import annotations

from typing import Any

from .. import _tf
from ..recipe.schema import QatStage


def unsupported_reason(layer, stage: QatStage) -> str | None:
    """None when TF-MOT's default 8-bit scheme can quantize ``layer``, else "" (no support)."""
    if type(layer).__name__ == "InputLayer" or _tf.tfmot_supports()["quantize"](layer):
        return None
    return ""


def scheme(previous: tuple[str, ...]):
    q = _tf.tfmot().quantization.keras
    combine = _tf.tfmot().experimental.combine
    if "cluster" in previous:
        return combine.Default8BitClusterPreserveQuantizeScheme(preserve_sparsity="prune" in previous)
    if "prune" in previous:
        return combine.Default8BitPrunePreserveQuantizeScheme()
    return q.default_8bit.Default8BitQuantizeScheme()


def scheme_name(previous: tuple[str, ...]) -> str:
    if "cluster" in previous:
        return "PCQAT" if "prune" in previous else "CQAT"
    return "PQAT" if "prune" in previous else "QAT"


def wrap_layer(layer, stage: QatStage, steps: int, previous: tuple[str, ...]) -> Any:
    return _tf.tfmot().quantization.keras.quantize_annotate_layer(layer)


def finish(model, previous: tuple[str, ...]):
    """Turn the annotated model into the quantization-aware one."""
    q = _tf.tfmot().quantization.keras
    with q.quantize_scope():
        return q.quantize_apply(model, scheme(previous))


def callbacks(stage: QatStage) -> list:
    return []


def strip(model):
    return model


def describe(stage: QatStage, previous: tuple[str, ...]) -> dict:
    return {"scheme": scheme_name(previous)}
