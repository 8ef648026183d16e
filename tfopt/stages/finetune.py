"""The shared fine-tuning loop: training targets, loss, ``tf.distribute`` strategy, epoch progress.

Targets: the labels when the training data has them for every output; otherwise the
original model's own outputs (distillation from the float model), so pruning, clustering
and QAT work with unlabelled data.  The loss comes from ``--loss``, else the model's saved
compile config, else the output activation and the label shape.
"""

from __future__ import annotations

import functools
import json
import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .. import _tf
from ..data import UNNAMED, DataPlan, load_data
from ..errors import DataError, UsageError
from ..models import LoadedModel
from ..report import RESTORED_EPOCH
from ..progress import Progress, counter
from ..recipe.schema import DataSection, TrainSection
from .budget import DEFAULT_LEARNING_RATE, Budget, learning_rate, plan_budget, split_validation
from .budget import callbacks as budget_callbacks

LABELS = "labels"
DISTILL = "original model outputs (distillation: no labels in the training data)"


@dataclass
class TrainSet:
    """Materialised fine-tuning samples (inputs and targets in model order), the held-out validation part,
    how to score them, and how long and how fast to train (``budget.py``)."""

    x: list[np.ndarray]
    y: list[np.ndarray]
    loss: list[Any]
    target: str  # LABELS or DISTILL
    source: str
    loss_names: list[str] = field(default_factory=list)
    x_val: list[np.ndarray] = field(default_factory=list)
    y_val: list[np.ndarray] = field(default_factory=list)
    learning_rate: float = DEFAULT_LEARNING_RATE
    learning_rate_source: str = ""
    budget: Budget | None = None

    def __len__(self) -> int:
        return len(self.x[0])

    @property
    def validation_samples(self) -> int:
        return len(self.x_val[0]) if self.x_val else 0

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
    data = TrainSet(x, y, [_loss_object(v) for v in losses], target, str(source), [str(v) for v in losses])
    return plan_training(data, loaded, train, seed)


def plan_training(data: TrainSet, loaded: LoadedModel, train: TrainSection, seed: int) -> TrainSet:
    """Hold out the validation part, and fix the learning rate and the step budget (``budget.py``)."""
    kept, held = split_validation(len(data), train.validation_split, seed)
    if len(held):
        data.x_val, data.y_val = [a[held] for a in data.x], [a[held] for a in data.y]
        data.x, data.y = [a[kept] for a in data.x], [a[kept] for a in data.y]
    data.learning_rate, data.learning_rate_source = learning_rate(train.learning_rate, loaded.training_config)
    data.budget = plan_budget(len(data), train.batch_size, train.epochs, train.min_steps)
    return data


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


@functools.cache
def strategy_for(name: str) -> tuple[Any, list[str]]:
    """The ``tf.distribute`` strategy for ``--strategy`` and notes for the report (one per process: a
    multi-worker strategy must exist before TensorFlow runs its first op — the pipeline asks first)."""
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
        ring = tf.distribute.experimental.CommunicationImplementation.RING  # the collective CPUs have
        strategy = tf.distribute.MultiWorkerMirroredStrategy(
            communication_options=tf.distribute.experimental.CommunicationOptions(implementation=ring))
        role = "chief" if is_chief() else f"worker {worker_index()}"
        return strategy, notes + [f"multi-worker strategy, {strategy.num_replicas_in_sync} replica(s); this "
                                  f"process is the {role}"]
    raise UsageError(f"unknown strategy {name!r}: expected none, mirrored or multiworker")


def worker_index() -> int:
    return int(json.loads(os.environ.get("TF_CONFIG") or "{}").get("task", {}).get("index", 0))


def is_chief() -> bool:
    """Whether this process writes the results of a multi-worker run (worker 0, or the "chief" task)."""
    config = json.loads(os.environ.get("TF_CONFIG") or "{}")
    task = config.get("task", {})
    if "chief" in config.get("cluster", {}):
        return task.get("type") == "chief"
    return int(task.get("index", 0)) == 0


# ------------------------------------------------------------------ fit


def freeze_batchnorm(model) -> int:
    """BatchNormalization in inference mode while fine-tuning (``trainable = False``: moving statistics used,
    not updated), also inside TF-MOT's wrappers.  A few hundred steps would otherwise leave the moving
    statistics behind the weights they normalise: measured, a QAT model at 99.5 % in training mode scored
    74.5 % in inference mode (tests/test_qat.py, the legacy mini-Xception)."""
    frozen = 0
    for layer in model.layers:
        inner = getattr(layer, "layer", layer)
        if "BatchNormalization" in type(inner).__name__:
            inner.trainable = False
            frozen += 1
    return frozen


def compile_for(model, data: TrainSet) -> None:
    K = _tf.tf_keras()
    freeze_batchnorm(model)
    loss = data.loss if len(data.loss) > 1 else data.loss[0]
    decisions = all("crossentropy" in name for name in data.loss_names)  # accuracy means something there
    model.compile(optimizer=K.optimizers.Adam(data.learning_rate), loss=loss,
                  metrics=["accuracy"] if decisions and len(data.loss) == 1 else None)


def fit(model, data: TrainSet, train: TrainSection, label: str, callbacks: list, progress: Progress,
        restore_from: int = 0) -> dict:
    """Train ``model`` (compiled) for the budget's epochs; keep the best validation epoch from ``restore_from``
    on; report steps (with the loss) and epochs; return the per-epoch history (and which epoch was kept)."""
    classes = budget_callbacks()
    epochs = data.budget.epochs
    restore = classes["RestoreBest"](restore_from) if data.validation_samples else None
    ticks = classes["Ticks"](counter, progress, label, epochs, data.budget.steps_per_epoch)
    validation = (data.feed(data.x_val), data.feed(data.y_val)) if data.validation_samples else None
    try:
        history = model.fit(
            data.feed(data.x), data.feed(data.y), batch_size=train.batch_size, epochs=epochs,
            validation_data=validation, shuffle=True, verbose=0, callbacks=[*callbacks, ticks, *([restore] if restore else [])],
        )
    except (ValueError, _tf.tf().errors.OpError) as e:  # labels that do not fit the loss or the outputs
        text = " ".join(str(e).split())
        raise DataError(
            f"{label}: fine-tuning failed on the training data ({type(e).__name__}: {text[:240]}); "
            f"check the labels against the model's outputs, or pass --loss"
        ) from e
    out: dict[str, Any] = {k: [round(float(v), 5) for v in values] for k, values in history.history.items()}
    if restore is not None and restore.best_epoch is not None:
        out[RESTORED_EPOCH] = [restore.best_epoch + 1]
    return out
