"""Verification by output kind on models of the shapes users have (tests/kind_models.py): each good conversion
passes with the right metrics, each deliberately broken .tflite exits 3 naming the output, its kind, the metric,
the value and the limit; labels go to the output they fit."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

import kind_models
from tfopt import from_dict
from tfopt.errors import DataError
from tfopt.pipeline import run


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    d = tmp_path_factory.mktemp("kinds")
    return {"dir": d, "text": kind_models.text(d), "face": kind_models.face(d), "audio": kind_models.audio(d),
            "logits": kind_models.logits(d)}


def convert(model, data, out, mode, **verify):
    return run(from_dict({"model": {"path": str(model)}, "data": {"path": str(data)}, "convert": {"quantize": mode},
                          "verify": verify, "output": {"tflite": str(out)}}))


def outputs(report) -> dict:
    return {o.name: o for o in report.verification.outputs}


def broken_verify(cli, models, name: str, tmp_path):
    """Convert a perturbed copy (float32, no verification) and verify it against the good model."""
    entry = models[name]
    bad = kind_models.perturbed(entry["keras"], tmp_path / f"{name}_bad.h5")
    assert cli("convert", bad, "--no-verify", "-o", tmp_path / "bad.tflite").exit_code == 0
    return cli("verify", tmp_path / "bad.tflite", "--reference", entry["model"], "--data", entry["data"])


def assert_names_the_miss(result, output: str, kind: str, metric: str):
    assert result.exit_code == 3, result.stderr
    line = next(ln for ln in result.stderr.splitlines() if ln.startswith("Error: "))
    pattern = rf"output '{output}' \({kind}\): {metric} (-?[\d.]+( points \(.*\))?( dB)?) [<>] [\d.]+"
    assert re.search(pattern, line), line


# ------------------------------------------------------------------ binary: float-typed ids into an Embedding


def test_binary_output_fed_by_float_ids_is_gated_on_its_decisions(models, tmp_path):
    m = models["text"]
    report = convert(m["model"], m["data"], tmp_path / "t.tflite", "dynamic")
    out = outputs(report)["is_match"]
    assert (out.kind.kind, out.kind.source) == ("binary", "graph: sigmoid (layer 'is_match')")
    assert [g.metric for g in out.gates] == ["agreement", "accuracy_drop", "f1_drop"] and len(out.evaluated) == 3
    assert out.metrics["agreement"] >= 0.97 and out.metrics["accuracy_reference"] > 0.7 and report.ok


def test_broken_binary_tflite_exits_3_naming_output_kind_metric(cli, models, tmp_path):
    result = broken_verify(cli, models, "text", tmp_path)
    assert_names_the_miss(result, "is_match", "binary", "decision agreement")


# ------------------------------------------------------------------ several heads: softmax + regression, plain y


def test_face_model_gates_each_head_by_its_kind_and_y_goes_to_the_softmax(models, tmp_path):
    m = models["face"]
    report = convert(m["model"], m["data"], tmp_path / "f.tflite", "int8")
    out = outputs(report)
    assert {n: o.kind.kind for n, o in out.items()} == {"face": "classification", "boxes": "regression",
                                                        "landmarks": "regression"}
    assert out["face"].labels and not out["boxes"].labels  # plain y fits the 2-class softmax only
    assert out["face"].metrics["accuracy_reference"] > 0.9
    for head in ("boxes", "landmarks"):
        assert [g.metric for g in out[head].gates] == ["sqnr_db", "cosine"], head
        assert "agreement" not in out[head].metrics and out[head].metrics["sqnr_db"] > 25, head
    assert report.ok, report.failures


def test_broken_regression_head_exits_3_naming_sqnr_or_cosine(cli, models, tmp_path):
    result = broken_verify(cli, models, "face", tmp_path)
    assert result.exit_code == 3
    assert "Error: output 'boxes' (regression): SQNR " in result.stderr or \
           "Error: output 'face' (classification): top-1 agreement" in result.stderr
    assert re.search(r"output 'landmarks' \(regression\): (SQNR|cosine) [-\d.]+( dB)? < [\d.]+", result.stderr)


def test_labels_that_fit_no_output_say_why(models, tmp_path):
    m = models["face"]
    with np.load(m["data"]) as z:
        np.savez(tmp_path / "wrong.npz", x=z["x"], y=np.arange(len(z["x"])) % 7)
    with pytest.raises(DataError) as e:
        convert(m["model"], tmp_path / "wrong.npz", tmp_path / "f.tflite", "dynamic")
    assert str(e.value) == (
        f"{tmp_path / 'wrong.npz'}: y holds class ids 0..6 and fits no output: 'face' (classification, 2 classes), "
        "'boxes' (regression (4 values)), 'landmarks' (regression (10 values)); name the labels y_<output> for the "
        "output they belong to"
    )


def test_labels_that_fit_several_outputs_ask_for_their_name(tmp_path):
    from tfopt import _tf

    K = _tf.tf_keras()
    inp = K.Input((4,), name="x")
    model = K.Model(inp, [K.layers.Dense(2, activation="softmax", name="a")(inp),
                          K.layers.Dense(3, activation="softmax", name="b")(inp)])
    model.save(tmp_path / "two.h5")
    np.savez(tmp_path / "two.npz", x=np.ones((10, 4), np.float32), y=np.arange(10) % 2)
    with pytest.raises(DataError, match=r"y \(class ids 0\.\.1\) fits several outputs: 'a', 'b'; name the labels "
                                        r"after their output \(y_a, y_b\) in the data file"):
        convert(tmp_path / "two.h5", tmp_path / "two.npz", tmp_path / "o.tflite", "none")


# ------------------------------------------------------------------ multilabel maps: (batch, frames, bins)


def test_per_frame_sigmoid_maps_are_multilabel_not_argmax(models, tmp_path):
    m = models["audio"]
    report = convert(m["model"], m["data"], tmp_path / "a.tflite", "dynamic")
    out = outputs(report)["activity"]
    assert out.kind.kind == "multilabel" and out.kind.source == "graph: sigmoid (layer 'activity')"
    assert out.metrics["agreement"] >= 0.97 and out.metrics["f1_reference"] > 0.8
    assert report.ok, report.failures


def test_broken_multilabel_tflite_exits_3(cli, models, tmp_path):
    result = broken_verify(cli, models, "audio", tmp_path)
    assert_names_the_miss(result, "activity", "multilabel", "decision agreement")


# ------------------------------------------------------------------ logits without softmax


def test_logits_classifier_is_recognised_from_labels_or_the_saved_loss(models, tmp_path):
    m = models["logits"]
    out = outputs(convert(m["model"], m["data"], tmp_path / "l.tflite", "int8"))["logits"]
    assert out.kind.kind == "classification" and out.kind.from_logits
    assert out.kind.source == "labels: class ids 0..9 for a linear output over 10 units (logits)"
    assert out.metrics["accuracy_reference"] > 0.9 and "top5_agreement" in out.metrics
    saved = outputs(convert(m["with_loss"], m["data"], tmp_path / "l2.tflite", "int8"))["logits"]
    assert saved.kind.source == "saved loss: SparseCategoricalCrossentropy(from_logits=True)"


def test_broken_logits_tflite_exits_3(cli, models, tmp_path):
    result = broken_verify(cli, models, "logits", tmp_path)
    assert_names_the_miss(result, "logits", "classification", "top-1 agreement")


# ------------------------------------------------------------------ the user decides


def test_output_kind_override_and_per_output_gates_from_the_command_line(cli, models, tmp_path):
    m = models["face"]
    result = cli("convert", m["model"], "--quantize", "int8", "--data", m["data"], "-o", tmp_path / "f.tflite",
                 "--output-kind", "landmarks=regression", "--min-sqnr", "landmarks=99", "--json")
    assert result.exit_code == 3
    doc = json.loads(result.stdout)
    landmarks = next(o for o in doc["verification"]["outputs"] if o["name"] == "landmarks")
    assert landmarks["source"] == "user: --output-kind landmarks=regression"
    sqnr = next(g for g in landmarks["gates"] if g["metric"] == "sqnr_db")
    assert sqnr["limit"] == 99 and sqnr["source"] == "--min-sqnr landmarks=" and sqnr["passed"] is False
    assert doc["verification"]["failures"] == [
        f"output 'landmarks' (regression): SQNR {sqnr['value']:.1f} dB < 99 dB (--min-sqnr landmarks=)"]
    bad = cli("convert", m["model"], "--data", m["data"], "--output-kind", "nose=regression", "--no-verify")
    assert bad.exit_code == 2  # --output-kind with --no-verify is a contradiction, caught before any work


def test_float_typed_ids_stay_exact_in_strict_int8_with_int8_io(models, tmp_path):
    """Float32 inputs that reach the Embedding's CAST are found in the graph and never quantized: strict int8
    (int8 io, no fallback flag) keeps them float32, makes the output int8 and meets the gate."""
    m = models["text"]
    report = convert(m["model"], m["data"], tmp_path / "t.tflite", "int8")
    assert report.io_types == {"left": "float32", "right": "float32", "is_match": "int8"}
    assert outputs(report)["is_match"].metrics["agreement"] >= 0.97 and report.ok
    assert "input 'left' carries ids (reaches CAST to int32): it stays float32 in the .tflite and is never " \
           "quantized" in report.notes
