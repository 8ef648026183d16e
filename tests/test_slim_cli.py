"""``tfopt convert --slim`` / ``--student`` through the CLI: the whole job, the student check, flag errors."""

from __future__ import annotations

import json

import pytest

from conftest import SAMPLE_H5, SAMPLE_NPZ
from test_cli_convert import assert_clean_error
from tfopt.errors import RecipeError, UsageError
from tfopt.recipe.flags import recipe_from_flags


def _student(path, input_name: str, width: int, classes: int):
    from tfopt import _tf

    K = _tf.tf_keras()
    x = K.Input((28, 28, 1), name=input_name)
    y = K.layers.Conv2D(width, 3, strides=2, activation="relu", name="c")(x)
    y = K.layers.GlobalAveragePooling2D(name="gap")(y)
    K.Model(x, K.layers.Dense(classes, activation="softmax", name="probs")(y), name="mine").save(path)
    return path


def test_a_student_with_other_names_or_shapes_exits_1_naming_each(cli, tmp_path):
    student = _student(tmp_path / "student.keras", "picture", 4, 5)
    result = cli("convert", SAMPLE_H5, "--student", student, "--quantize", "int8", "--data", SAMPLE_NPZ,
                 "--epochs", "1", "--min-steps", "0", "-o", tmp_path / "m.tflite")
    assert_clean_error(result, 1, (
        "Error: the student model 'mine' does not match the teacher 'small_cnn': output 'probs': teacher (batch, 10), "
        "student (batch, 5); student input 'picture' (batch, 28, 28, 1) is not a teacher input; teacher input 'image' "
        "(batch, 28, 28, 1) is missing from the student (the student needs the same input and output names and "
        "shapes)"))
    assert not (tmp_path / "m.tflite").exists()


def _recipe(**flags):
    return recipe_from_flags({"model": str(SAMPLE_H5), "data": str(SAMPLE_NPZ), **flags})


def test_slim_adds_distill_unless_no_distill_and_the_defaults_are_documented():
    assert [(s.kind, getattr(s, "temperature", None)) for s in _recipe(slim=0.5, qat=True).stages] == [
        ("slim", None), ("distill", 1.0), ("qat", None)]
    assert _recipe(slim=0.5, qat=True).mode.name == "int8"
    assert [s.kind for s in _recipe(slim=0.5, distill=False).stages] == ["slim"]
    stages = _recipe(slim=0.5, slim_layer=("conv1=0.25", "dense1=0"), alpha=0.0).stages
    assert stages[0].layers == {"conv1": 0.25, "dense1": 0.0} and stages[1].alpha == 0.0


@pytest.mark.parametrize("flags,message", [
    ({"slim": 1.0}, "--slim: got 1.0, expected a fraction 0 < x < 1 (0.5 = half of the channels removed)"),
    ({"slim": 0.5, "slim_layer": ("conv1",)},
     "--slim-layer 'conv1': expected NAME=RATIO (e.g. --slim-layer conv1=0.25)"),
    ({"slim_layer": ("conv1=0.5",)}, "--slim-layer needs --slim"),
    ({"slim": 0.5, "distill": False, "temperature": 2.0}, "--temperature needs --distill"),
    ({"slim": 0.5, "temperature": 0.0}, "--temperature: got 0.0, expected 0 < x"),
    ({"slim": 0.5, "student": "s.h5"}, "--student: got"),
    ({"distill": True}, "--student: got nothing, expected a student model (--student FILE) or a slim stage before "
                        "distill (--slim R: the slimmed model is the student)"),
])
def test_flag_errors_name_the_flag(flags, message):
    with pytest.raises(UsageError) as e:
        _recipe(**flags)
    problems = e.value.problems if isinstance(e.value, RecipeError) else [e.value.message]
    assert any(p.startswith(message) for p in problems), problems


@pytest.mark.slow
def test_slim_half_int8_sample_end_to_end(cli, tmp_path):
    """The issue's whole job: 0.254x the parameters, int8, and the accuracy gate passes (measured: 95.7 % vs 94.8 %)."""
    out, report = tmp_path / "m.tflite", tmp_path / "r.json"
    result = cli("convert", SAMPLE_H5, "--slim", "0.5", "--quantize", "int8", "--data", SAMPLE_NPZ, "-o", out,
                 "--report", report)
    assert result.exit_code == 0, result.stderr
    doc = json.loads(report.read_text())
    assert [s["kind"] for s in doc["stages"]] == ["slim", "distill"]
    slim = doc["stages"][0]["slim"]
    assert slim["params_before"] == 108618 and slim["params_after"] == 27562 and slim["params_ratio"] <= 0.35
    assert [(c["name"], c["before"], c["after"]) for c in slim["channels"]] == [
        ("conv1", 16, 8), ("conv2", 32, 16), ("dense1", 128, 64), ("probs", 10, 10)]
    assert slim["tflite"]["final"]["bytes"] < 0.35 * slim["tflite"]["original"]["bytes"]
    assert slim["tflite"]["final"]["latency_us"] > 0 and slim["tflite"]["original"]["latency_us"] > 0
    metrics = doc["verification"]["outputs"][0]["metrics"]
    assert doc["ok"] and metrics["accuracy_drop"] <= 0.015
    assert metrics["accuracy"] == pytest.approx(0.957, abs=0.01)
    assert "slim: channels per layer:" in result.stderr and "conv2   Conv2D  32 → 16" in result.stderr


def test_a_recipe_file_student_is_a_path_like_the_others(tmp_path):
    from tfopt.pipeline import default_output
    from tfopt.recipe import from_dict

    raw = {"model": {"path": "m.h5"}, "data": {"path": "d.npz"},
           "stages": [{"kind": "distill", "student": "small.keras", "temperature": 2.0}]}
    recipe = from_dict(raw).resolve(tmp_path)
    assert recipe.stages[0].student == str(tmp_path / "small.keras")
    assert recipe.input_paths()["student model"] == str(tmp_path / "small.keras")
    assert default_output(_recipe(slim=0.5)).endswith("mnist_cnn.slim50.distill.float32.tflite")
