"""Fine-tuning stages: one registry keyed by ``StageKind`` (config dataclass + implementation module).

Three interfaces.  A stage that replaces the whole model and trains it itself, if at all (slim, distill),
provides ``replace(model, config, previous, ctx) -> (model, StageResult)`` and ``describe``.  A stage
that rebuilds the model for training (QAT) provides ``transform`` (see ``apply.prepare``).  Any other stage
provides ``unsupported_reason(layer, config)``, ``wrap_layer(layer, config, steps,
previous)``, ``callbacks(config)``, ``strip(model)``, ``describe(config, previous)`` and optionally
``finish(model, previous)``; ``apply.py`` runs them in the fixed order with the shared fine-tuning loop
(``finetune.py``) on the tf_keras model the bridge (``bridge.py``) gives.  Adding a stage = a config
dataclass in ``recipe/schema.py`` + a module here + one row below.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from types import ModuleType

from ..errors import TfoptError
from ..recipe.schema import STAGE_ORDER, ClusterStage, DistillStage, PruneStage, QatStage, SlimStage, StageKind


@dataclass(frozen=True)
class StageSpec:
    kind: StageKind
    config: type
    module: str  # tfopt.stages.<module> implements the stage
    verb: str  # for messages: "TF-MOT cannot <verb> ..."
    wraps_weightless: bool  # wrap layers without weights too (quantization needs their activations)


REGISTRY: dict[StageKind, StageSpec] = {
    s.kind: s
    for s in (
        StageSpec(StageKind.SLIM, SlimStage, "slim", "slim", False),
        StageSpec(StageKind.DISTILL, DistillStage, "distill", "distill", False),
        StageSpec(StageKind.PRUNE, PruneStage, "prune", "prune", False),
        StageSpec(StageKind.CLUSTER, ClusterStage, "cluster", "cluster", False),
        StageSpec(StageKind.QAT, QatStage, "qat", "quantize (QAT)", True),
    )
}
assert tuple(REGISTRY) == STAGE_ORDER


def spec(kind: str) -> StageSpec:
    try:
        return REGISTRY[StageKind(kind)]
    except ValueError:
        raise TfoptError(f"unknown stage {kind!r}: expected one of {', '.join(STAGE_ORDER)}") from None


def implementation(kind: str) -> ModuleType:
    return importlib.import_module(f"{__name__}.{spec(kind).module}")
