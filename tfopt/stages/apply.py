"""Run the fine-tuning stages in their fixed order on a tf_keras copy of the model.

``apply_stages`` brings the model into tf_keras (``bridge``), builds the training targets
(``finetune``), then runs each stage: wrap the layers TF-MOT supports, fine-tune (inside the
``tf.distribute`` strategy), strip the wrappers, and measure the result in a TFLite export of it
(the ``measure`` callback the pipeline gives: the last stage in the run's own conversion, the others in their
stripped Keras weights and outputs — the numbers a float32 export would hold, without converting).
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from .. import _tf
from ..data import DataPlan
from ..errors import TfoptError, UnsupportedLayerError
from ..models import LoadedModel
from ..progress import Progress
from ..recipe.schema import DataSection, TrainSection
from ..report import SkippedLayer, StageMeasure, StageResult
from . import implementation, spec
from .bridge import to_tf_keras
from .finetune import TrainSet, compile_for, fit, steps_per_epoch, strategy_for, train_set

Measure = Callable[[Any, bool], StageMeasure]  # (tf_keras model, last stage?) -> its measurement


@dataclass
class StageContext:
    """What every stage gets: the training samples, the training settings, the strategy and the budget."""

    data: TrainSet
    train: TrainSection
    strategy: Any
    steps: int
    progress: Progress
    default_strategy: bool = True  # no tf.distribute strategy asked for (decided outside any scope)


def apply_stages(loaded: LoadedModel, stages: tuple, train: TrainSection, data: DataSection, seed: int,
                 plan: DataPlan | None, measure: Measure, progress: Progress) -> tuple[LoadedModel, list[StageResult]]:
    """Run every stage; return the exportable tf_keras LoadedModel and one result per stage."""
    model, bridge_info = to_tf_keras(loaded, _check_inputs(plan))
    samples = train_set(loaded, model, train, data, seed, plan)
    strategy, notes = strategy_for(train.strategy)
    ctx = StageContext(samples, train, strategy, steps_per_epoch(samples, train.batch_size) * train.epochs, progress,
                       default_strategy=strategy is _tf.tf().distribute.get_strategy())
    results: list[StageResult] = []
    previous: tuple[str, ...] = ()
    for i, config in enumerate(stages):
        start = time.perf_counter()
        with _tf.trusted_deserialization():  # TF-MOT clones through configs: the user's Lambda layers must load
            model, result = run_stage(model, config, previous, ctx)
        result.bridge = bridge_info if not previous else {}
        result.notes = list(notes)
        result.train_seconds = time.perf_counter() - start
        progress(f"measuring the {config.kind} result in TFLite")
        result.measured = measure(model, i == len(stages) - 1)
        results.append(result)
        previous += (config.kind,)
    return as_loaded(loaded, model), results


def run_stage(model, config, previous: tuple[str, ...], ctx: StageContext):
    """Wrap, fine-tune and strip one stage; TF-MOT's failures become errors naming the layers."""
    stage_spec, impl = spec(config.kind), implementation(config.kind)
    skipped = unsupported_layers(model, config)
    if skipped and not ctx.train.skip_unsupported:
        raise UnsupportedLayerError(
            f"{config.kind}: TF-MOT cannot {stage_spec.verb} {len(skipped)} layer(s) of model '{model.name}': "
            + ", ".join(f"'{s.name}' ({s.cls}{': ' + s.reason if s.reason else ''})" for s in skipped),
            f"pass --skip-unsupported to apply {config.kind} to the supported layers only",
        )
    skip = {s.name for s in skipped}
    K = _tf.tf_keras()
    try:
        with ctx.strategy.scope():
            # the bridge's rebuild and each stage's stripped result are new models already; only another
            # strategy needs its own copy (variables created inside its scope)
            fresh = model if ctx.default_strategy else fresh_copy(model, previous)

            def wrap(layer):
                if layer.name in skip or (not layer.weights and not stage_spec.wraps_weightless):
                    return layer
                return impl.wrap_layer(layer, config, ctx.steps, previous)

            wrapped = K.models.clone_model(fresh, clone_function=wrap)
            if hasattr(impl, "finish"):
                wrapped = impl.finish(wrapped, previous)
            compile_for(wrapped, ctx.data, ctx.train.learning_rate)
        history = fit(wrapped, ctx.data, ctx.train, config.kind, impl.callbacks(config), ctx.progress)
        out = impl.strip(wrapped)
        if not ctx.default_strategy:  # leave the strategy's mirrored variables behind before export
            out = fresh_copy(out, previous + (config.kind,))
    except TfoptError:
        raise
    except (ValueError, TypeError, RuntimeError) as e:
        where = "" if ctx.default_strategy else f" under --strategy {ctx.train.strategy}"
        raise UnsupportedLayerError(f"{config.kind}{where} failed in TF-MOT: {error_line(e)}") from e
    data = ctx.data
    result = StageResult(
        kind=config.kind, settings=impl.describe(config, previous), target=data.target,
        loss_function=data.loss_names[0] if len(data.loss_names) == 1 else list(data.loss_names),
        train_samples=len(data), batch_size=ctx.train.batch_size, learning_rate=ctx.train.learning_rate,
        epochs=ctx.train.epochs, steps=ctx.steps, history=history, skipped_layers=skipped,
    )
    return out, result


def error_line(e: Exception) -> str:
    """The informative line of a (possibly autograph-wrapped, multi-line) TensorFlow error."""
    lines = [ln.strip() for ln in str(e).strip().splitlines() if ln.strip()]
    inner = [ln for ln in lines if re.match(r"^\w+(Error|Exception): ", ln)]
    return (inner[-1] if inner else f"{type(e).__name__}: {lines[0] if lines else ''}")[:300]


def unsupported_layers(model, config) -> list[SkippedLayer]:
    """Every layer the stage cannot handle, in model order, with the reason."""
    impl = implementation(config.kind)
    out = []
    for layer in model.layers:
        why = impl.unsupported_reason(layer, config)
        if why is not None:
            out.append(SkippedLayer(layer.name, type(layer).__name__, why))
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
    return loaded.replace(keras_version=_tf.tf_keras().__version__, model=model, training_config=None)


def layer_names(model) -> list[str]:
    """Layer names, including the layers inside quantize wrappers (``quant_<name>`` → ``<name>``)."""
    return [layer.name for layer in model.layers] + [getattr(layer, "layer", layer).name for layer in model.layers]


def original_name(name: str, known: set[str]) -> str:
    return name[len("quant_"):] if name.startswith("quant_") and name[len("quant_"):] in known else name


def _check_inputs(plan: DataPlan | None) -> dict[str, np.ndarray] | None:
    if plan is None:
        return None
    subset = plan.evaluation if len(plan.evaluation) else plan.train
    x, _ = subset.split.rows(subset.index[:256])
    return x
