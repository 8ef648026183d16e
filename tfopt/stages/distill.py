"""The distill stage: train a student (the slimmed model, or ``--student FILE``) to mimic the original model.

Loss per output, by its kind (the teacher's output-layer activation and the labels):

* softmax / logits (classification): ``KL(softmax(t / T) || softmax(s / T)) · T²`` with t, s the teacher's and
  the student's logits (for a softmax output the log of its probabilities: softmax(log p / T) == softmax(z / T)),
  plus ``alpha`` × the hard-label cross-entropy when the training data has labels;
* sigmoid: binary cross-entropy of sigmoid(s / T) against sigmoid(t / T) minus the teacher's entropy (0 when
  equal) · T², plus ``alpha`` × the hard-label BCE;
* regression (any other output): mean squared error to the teacher, plus ``alpha`` × the MSE to the labels.

Without labels the loss is label-free (the teacher's outputs only).  The teacher's outputs are computed once
and packed with the labels on the last axis of the targets, so the student trains with an ordinary
``compile`` + ``fit`` in the shared fine-tuning loop (``finetune.fit``: step budget, validation split with
restore-best, progress ticks) inside the ``tf.distribute`` strategy like every other stage.
Defaults T = 1.0, alpha = 0.5: measured best on the sample (bench/RESULTS.md "Slimming").
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from .. import _tf
from ..errors import StudentMismatchError
from ..kgraph import from_config
from ..recipe.schema import DistillStage
from ..report import StageResult
from .finetune import LABELS, TrainSet, fit, freeze_batchnorm

_EPS = 1e-30  # log-probabilities below this are clipped (float32 softmax underflows near 1e-38)
WITH_LABELS = "original model outputs + labels (distillation)"
LABEL_FREE = "original model outputs (distillation: no labels in the training data)"


@dataclass
class OutputLoss:
    name: str
    kind: str  # softmax, logits, sigmoid or regression
    teacher_form: str  # "probabilities", "logits" or "values"
    student_form: str
    labels: str | None  # "ids", "dense" or None


# ------------------------------------------------------------------ signatures


def signature(model) -> tuple[dict[str, tuple], dict[str, tuple]]:
    """({input name: shape without batch}, {output name: shape without batch}) of a Keras model."""
    inputs = {_tensor_name(t): tuple(t.shape[1:]) for t in model.inputs}
    names = _output_names(model)
    outputs = {n: tuple(t.shape[1:]) for n, t in zip(names, model.outputs)}
    return inputs, outputs


def check_student(teacher, student) -> None:
    """Raise ``StudentMismatchError`` naming every input/output whose name or shape differs."""
    problems = []
    for what, t_sig, s_sig in zip(("input", "output"), signature(teacher), signature(student)):
        for name in t_sig.keys() - s_sig.keys():
            problems.append(f"teacher {what} '{name}' {_shape(t_sig[name])} is missing from the student")
        for name in s_sig.keys() - t_sig.keys():
            problems.append(f"student {what} '{name}' {_shape(s_sig[name])} is not a teacher {what}")
        for name in t_sig.keys() & s_sig.keys():
            if t_sig[name] != s_sig[name]:
                problems.append(f"{what} '{name}': teacher {_shape(t_sig[name])}, student {_shape(s_sig[name])}")
    if problems:
        raise StudentMismatchError(
            f"the student model '{student.name}' does not match the teacher '{teacher.name}': "
            + "; ".join(sorted(problems)) + " (the student needs the same input and output names and shapes)"
        )


def _shape(shape: tuple) -> str:
    return "(" + ", ".join(["batch", *("None" if d is None else str(d) for d in shape)]) + ")"


def _tensor_name(tensor) -> str:
    name = getattr(tensor, "name", "")
    history = getattr(tensor, "_keras_history", None)
    if history is not None and getattr(history, "layer", None) is not None:  # tf_keras: the InputLayer's name
        return history.layer.name
    return name.split(":")[0]


def _output_names(model) -> list[str]:
    names = getattr(model, "output_names", None)
    if names:
        return list(names)
    return [t._keras_history.operation.name for t in model.outputs]  # Keras 3 without output_names


# ------------------------------------------------------------------ output kinds


def activation_of(model, name: str) -> str:
    """"softmax", "sigmoid" or "linear" (or another activation name) of the layer making output ``name``."""
    layer = model.get_layer(name)
    cls = type(layer).__name__
    if cls == "Softmax":
        return "softmax"
    act = getattr(layer, "activation", None)
    act_name = getattr(act, "__name__", None) or str(act or "linear")
    return act_name


def output_kind(teacher, name: str, labels: np.ndarray | None, override: str | None) -> str:
    """The loss family of one output: override, else from the activation and the labels."""
    if override:
        return override
    act = activation_of(teacher, name)
    if act in ("softmax", "sigmoid"):
        return act
    width = signature(teacher)[1][name][-1] if signature(teacher)[1][name] else 1
    if labels is not None and _label_form(labels, width) == "ids" and width and width > 1:
        return "logits"
    return "regression"


def _label_form(labels: np.ndarray, width: int | None) -> str:
    ids = np.issubdtype(labels.dtype, np.integer) and (labels.ndim == 1 or labels.shape[-1] == 1)
    return "ids" if ids and (width or 1) > 1 else "dense"


def _form(kind: str, activation: str) -> str:
    if kind == "regression":
        return "values"
    if kind == "softmax" or kind == "logits":
        return "probabilities" if activation == "softmax" else "logits"
    return "probabilities" if activation == "sigmoid" else "logits"


# ------------------------------------------------------------------ losses


def make_loss(kind: str, teacher_form: str, student_form: str, width: int, labels: str | None,
              temperature: float, alpha: float) -> Callable:
    """Per-sample loss ``fn(y_true, y_pred)``; ``y_true`` = teacher output ++ labels on the last axis."""
    tf = _tf.tf()
    T = float(temperature)

    def to_logits(v, form):
        if form != "probabilities":
            return v
        if kind == "sigmoid":
            p = tf.clip_by_value(v, 1e-7, 1.0 - 1e-7)
            return tf.math.log(p) - tf.math.log1p(-p)
        return tf.math.log(tf.clip_by_value(v, _EPS, 1.0))

    def loss(y_true, y_pred):
        y_true = tf.cast(y_true, y_pred.dtype)
        teacher, hard = y_true[..., :width], y_true[..., width:]
        if kind == "regression":
            soft = tf.reduce_mean(tf.square(y_pred - teacher), axis=-1)
            extra = tf.reduce_mean(tf.square(y_pred - hard), axis=-1) if labels else 0.0
            return soft + alpha * extra if labels else soft
        t_logits, s_logits = to_logits(teacher, teacher_form), to_logits(y_pred, student_form)
        soft = _soft_loss(tf, kind, t_logits / T, s_logits / T) * T * T
        if not labels:
            return soft
        return soft + alpha * _hard_loss(tf, kind, hard, s_logits, labels)

    return loss


def _soft_loss(tf, kind: str, t, s):
    if kind == "sigmoid":  # BCE(soft targets) - entropy(targets) = KL per unit, >= 0
        p = tf.sigmoid(t)
        ce = tf.nn.sigmoid_cross_entropy_with_logits(labels=p, logits=s)
        return tf.reduce_mean(ce - tf.nn.sigmoid_cross_entropy_with_logits(labels=p, logits=t), axis=-1)
    p = tf.nn.softmax(t, axis=-1)
    return tf.reduce_sum(p * (tf.nn.log_softmax(t, axis=-1) - tf.nn.log_softmax(s, axis=-1)), axis=-1)


def _hard_loss(tf, kind: str, hard, s_logits, labels: str):
    if kind == "sigmoid":
        return tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(labels=hard, logits=s_logits), axis=-1)
    if labels == "ids":
        ids = tf.cast(tf.squeeze(hard, axis=-1), tf.int32)
        return tf.nn.sparse_softmax_cross_entropy_with_logits(labels=ids, logits=s_logits)
    return tf.nn.softmax_cross_entropy_with_logits(labels=hard, logits=s_logits)


# ------------------------------------------------------------------ plans


def plan_losses(teacher, student, labels: Sequence[np.ndarray] | None,
                output_kinds: dict[str, str] | None = None) -> list[OutputLoss]:
    """How each output is distilled (kind, teacher/student forms, label form)."""
    _, outputs = signature(teacher)
    plans = []
    for i, name in enumerate(outputs):
        y = None if labels is None else np.asarray(labels[i])
        kind = output_kind(teacher, name, y, (output_kinds or {}).get(name))
        width = outputs[name][-1] if outputs[name] else 1
        form = None if y is None else _label_form(y, width)
        plans.append(OutputLoss(name, kind, _form(kind, activation_of(teacher, name)),
                                _form(kind, activation_of(student, name)), form))
    return plans



# ------------------------------------------------------------------ the stage


def replace(model, stage: DistillStage, previous: tuple[str, ...], ctx):
    """(the trained student, its StageResult): the teacher is ``ctx.teacher``, the original model."""
    teacher = ctx.teacher
    student = load_student(stage.student) if stage.student else model
    check_student(teacher, student)
    labels = ctx.data.y if ctx.data.target == LABELS else None
    plans = plan_losses(teacher, student, labels)
    data = distill_set(teacher, ctx.data, plans, stage)
    with ctx.strategy.scope():
        trained = fresh_copy(student)  # the variables in the strategy's scope; the student itself stays as it was
        freeze_batchnorm(trained)
        K = _tf.tf_keras()
        trained.compile(optimizer=K.optimizers.Adam(data.learning_rate), loss=data.feed(data.loss))
    history = fit(trained, data, ctx.train, stage.kind, [], ctx.progress)
    if not ctx.default_strategy:
        trained = fresh_copy(trained)  # leave the strategy's mirrored variables behind before export
    result = StageResult(
        kind=stage.kind, settings=describe(stage, previous), target=data.target,
        loss_function=data.loss_names[0] if len(data.loss_names) == 1 else list(data.loss_names),
        train_samples=len(data), batch_size=ctx.train.batch_size, learning_rate=data.learning_rate,
        epochs=data.budget.epochs, steps=data.budget.steps, history=history,
        validation_samples=data.validation_samples,
        notes=[f"distill: student '{Path(stage.student).name}'" if stage.student else "distill: the student is the "
               "slimmed model", "distill: BatchNormalization statistics frozen while training (as in every stage)"],
    )
    return trained, result


def describe(stage: DistillStage, previous: tuple[str, ...]) -> dict:
    out = {"temperature": stage.temperature, "alpha": stage.alpha}
    if stage.student:
        out["student"] = stage.student
    return out


def distill_set(teacher, data: TrainSet, plans: list[OutputLoss], stage: DistillStage) -> TrainSet:
    """The stage's TrainSet: the same samples, validation part and budget, with teacher outputs (+ labels) as
    targets and the distillation losses."""
    labelled = data.target == LABELS
    widths = [int(s[-1]) if s else 1 for s in signature(teacher)[1].values()]
    losses = [make_loss(p.kind, p.teacher_form, p.student_form, w, p.labels, stage.temperature, stage.alpha)
              for p, w in zip(plans, widths)]
    names = [_loss_name(p, stage, labelled) for p in plans]
    y = pack_targets(teacher_outputs(teacher, data.feed(data.x)), data.y if labelled else None)
    y_val = (pack_targets(teacher_outputs(teacher, data.feed(data.x_val)), data.y_val if labelled else None)
             if data.validation_samples else [])
    return dataclasses.replace(data, y=y, y_val=y_val, loss=losses, loss_names=names,
                               target=WITH_LABELS if labelled else LABEL_FREE)


def _loss_name(p: OutputLoss, stage: DistillStage, labelled: bool) -> str:
    soft = "MSE to the original" if p.kind == "regression" else f"KL divergence at T={stage.temperature:g}"
    return f"{p.name}: {soft}" + (f" + {stage.alpha:g} × label loss" if labelled and stage.alpha else "")


def load_student(path: str):
    """The ``--student`` model as a tf_keras model (the same bridge as the main model)."""
    from ..models import load_model
    from .bridge import to_tf_keras

    model, _ = to_tf_keras(load_model(path), None)
    return model


def teacher_outputs(teacher, x, batch_size: int = 256) -> list[np.ndarray]:
    out = teacher.predict(x, batch_size=batch_size, verbose=0)
    return [np.asarray(o, dtype=np.float32) for o in (out if isinstance(out, (list, tuple)) else [out])]


def pack_targets(teacher_out: list[np.ndarray], labels: Sequence[np.ndarray] | None) -> list[np.ndarray]:
    """Per output: the teacher's output with the labels appended on the last axis."""
    packed = []
    for i, t in enumerate(teacher_out):
        t = t.reshape(len(t), -1) if t.ndim == 1 else t
        if labels is None:
            packed.append(t)
            continue
        y = np.asarray(labels[i], dtype=np.float32).reshape(t.shape[:-1] + (-1,))
        packed.append(np.concatenate([t, y], axis=-1))
    return packed


def fresh_copy(model):
    """A new, uncompiled model with new variables (made in the current strategy scope) and the same weights."""
    copy = from_config(model, model.get_config())
    copy.set_weights(model.get_weights())
    return copy
