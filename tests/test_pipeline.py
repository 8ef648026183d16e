"""Every quantization mode on the shipped sample model, through the library API (one process)."""

from __future__ import annotations

import pytest

from conftest import SAMPLE_H5, SAMPLE_KERAS, SAMPLE_NPZ, sha256
from tfopt import from_dict
from tfopt.pipeline import run

# mode -> max size of the output relative to the float32 TFLite (issue 2 acceptance)
SIZE_LIMITS = {"none": 1.0, "float16": 0.55, "dynamic": 0.30, "int8": 0.30, "int16x8": 0.35}


def recipe(tmp_path, mode, model=SAMPLE_H5, **extra):
    raw = {
        "model": {"path": str(model)},
        "data": {"path": str(SAMPLE_NPZ), "eval_samples": 500},
        "convert": {"quantize": mode},
        "output": {"tflite": str(tmp_path / f"out.{mode}.tflite")},
    }
    for section, values in extra.items():
        raw.setdefault(section, {}).update(values)
    return from_dict(raw)


@pytest.fixture(scope="module")
def reports(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("modes")
    return {mode: run(recipe(tmp, mode)) for mode in SIZE_LIMITS}


@pytest.mark.parametrize("mode", list(SIZE_LIMITS))
def test_mode_size_and_accuracy_on_sample(reports, mode):
    report = reports[mode]
    assert report.ok, report.failures
    assert report.sizes.output_vs_float32 <= SIZE_LIMITS[mode]
    (out,) = report.verification.outputs
    assert out.name == "probs" and out.kind.kind == "classification"
    assert out.metrics["accuracy_reference"] > 0.93
    assert out.metrics["accuracy_drop"] <= 0.01
    assert out.metrics["agreement"] >= 0.97
    assert [g.metric for g in out.gates] == ["agreement", "accuracy_drop"]


def test_int8_is_full_integer_by_default(reports):
    assert reports["int8"].io_types == {"image": "int8", "probs": "int8"}
    assert reports["int16x8"].io_types == {"image": "int16", "probs": "int16"}
    assert reports["float16"].io_types == {"image": "float32", "probs": "float32"}


def test_float32_is_numerically_faithful(reports):
    (out,) = reports["none"].verification.outputs
    assert out.metrics["agreement"] == 1.0
    assert out.metrics["max_abs_error"] < 1e-4
    assert out.metrics["sqnr_db"] > 60


def test_report_records_sizes_timings_and_versions(reports):
    r = reports["int8"]
    assert r.sizes.input and r.sizes.float32_tflite and r.sizes.output
    assert r.sizes.output.gzip_bytes < r.sizes.output.bytes
    assert {"load", "reference outputs", "convert int8", "convert float32 baseline", "verify"} <= set(r.timings)
    assert r.versions["tensorflow"].startswith("2.21")
    assert r.data.to_dict() == {"source": str(SAMPLE_NPZ), "calibration_samples": 200, "eval_samples": 500,
                                "labels": True}


def test_uint8_and_float32_io_types(tmp_path):
    for io in ("uint8", "float32"):
        r = run(recipe(tmp_path, "int8", convert={"quantize": "int8", "io_type": io}, data={"eval_samples": 200}))
        assert r.io_types == {"image": io, "probs": io}
        assert r.ok, r.failures


def test_keras3_file_takes_the_keras3_path_and_matches_h5(tmp_path, reports):
    r = run(recipe(tmp_path, "int8", model=SAMPLE_KERAS))
    assert r.model.format == "keras" and r.model.keras_version.startswith("3.")
    assert r.ok
    (a,), (b,) = r.verification.outputs, reports["int8"].verification.outputs
    assert abs(a.metrics["accuracy"] - b.metrics["accuracy"]) <= 0.004


def test_savedmodel_directory_converts(tmp_path):
    from tfopt import _tf

    model = _tf.tf_keras().models.load_model(SAMPLE_H5, compile=False)
    model.save(tmp_path / "sm")  # tf_keras SavedModel
    before = sha256(tmp_path / "sm")
    r = run(recipe(tmp_path, "dynamic", model=tmp_path / "sm"))
    assert r.model.format == "savedmodel"
    assert r.ok and r.sizes.output_vs_float32 <= 0.30
    assert sha256(tmp_path / "sm") == before


def test_same_inputs_give_identical_bytes(tmp_path):
    outputs = []
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        outputs.append(run(recipe(tmp_path / name, "int8", data={"eval_samples": 100})).output)
    assert sha256(outputs[0]) == sha256(outputs[1])


def test_inputs_are_never_modified(tmp_path):
    before = {p: sha256(p) for p in (SAMPLE_H5, SAMPLE_NPZ)}
    run(recipe(tmp_path, "dynamic", data={"eval_samples": 50}))
    assert {p: sha256(p) for p in before} == before


def test_keras3_h5_and_keras3_exported_savedmodel(tmp_path):
    from tfopt import _tf

    k3 = _tf.keras3().saving.load_model(SAMPLE_KERAS, compile=False)
    k3.save(tmp_path / "k3.h5")
    k3.export(str(tmp_path / "exported"), verbose=False)
    r = run(recipe(tmp_path, "dynamic", model=tmp_path / "k3.h5", data={"eval_samples": 200}))
    assert r.model.keras_version.startswith("3.") and r.model.format == "h5" and r.ok
    r = run(recipe(tmp_path, "int8", model=tmp_path / "exported", data={"eval_samples": 200}))
    assert r.model.format == "savedmodel" and r.model.keras_version is None
    assert r.ok and r.verification.outputs[0].metrics["accuracy_drop"] <= 0.01
    assert r.verification.outputs[0].kind.source == "values: rows in [0, 1] summing to 1"  # a signature: no graph
