"""The fine-tuning stages: one registry table (kind → config dataclass + implementation module).

``apply_stages`` brings the model into tf_keras (``bridge``), builds the training targets
(``finetune``), then runs the stages in the fixed order prune → cluster → qat.  Each stage
wraps the layers TF-MOT supports, fine-tunes (inside the ``tf.distribute`` strategy), strips
its wrappers and is measured in a TFLite export of its result (``tflite_stats``): per-kernel
sparsity and unique values, gzip size, accuracy and agreement with the original model.

Adding a stage = a config dataclass in recipe.py + a module with ``unsupported_reason``, ``wrap_layer``,
``callbacks``, ``strip``, ``describe`` (optionally ``finish``) + one row here.
"""

from __future__ import annotations

import dataclasses
import importlib
import re
import time
from dataclasses import dataclass
from types import ModuleType
from typing import Callable

import numpy as np

from . import _tf, tflite_stats
from .bridge import to_tf_keras
from .convert import ConvertConfig, convert
from .data import ArraySplit, DataPlan, Subset
from .errors import TfoptError, UnsupportedLayerError
from .finetune import TrainSet, compile_for, fit, steps_per_epoch, strategy_for, train_set
from .models import LoadedModel
from .recipe import STAGE_ORDER, ClusterStage, PruneStage, QatStage, Recipe
from .verify import Thresholds, verify

Progress = Callable[[str], None]


@dataclass(frozen=True)
class StageSpec:
    kind: str
    config: type
    module: str  # tfopt.<module> implements the stage
    verb: str  # for messages: "TF-MOT cannot <verb> ..."
    measure_mode: str  # the TFLite export each stage is measured in
    wraps_weightless: bool  # wrap layers without weights too (quantization needs their activations)


REGISTRY: dict[str, StageSpec] = {
    s.kind: s
    for s in (
        StageSpec("prune", PruneStage, "prune", "prune", "none", False),
        StageSpec("cluster", ClusterStage, "cluster", "cluster", "none", False),
        StageSpec("qat", QatStage, "qat", "quantize (QAT)", "int8", True),
    )
}
assert tuple(REGISTRY) == STAGE_ORDER


def implementation(kind: str) -> ModuleType:
    try:
        return importlib.import_module(f"tfopt.{REGISTRY[kind].module}")
    except KeyError:
        raise TfoptError(f"unknown stage {kind!r}: expected one of {', '.join(REGISTRY)}") from None


def apply_stages(loaded: LoadedModel, recipe: Recipe, plan: DataPlan | None, progress: Progress):
    """Run every stage of ``recipe``; return the exportable tf_keras LoadedModel and per-stage dicts."""
    check = _check_inputs(loaded, plan)
    model, bridge_info = to_tf_keras(loaded, check)
    data = train_set(loaded, model, recipe, plan)
    strategy, notes = strategy_for(recipe.train.strategy)
    steps = steps_per_epoch(data, recipe.train.batch_size) * recipe.train.epochs
    results, previous = [], ()
    for stage in recipe.stages:
        start = time.perf_counter()
        with _trusted():
            model, result = _run_stage(model, stage, previous, data, recipe, strategy, steps, progress)
        result.update(bridge_info if not previous else {})
        result["notes"] = notes
        result["train_seconds"] = round(time.perf_counter() - start, 3)
        progress(f"measuring the {stage.kind} result in TFLite")
        result.update(measure(model, loaded, REGISTRY[stage.kind].measure_mode, plan, data))
        results.append(result)
        previous += (stage.kind,)
    return as_loaded(loaded, model), results


def _run_stage(model, stage, previous, data: TrainSet, recipe: Recipe, strategy, steps: int, progress: Progress):
    spec, impl = REGISTRY[stage.kind], implementation(stage.kind)
    skipped = unsupported_layers(model, stage)
    if skipped and not recipe.train.skip_unsupported:
        raise UnsupportedLayerError(
            f"{stage.kind}: TF-MOT cannot {spec.verb} {len(skipped)} layer(s) of model '{model.name}': "
            + ", ".join(f"'{n}' ({c}{': ' + why if why else ''})" for n, c, why in skipped),
            f"pass --skip-unsupported to apply {stage.kind} to the supported layers only",
        )
    skip = {n for n, _, _ in skipped}
    K = _tf.tf_keras()
    default = strategy is _tf.tf().distribute.get_strategy()
    try:
        with strategy.scope():
            fresh = fresh_copy(model, previous)

            def wrap(layer):
                if layer.name in skip or (not layer.weights and not spec.wraps_weightless):
                    return layer
                return impl.wrap_layer(layer, stage, steps, previous)

            wrapped = K.models.clone_model(fresh, clone_function=wrap)
            if hasattr(impl, "finish"):
                wrapped = impl.finish(wrapped, previous)
            compile_for(wrapped, data, recipe.train.learning_rate)
        history = fit(wrapped, data, recipe, stage.kind, impl.callbacks(stage), progress)
        out = impl.strip(wrapped)
        if not default:  # leave the strategy's mirrored variables behind before export
            out = fresh_copy(out, previous + (stage.kind,))
    except TfoptError:
        raise
    except (ValueError, TypeError, RuntimeError) as e:
        where = "" if default else f" under --strategy {recipe.train.strategy}"
        raise UnsupportedLayerError(f"{stage.kind}{where} failed in TF-MOT: {_error_line(e)}") from e
    result = {"kind": stage.kind, **impl.describe(stage, previous), "target": data.target,
              "loss_function": data.loss_names[0] if len(data.loss_names) == 1 else data.loss_names,
              "train_samples": len(data), "batch_size": recipe.train.batch_size,
              "learning_rate": recipe.train.learning_rate, "steps": steps, **history,
              "skipped_layers": [{"name": n, "class": c, **({"reason": w} if w else {})} for n, c, w in skipped]}
    return out, result


def _error_line(e: Exception) -> str:
    """The informative line of a (possibly autograph-wrapped, multi-line) TensorFlow error."""
    lines = [ln.strip() for ln in str(e).strip().splitlines() if ln.strip()]
    inner = [ln for ln in lines if re.match(r"^\w+(Error|Exception): ", ln)]
    return (inner[-1] if inner else f"{type(e).__name__}: {lines[0] if lines else ''}")[:300]


def _trusted():
    """TF-MOT clones through configs: Lambda layers of a model the user loaded must deserialize."""
    return _tf.trusted_deserialization()


def unsupported_layers(model, stage) -> list[tuple[str, str, str]]:
    """(name, class, reason) of every layer the stage cannot handle, in model order."""
    impl = implementation(stage.kind)
    out = []
    for layer in model.layers:
        why = impl.unsupported_reason(layer, stage)
        if why is not None:
            out.append((layer.name, type(layer).__name__, why))
    return out


def fresh_copy(model, done: tuple[str, ...] = ()):
    """A new model with new variables (created in the current strategy scope) and the same weights."""
    K = _tf.tf_keras()
    if "qat" in done:
        with _tf.tfmot().quantization.keras.quantize_scope():
            copy = K.models.clone_model(model)
    else:
        copy = K.models.clone_model(model)
    copy.set_weights(model.get_weights())
    return copy


def as_loaded(loaded: LoadedModel, model) -> LoadedModel:
    """The fine-tuned tf_keras model behind the original's signature (names and shapes)."""
    # quantize_apply renames the output layers (quant_<name>); the converter names the
    # signature outputs after model.output_names, which verification matches by name
    model.output_names = [o.name for o in loaded.outputs]
    return dataclasses.replace(
        loaded, format=loaded.format, keras_version=_tf.tf_keras().__version__, model=model, training_config=None
    )


def _check_inputs(loaded: LoadedModel, plan: DataPlan | None) -> dict[str, np.ndarray] | None:
    if plan is None:
        return None
    subset = plan.evaluation if len(plan.evaluation) else plan.train
    x, _ = subset.split.rows(subset.index[:256])
    return x


# ------------------------------------------------------------------ measurement


def measure(model, original: LoadedModel, mode: str, plan: DataPlan | None, data: TrainSet) -> dict:
    """Convert ``model`` to TFLite (``mode``) and measure its weights, size and fidelity."""
    exported = as_loaded(original, model)
    calibration = None
    if mode == "int8":
        calibration = plan.calibration if plan is not None else _subset_of(original, data, 200)
    tflite = convert(exported, ConvertConfig(mode), calibration).tflite
    out = {"measured_in": f"{mode if mode != 'none' else 'float32'} TFLite export",
           **weights_summary(tflite, layer_names(model))}
    if plan is not None and len(plan.evaluation):
        v = verify(tflite, original, plan.evaluation, Thresholds())
        first = v.outputs[0]
        out.update({"accuracy": first.accuracy_tflite, "accuracy_reference": first.accuracy_reference,
                    "accuracy_drop": first.accuracy_drop, "agreement": first.agreement})
    return out


def layer_names(model) -> list[str]:
    """Layer names, including the layers inside quantize wrappers (``quant_<name>`` → ``<name>``)."""
    return [layer.name for layer in model.layers] + [getattr(layer, "layer", layer).name for layer in model.layers]


def weights_summary(tflite: bytes, layer_names: list[str] | None = None) -> dict:
    """gzip size plus per-kernel sparsity / unique values of a .tflite, compact for the report."""
    s = tflite_stats.summary(tflite, layer_names)
    known = set(layer_names or [])
    s["layers"] = {
        _original_name(k["layer"], known): {"sparsity": k["sparsity"], "unique_values": k["unique_values"],
                     "max_unique_per_channel": k["max_unique_per_channel"], "dtype": k["dtype"]}
        for k in s.pop("kernels")
    }
    return s


def _original_name(name: str, known: set[str]) -> str:
    return name[len("quant_"):] if name.startswith("quant_") and name[len("quant_"):] in known else name


def _subset_of(original: LoadedModel, data: TrainSet, n: int) -> Subset:
    x = {s.name: a[:n] for s, a in zip(original.inputs, data.x)}
    return Subset(ArraySplit(x, {}), np.arange(min(n, len(data))))
