"""The shared fine-tuning loop: training targets, loss, ``tf.distribute`` strategy, epoch progress.

Targets: the labels when the training data has them for every output; otherwise the
original model's own outputs (distillation from the float model), so pruning, clustering
and QAT work with unlabelled data.  The loss comes from ``--loss``, else the model's saved
compile config, else the output activation and the label shape.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .. import _tf
from ..data import UNNAMED, DataPlan, load_data
from ..errors import DataError, UsageError
from ..models import LoadedModel
from ..progress import Progress, counter
from ..recipe.schema import DataSection, TrainSection

LABELS = "labels"
DISTILL = "original model outputs (distillation: no labels in the training data)"


@dataclass
class TrainSet:
    """Materialised fine-tuning samples (inputs and targets in model order) and how to score them."""

    x: list[np.ndarray]
    y: list[np.ndarray]
    loss: list[Any]
    target: str  # LABELS or DISTILL
    source: str
    loss_names: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.x[0])

    def feed(self, parts: list[np.ndarray]):
        return parts if len(parts) > 1 else parts[0]


def train_set(loaded: LoadedModel, model, train: TrainSection, data: DataSection, seed: int,
              plan: DataPlan | None) -> TrainSet:
    """The fine-tuning samples for ``model`` (a tf_keras rebuild of ``loaded``)."""
    source = data.train or data.path
    if data.train is not None:
        # every sample of the training file trains (no calibration / evaluation split)
        train_plan = load_data(data.train, loaded.inputs, loaded.outputs, calibration_samples=10**12,
                               seed=seed, scale=data.scale, offset=data.offset)
        if plan is not None and UNNAMED in train_plan.train.split.rows(train_plan.train.index[:1])[1]:
            named = [k for k in plan.train.split.rows(plan.train.index[:1])[1] if k != UNNAMED]
            if len(named) == 1:
                train_plan.name_labels(named[0])  # the same output the evaluation labels went to
        subset = train_plan.train
    elif plan is not None:
        subset = plan.train
    else:
        raise UsageError("the fine-tuning stages need training data: pass --data FILE or --train-data FILE")
    if len(subset) == 0:
        raise DataError(f"{source}: no training samples for the fine-tuning stages")
    xs, ys = subset.all()
    x = [np.asarray(xs[s.name]) for s in loaded.inputs]
    names = [s.name for s in loaded.outputs]
    if all(n in ys for n in names):
        y = [np.asarray(ys[n]) for n in names]
        losses = [_label_loss(train.loss, loaded, model, i, y[i]) for i in range(len(names))]
        target = LABELS
    else:
        teacher = loaded.predict({s.name: a for s, a in zip(loaded.inputs, x)})
        y = [np.asarray(teacher[n], dtype=np.float32) for n in names]
        losses = [train.loss or _distill_loss(model, i) for i in range(len(names))]
        target = DISTILL
    return TrainSet(x, y, [_loss_object(v) for v in losses], target, str(source), [str(v) for v in losses])


def _activation(model, index: int) -> str:
    layer = model.get_layer(model.output_names[index]) if hasattr(model, "output_names") else model.layers[-1]
    if type(layer).__name__ == "Softmax":
        return "softmax"
    act = getattr(layer, "activation", None)
    return getattr(act, "__name__", str(act)) if act is not None else "linear"


def _saved_loss(loaded: LoadedModel, index: int) -> Any:
    config = loaded.training_config or {}
    loss = config.get("loss")
    if isinstance(loss, dict) and "class_name" not in loss:  # per output name
        loss = loss.get(loaded.outputs[index].name)
    if isinstance(loss, list):
        loss = loss[index] if index < len(loss) else None
    if isinstance(loss, dict):
        return {"class_name": loss["class_name"], "config": loss.get("config", {})}
    return loss


def _label_loss(override: str | None, loaded: LoadedModel, model, index: int, labels: np.ndarray) -> Any:
    if override:
        return override
    saved = _saved_loss(loaded, index)
    if saved:
        return saved
    act = _activation(model, index)
    ids = labels.ndim == 1 or (labels.ndim == 2 and labels.shape[1] == 1 and model.outputs[index].shape[-1] != 1)
    if act == "softmax":
        return "sparse_categorical_crossentropy" if ids else "categorical_crossentropy"
    if act == "sigmoid":
        return "binary_crossentropy"
    if ids and (model.outputs[index].shape[-1] or 1) > 1 and np.issubdtype(labels.dtype, np.integer):
        return "sparse_categorical_crossentropy_from_logits"
    return "mean_squared_error"


def _distill_loss(model, index: int) -> str:
    # cross-entropy against soft targets == KL divergence to the teacher up to a constant
    return {"softmax": "categorical_crossentropy", "sigmoid": "binary_crossentropy"}.get(
        _activation(model, index), "mean_squared_error"
    )


def _loss_object(spec: Any):
    K = _tf.tf_keras()
    if spec == "sparse_categorical_crossentropy_from_logits":
        return K.losses.SparseCategoricalCrossentropy(from_logits=True)
    try:
        return K.losses.get(spec)
    except (ValueError, TypeError) as e:
        raise UsageError(f"--loss {spec!r}: not a tf_keras loss ({e}); e.g. sparse_categorical_crossentropy, mse") from e


# ------------------------------------------------------------------ strategy


def strategy_for(name: str) -> tuple[Any, list[str]]:
    """The ``tf.distribute`` strategy for ``--strategy`` and notes for the report."""
    import os

    tf = _tf.tf()
    if name == "none":
        return tf.distribute.get_strategy(), []
    if name == "mirrored":
        devices = [d.name for d in tf.config.list_logical_devices("GPU")] or [
            d.name for d in tf.config.list_logical_devices("CPU")
        ]
        strategy = tf.distribute.MirroredStrategy(devices=devices)
        return strategy, [f"mirrored strategy over {strategy.num_replicas_in_sync} device(s): {', '.join(devices)}"]
    if name == "multiworker":
        notes = [] if os.environ.get("TF_CONFIG") else ["TF_CONFIG is not set: multi-worker strategy runs as one worker"]
        strategy = tf.distribute.MultiWorkerMirroredStrategy()
        return strategy, notes + [f"multi-worker strategy, {strategy.num_replicas_in_sync} replica(s)"]
    raise UsageError(f"unknown strategy {name!r}: expected none, mirrored or multiworker")


# ------------------------------------------------------------------ fit


def compile_for(model, data: TrainSet, learning_rate: float) -> None:
    K = _tf.tf_keras()
    loss = data.loss if len(data.loss) > 1 else data.loss[0]
    model.compile(optimizer=K.optimizers.Adam(learning_rate), loss=loss)


def fit(model, data: TrainSet, train: TrainSection, label: str, callbacks: list, progress: Progress) -> dict:
    """Train ``model`` (compiled) on ``data``; report steps (with the loss) and epochs; return the history per epoch."""
    K = _tf.tf_keras()
    epochs, per_epoch = train.epochs, steps_per_epoch(data, train.batch_size)
    tick = counter(progress, label, epochs * per_epoch, "steps")

    class Ticks(K.callbacks.Callback):
        epoch = 0

        def on_epoch_begin(self, epoch, logs=None):
            self.epoch = epoch

        def on_train_batch_end(self, batch, logs=None):
            loss = (logs or {}).get("loss", float("nan"))
            tick(self.epoch * per_epoch + batch + 1, f"epoch {self.epoch + 1}/{epochs}, loss {loss:.4f}")

        def on_epoch_end(self, epoch, logs=None):
            loss = (logs or {}).get("loss", float("nan"))
            tick((epoch + 1) * per_epoch, f"epoch {epoch + 1}/{epochs}, loss {loss:.4f}", milestone=True)

    try:
        history = model.fit(
            data.feed(data.x), data.feed(data.y), batch_size=train.batch_size, epochs=epochs,
            shuffle=True, verbose=0, callbacks=[*callbacks, Ticks()],
        )
    except (ValueError, _tf.tf().errors.OpError) as e:  # labels that do not fit the loss or the outputs
        text = " ".join(str(e).split())
        raise DataError(
            f"{label}: fine-tuning failed on the training data ({type(e).__name__}: {text[:240]}); "
            f"check the labels against the model's outputs, or pass --loss"
        ) from e
    return {k: [round(float(v), 5) for v in values] for k, values in history.history.items()}


def steps_per_epoch(data: TrainSet, batch_size: int) -> int:
    return max(1, -(-len(data) // batch_size))
