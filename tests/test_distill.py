"""The distill stage: the student check, the losses, and distilled vs label-only slim students on the sample MNIST."""

from __future__ import annotations

import numpy as np
import pytest

import slim_models as builders
from conftest import SAMPLE_H5, SAMPLE_NPZ
from tfopt import _tf
from tfopt.errors import StudentMismatchError
from tfopt.progress import noop
from tfopt.recipe.schema import DistillStage, TrainSection
from tfopt.stages.apply import StageContext
from tfopt.stages.budget import plan_budget
from tfopt.stages.distill import LABEL_FREE, WITH_LABELS, check_student, make_loss, plan_losses, replace
from tfopt.stages.finetune import DISTILL, LABELS, TrainSet
from tfopt.stages.slim import slim


@pytest.fixture(params=["tf_keras", "keras3"])
def keras(request):
    return _tf.tf_keras() if request.param == "tf_keras" else _tf.keras3()


@pytest.fixture(scope="module")
def mnist():
    d = np.load(SAMPLE_NPZ)
    return d["x_train"], d["y_train"], d["x_test"], d["y_test"]


def context(teacher, x: list, y: list | None, epochs: int, batch: int = 64, strategy=None) -> StageContext:
    """A StageContext as apply_stages makes it: labels when given, else the teacher's outputs (label-free)."""
    target = LABELS if y is not None else DISTILL
    if y is None:
        out = teacher.predict(x if len(x) > 1 else x[0], verbose=0)
        y = [np.asarray(o) for o in (out if isinstance(out, list) else [out])]
    data = TrainSet(x, y, [None] * len(y), target, "test")
    data.budget = plan_budget(len(x[0]), batch, epochs, 0)
    train = TrainSection(epochs=epochs, min_steps=0, batch_size=batch, validation_split=0.0)
    default = strategy is None
    strategy = strategy or _tf.tf().distribute.get_strategy()
    return StageContext(data, train, strategy, data.budget.steps, noop, default_strategy=default, teacher=teacher)


def accuracy_and_agreement(teacher, student, x, y) -> tuple[float, float]:
    t = teacher.predict(x, verbose=0).argmax(-1)
    s = student.predict(x, verbose=0).argmax(-1)
    return float(np.mean(s == y)), float(np.mean(s == t))


def test_student_with_other_input_or_output_names_or_shapes_is_refused(keras):
    teacher = builders.conv2d(keras)
    x = keras.Input((12, 12, 3), name="picture")
    y = keras.layers.Flatten(name="flat")(keras.layers.Conv2D(2, 3, name="c1")(x))
    student = keras.Model(x, keras.layers.Dense(5, name="out")(y), name="mine")
    with pytest.raises(StudentMismatchError) as e:
        check_student(teacher, student)
    assert e.value.exit_code == 1
    assert str(e.value) == (
        f"the student model 'mine' does not match the teacher '{teacher.name}': output 'out': teacher (batch, 4), "
        "student (batch, 5); student input 'picture' (batch, 12, 12, 3) is not a teacher input; teacher input "
        "'image' (batch, 12, 12, 3) is missing from the student (the student needs the same input and output "
        "names and shapes)"
    )


def test_a_smaller_student_with_the_same_signature_is_accepted(keras):
    teacher = builders.conv2d(keras)
    x = keras.Input((12, 12, 3), name="image")
    y = keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(2, 3)(x))
    check_student(teacher, keras.Model(x, keras.layers.Dense(4, name="out")(y)))


@pytest.mark.parametrize("kind,form", [("softmax", "probabilities"), ("logits", "logits"), ("sigmoid", "probabilities"),
                                       ("sigmoid", "logits"), ("regression", "values")])
def test_soft_loss_is_zero_when_the_student_equals_the_teacher(kind, form):
    tf = _tf.tf()
    z = np.random.default_rng(0).standard_normal((6, 5)).astype(np.float32)
    out = {"probabilities": tf.nn.softmax(z).numpy() if kind == "softmax" else tf.sigmoid(z).numpy(),
           "logits": z, "values": z}[form]
    for temperature in (1.0, 3.0):
        np.testing.assert_allclose(make_loss(kind, form, form, 5, None, temperature, 0.5)(out, out).numpy(), 0.0,
                                   atol=1e-5)
        assert (make_loss(kind, form, form, 5, None, temperature, 0.5)(out, out[::-1]).numpy() > 1e-3).all()


def test_hard_label_term_is_alpha_times_cross_entropy():
    z = np.random.default_rng(1).standard_normal((4, 3)).astype(np.float32)
    p = _tf.tf().nn.softmax(z).numpy()
    ids = np.array([[0], [2], [1], [1]], np.float32)
    loss = make_loss("softmax", "probabilities", "probabilities", 3, "ids", 2.0, 0.25)(np.concatenate([p, ids], -1), p)
    np.testing.assert_allclose(loss.numpy(), 0.25 * -np.log(p[np.arange(4), ids[:, 0].astype(int)]), rtol=1e-5)


def test_output_kinds_follow_activations_and_labels(keras):
    teacher = builders.multi_io(keras)
    plans = plan_losses(teacher, teacher, [np.zeros(3, int), np.zeros((3, 1), np.float32)])
    assert [(p.name, p.kind, p.teacher_form, p.labels) for p in plans] == [
        ("cls", "softmax", "probabilities", "ids"), ("reg", "regression", "values", "dense")]
    logits = plan_losses(builders.dense(keras), builders.dense(keras), [np.zeros(3, int)])
    assert (logits[0].kind, logits[0].teacher_form) == ("logits", "logits")
    label_free = plan_losses(builders.dense(keras), builders.dense(keras), None)
    assert (label_free[0].kind, label_free[0].labels) == ("regression", None)


def test_multi_output_slim_student_distills_with_and_without_labels():
    K = _tf.tf_keras()  # the stages run on the tf_keras bridge of the model
    teacher = builders.multi_io(K)
    builders.randomize(teacher)
    student, _ = slim(teacher, 0.5)
    rng = np.random.default_rng(0)
    x = [rng.standard_normal((64, 12, 12, 3)).astype(np.float32), rng.standard_normal((64, 5)).astype(np.float32)]
    labels = [rng.integers(0, 3, 64), rng.standard_normal((64, 1)).astype(np.float32)]
    for y, target in ((labels, WITH_LABELS), (None, LABEL_FREE)):
        trained, result = replace(student, DistillStage(temperature=2.0), ("slim",), context(teacher, x, y, 2, 16))
        assert result.target == target and result.steps == 8 and len(result.history["loss"]) == 2
        assert result.history["loss"][1] < result.history["loss"][0]
        assert trained is not student and trained.count_params() == student.count_params()


def test_distillation_runs_under_a_mirrored_strategy_with_the_same_loss(mnist):
    tf, K = _tf.tf(), _tf.tf_keras()
    x, y = mnist[0][:512], mnist[1][:512]
    teacher = K.models.load_model(SAMPLE_H5)
    student, _ = slim(teacher, 0.5)
    _tf.seed_everything(0)
    _, plain = replace(student, DistillStage(), ("slim",), context(teacher, [x], [y], 1))
    strategy = tf.distribute.MirroredStrategy(devices=[d.name for d in tf.config.list_logical_devices("CPU")])
    _tf.seed_everything(0)
    _, mirrored = replace(student, DistillStage(), ("slim",), context(teacher, [x], [y], 1, strategy=strategy))
    assert mirrored.history["loss"] == pytest.approx(plain.history["loss"], rel=1e-4)


def label_only(teacher, ctx: StageContext):
    """The slim student fine-tuned on the labels alone, in the same loop (finetune.compile_for / fit)."""
    from tfopt.stages.finetune import _loss_object, compile_for, fit

    student, _ = slim(teacher, 0.5)
    ctx.data.loss, ctx.data.loss_names = [_loss_object("sparse_categorical_crossentropy")], ["sparse_cce"]
    compile_for(student, ctx.data)
    fit(student, ctx.data, ctx.train, "labels", [], noop)
    return student


@pytest.mark.slow
def test_distilled_slim_student_matches_label_only_fine_tuning(mnist):
    """Sample MNIST (4000 training samples), slim 0.5 (0.254x parameters), 3 epochs = 189 steps at batch 64, lr 1e-3,
    seed 0, accuracy of the Keras models on the 1000 test samples.

    Distillation *matches* label-only fine-tuning on this sample, it does not beat it: over seeds the prototype
    measured labels 95.5 ± 0.7 %, distilled (T 1, alpha 0.5) 95.2 ± 0.3 %, label-free 94.7 ± 0.5 % (bench/RESULTS.md
    "Slimming"); the slim student already surpasses the teacher (94.8 %) with labels alone, so imitating the teacher
    cannot win; at this seed distillation happens to be 0.6 points ahead.  What is asserted: the numbers of this seed
    (±0.6 points), distilled within 0.5 points of labels-only, label-free
    within 1 point, every student within 1.5 points of the teacher (the issue's goal), and the distilled student
    agreeing with the teacher more often than the label-only one.
    """
    K = _tf.tf_keras()
    x, y, xt, yt = mnist
    teacher = K.models.load_model(SAMPLE_H5)
    students = {}
    _tf.seed_everything(0)
    students["labels"] = label_only(teacher, context(teacher, [x], [y], 3))
    for name, labels in (("distilled", [y]), ("label_free", None)):
        _tf.seed_everything(0)
        student, _ = slim(teacher, 0.5)
        students[name], _ = replace(student, DistillStage(), ("slim",), context(teacher, [x], labels, 3))
    scores = {name: accuracy_and_agreement(teacher, m, xt, yt) for name, m in students.items()}
    acc = {name: a for name, (a, _) in scores.items()}
    teacher_acc = float(np.mean(teacher.predict(xt, verbose=0).argmax(-1) == yt))
    assert teacher_acc == pytest.approx(0.948)
    # measured here: labels 0.944 (agreement 0.955), distilled 0.950 (0.977), label-free 0.950 (0.980)
    assert acc == pytest.approx({"labels": 0.944, "distilled": 0.950, "label_free": 0.950}, abs=0.006)
    assert acc["distilled"] >= acc["labels"] - 0.005
    assert acc["label_free"] >= acc["labels"] - 0.01
    assert min(acc.values()) >= teacher_acc - 0.015
    assert scores["distilled"][1] > scores["labels"][1]
