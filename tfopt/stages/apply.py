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
from .finetune import TrainSet, compile_for, fit, strategy_for, train_set

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
    teacher: Any = None  # the original model (tf_keras), which the distill stage learns from


def apply_stages(loaded: LoadedModel, stages: tuple, train: TrainSection, data: DataSection, seed: int,
                 plan: DataPlan | None, measure: Measure, progress: Progress) -> tuple[LoadedModel, list[StageResult]]:
    """Run every stage; return the exportable tf_keras LoadedModel and one result per stage."""
    strategy, notes = strategy_for(train.strategy)  # first: a multi-worker strategy configures the runtime
    model, bridge_info = to_tf_keras(loaded, _check_inputs(plan))
    samples = train_set(loaded, model, train, data, seed, plan)
    ctx = StageContext(samples, train, strategy, samples.budget.steps, progress,
                       default_strategy=strategy is _tf.tf().distribute.get_strategy(), teacher=model)
    notes = notes + [f"budget: {samples.budget.reason}",
                     f"learning rate {samples.learning_rate:g}: {samples.learning_rate_source}"]
    results: list[StageResult] = []
    previous: tuple[str, ...] = ()
    for i, config in enumerate(stages):
        start = time.perf_counter()
        with _tf.trusted_deserialization():  # TF-MOT clones through configs: the user's Lambda layers must load
            model, result = run_stage(model, config, previous, ctx)
        result.bridge = bridge_info if not previous else {}
        result.notes = notes + result.notes
        result.train_seconds = time.perf_counter() - start
        progress(f"measuring the {config.kind} result")
        result.measured = measure(model, i == len(stages) - 1)
        results.append(result)
        previous += (config.kind,)
    return as_loaded(loaded, model), results


def run_stage(model, config, previous: tuple[str, ...], ctx: StageContext):
    """Prepare (wrap the layers TF-MOT supports, or transform the model), fine-tune and strip one stage;
    TF-MOT's failures become errors naming the layers."""
    impl = implementation(config.kind)
    if hasattr(impl, "replace"):  # slim, distill: a new model (and its result) from the stage itself
        try:
            return impl.replace(model, config, previous, ctx)
        except TfoptError:
            raise
        except (ValueError, TypeError, RuntimeError) as e:  # Keras rebuilding or training the new model
            raise UnsupportedLayerError(f"{config.kind} failed on model '{model.name}': {error_line(e)}") from e
    try:
        wrapped, skipped, own, notes = prepare(model, config, previous, ctx)
        restore_from = impl.restore_from(config, ctx.data.budget) if hasattr(impl, "restore_from") else 0
        history = fit(wrapped, ctx.data, ctx.train, config.kind, impl.callbacks(config), ctx.progress, restore_from)
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
        train_samples=len(data), batch_size=ctx.train.batch_size, learning_rate=data.learning_rate,
        epochs=data.budget.epochs, steps=data.budget.steps, history=history, skipped_layers=skipped,
        own_configs=own, notes=notes, validation_samples=data.validation_samples,
    )
    return out, result


def prepare(model, config, previous: tuple[str, ...], ctx: StageContext):
    """The compiled training model of a stage: (model, skipped layers, layers on tfopt's configs, notes)."""
    stage_spec, impl = spec(config.kind), implementation(config.kind)
    K = _tf.tf_keras()
    if hasattr(impl, "transform"):  # the stage rebuilds the whole model (QAT: TF-MOT's layout transforms)
        with ctx.strategy.scope():
            # transform inside the scope, from a copy made in it: collaborative QAT computes its sparsity
            # masks and cluster centroids from the weights as it builds, so a rebuild after it would
            # compute them from fresh random weights (measured: sparsity 0.60 -> 0.26 under mirrored)
            source = model if ctx.default_strategy else fresh_copy(model, previous)
            built, skipped, own, notes = impl.transform(source, config, previous, ctx)
            compile_for(built, ctx.data)
        return built, skipped, own, notes
    skipped = unsupported_layers(model, config)
    if skipped and not ctx.train.skip_unsupported:
        raise UnsupportedLayerError(
            f"{config.kind}: TF-MOT cannot {stage_spec.verb} {len(skipped)} layer(s) of model '{model.name}': "
            + ", ".join(f"'{s.name}' ({s.cls}{': ' + s.reason if s.reason else ''})" for s in skipped),
            f"pass --skip-unsupported to apply {config.kind} to the supported layers only",
        )
    skip = {s.name for s in skipped}
    with ctx.strategy.scope():
        # the bridge's rebuild and each stage's stripped result are new models already; only another
        # strategy needs its own copy (variables created inside its scope)
        fresh = model if ctx.default_strategy else fresh_copy(model, previous)

        def wrap(layer):
            if layer.name in skip or (not layer.weights and not stage_spec.wraps_weightless):
                return layer
            return impl.wrap_layer(layer, config, ctx.steps, previous)

        wrapped = K.models.clone_model(fresh, clone_function=wrap)
        compile_for(wrapped, ctx.data)
    return wrapped, skipped, [], []


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
        from .qat_configs import qat_scope

        with qat_scope():
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
