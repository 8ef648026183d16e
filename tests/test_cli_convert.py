"""`tfopt convert` / `tfopt verify` end to end through the CLI: outputs, JSON, exit codes, errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from conftest import SAMPLE_H5, SAMPLE_KERAS, SAMPLE_NPZ, sha256


def assert_clean_error(result, code: int, message: str):
    assert result.exit_code == code, (result.exit_code, result.stderr)
    assert result.stderr.count("Error:") == 1, result.stderr
    assert message in result.stderr, result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert result.exception is None


# ---------------------------------------------------------------- happy path


def test_int8_sample_end_to_end_json(cli, tmp_path):
    out = tmp_path / "m.int8.tflite"
    result = cli("convert", SAMPLE_H5, "--quantize", "int8", "--data", SAMPLE_NPZ, "-o", out, "--json",
                 "--report", tmp_path / "r.json")
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)  # exactly one JSON document
    assert doc["schema"] == "tfopt.report/2" and doc["ok"] is True and doc["exit_code"] == 0
    assert doc["output"] == str(out) and out.is_file()
    assert doc["mode"] == "int8" and doc["io_types"] == {"image": "int8", "probs": "int8"}
    assert doc["sizes"]["output_vs_float32"] <= 0.30
    (probs,) = doc["verification"]["outputs"]
    assert probs["kind"] == "classification" and probs["source"] == "graph: softmax (layer 'probs')"
    assert probs["metrics"]["accuracy_drop"] <= 0.01 and doc["verification"]["samples"] == 1000
    assert [g["metric"] for g in probs["gates"]] == ["agreement", "accuracy_drop"] and probs["gates_evaluated"] == 2
    assert doc["recipe"]["convert"]["quantize"] == "int8"
    assert json.loads((tmp_path / "r.json").read_text()) == doc
    assert result.stderr == ""  # --json implies quiet


def test_default_output_lands_beside_the_input(cli, tiny, tmp_path):
    model = tmp_path / "tiny.h5"
    model.write_bytes(tiny["h5"].read_bytes())
    result = cli("convert", model, "--quantize", "float16", "--data", tiny["npz"])
    assert result.exit_code == 0, result.stderr
    assert (tmp_path / "tiny.float16.tflite").is_file()
    assert "verification: PASSED" in result.stderr
    assert "float32 TFLite" in result.stderr


def test_no_verify_is_explicit_and_reported(cli, tiny, tmp_path):
    out = tmp_path / "t.tflite"
    result = cli("convert", tiny["h5"], "--quantize", "dynamic", "--no-verify", "-o", out, "--json")
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["verification"] is None and out.is_file()


def test_verify_command_passes_then_fails_on_a_mismatched_model(cli, tiny, tmp_path):
    from tfopt import _tf

    out = tmp_path / "t.tflite"
    assert cli("convert", tiny["h5"], "--quantize", "int8", "--data", tiny["npz"], "-o", out).exit_code == 0
    ok = cli("verify", out, "--reference", tiny["h5"], "--data", tiny["npz"], "--json")
    assert ok.exit_code == 0, ok.stderr
    assert json.loads(ok.stdout)["ok"] is True
    # same architecture, different (re-initialised) weights
    K = _tf.tf_keras()
    other = K.models.load_model(tiny["h5"], compile=False)
    _tf.seed_everything(7)
    for layer in other.layers:
        layer.set_weights([np.random.default_rng(7).normal(0, 1, w.shape) for w in layer.get_weights()])
    other.save(tmp_path / "other.h5")
    bad = cli("verify", out, "--reference", tmp_path / "other.h5", "--data", tiny["npz"])
    assert bad.exit_code == 3, bad.stderr
    # the reference is now the worse model, so accuracy "improves"; agreement catches the mismatch
    assert "Error: output 'probs' (classification): top-1 agreement 0.0" in bad.stderr
    assert "< 0.97 (default for int8)" in bad.stderr
    assert "verification: FAILED" in bad.stderr


def test_missed_threshold_exits_3_and_names_metric_value_and_limit(cli, tiny, tmp_path):
    out = tmp_path / "t.tflite"
    result = cli("convert", tiny["h5"], "--quantize", "int8", "--data", tiny["npz"], "-o", out,
                 "--min-sqnr", "200", "--junit", tmp_path / "j.xml")
    assert result.exit_code == 3
    assert "Error: output 'probs' (classification): SQNR" in result.stderr
    assert "dB < 200 dB (--min-sqnr)" in result.stderr
    assert "Traceback" not in result.stderr
    # a model that missed a gate never sits at the output path
    assert not out.exists() and (tmp_path / "t.failed.tflite").is_file()
    assert f"the model was written to {tmp_path / 't.failed.tflite'}, not to the output path" in result.stderr


# ---------------------------------------------------------------- bad models (§3)


def test_missing_model_path(cli, tmp_path):
    result = cli("convert", tmp_path / "nope.h5", "--no-verify")
    assert_clean_error(result, 1, f"Error: model not found: {tmp_path / 'nope.h5'} (expected a Keras .h5 or .keras "
                                  "file or a SavedModel directory)")


def test_a_file_that_is_not_a_model(cli, tmp_path):
    bogus = tmp_path / "notes.h5"
    bogus.write_text("hello")
    result = cli("convert", bogus, "--no-verify")
    assert_clean_error(result, 1, f"{bogus} is not a Keras model: neither HDF5 nor a .keras zip")
    assert bogus.read_text() == "hello"
    assert list(tmp_path.iterdir()) == [bogus]


@pytest.mark.parametrize("name,message", [
    ("mnist_cnn.h5", "is a corrupt or truncated HDF5 file"),
    ("mnist_cnn.keras", "is a corrupt or truncated .keras file"),
])
def test_truncated_model_files(cli, tmp_path, name, message):
    src = SAMPLE_H5 if name.endswith(".h5") else SAMPLE_KERAS
    bad = tmp_path / name
    bad.write_bytes(src.read_bytes()[: src.stat().st_size // 2])
    before = sha256(bad)
    result = cli("convert", bad, "--quantize", "dynamic", "--data", SAMPLE_NPZ)
    assert_clean_error(result, 1, f"Error: {bad} {message}")
    assert sha256(bad) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]  # no output, no temp file


def test_weights_only_h5_has_no_usable_signature(cli, tiny, tmp_path):
    from tfopt import _tf

    model = _tf.tf_keras().models.load_model(tiny["h5"], compile=False)
    model.save_weights(str(tmp_path / "w.h5"))
    result = cli("convert", tmp_path / "w.h5", "--no-verify")
    assert_clean_error(result, 1, "holds no model architecture (weights only?): expected a file saved with "
                                  "model.save(), not model.save_weights()")


def test_savedmodel_without_signature(cli, tmp_path):
    from tfopt import _tf

    tf = _tf.tf()
    tf.saved_model.save(tf.Module(), str(tmp_path / "sm"))
    result = cli("convert", tmp_path / "sm", "--no-verify")
    assert_clean_error(result, 1, "SavedModel has no 'serving_default' signature (expected an exported model)")


def test_directory_that_is_not_a_savedmodel(cli, tmp_path):
    result = cli("convert", tmp_path, "--no-verify")
    assert_clean_error(result, 1, f"Error: {tmp_path} is a directory without saved_model.pb")


# ---------------------------------------------------------------- usage (§4)


def test_int8_without_data_is_a_usage_error(cli, tiny):
    result = cli("convert", tiny["h5"], "--quantize", "int8", "--no-verify")
    assert_clean_error(result, 2, "--quantize int8 calibrates on real samples (pass --data FILE, or "
                                  "--calibration random to accept synthetic calibration)")


def test_verification_without_data_is_a_usage_error(cli, tiny):
    result = cli("convert", tiny["h5"], "--quantize", "dynamic")
    assert_clean_error(result, 2, "Error: verification needs held-out data: pass --data FILE (or --no-verify to "
                                  "skip verification explicitly)")


def test_io_type_must_fit_the_mode(cli, tiny):
    result = cli("convert", tiny["h5"], "--quantize", "float16", "--io-type", "int8", "--no-verify")
    assert_clean_error(result, 2, "Error: --io-type: got 'int8', expected one of ['float32'] for quantize = 'float16'")


def test_random_calibration_is_allowed_with_a_warning(cli, tiny, tmp_path):
    result = cli("convert", tiny["h5"], "--quantize", "int8", "--calibration", "random", "--data", tiny["npz"],
                 "-o", tmp_path / "r.tflite", "--min-agreement", "0", "--max-accuracy-drop", "1", "--json")
    assert result.exit_code == 0, result.stderr
    notes = json.loads(result.stdout)["notes"]
    assert any("synthetic random data" in n for n in notes)


@pytest.mark.parametrize("which", ["model", "data"])
def test_output_path_equal_to_an_input_is_refused(cli, tiny, tmp_path, which):
    model, data = tmp_path / "m.h5", tmp_path / "d.npz"
    model.write_bytes(tiny["h5"].read_bytes())
    data.write_bytes(tiny["npz"].read_bytes())
    before = sha256(model), sha256(data)
    target = model if which == "model" else data
    result = cli("convert", model, "--quantize", "dynamic", "--data", data, "-o", target)
    label = "input model" if which == "model" else "data file"
    assert_clean_error(result, 2, f"Error: refusing to write -o {target}: it is the {label}")
    assert (sha256(model), sha256(data)) == before


# ---------------------------------------------------------------- bad data (§5)


def test_missing_data_file(cli, tiny, tmp_path):
    result = cli("convert", tiny["h5"], "--quantize", "int8", "--data", tmp_path / "none.npz")
    assert_clean_error(result, 1, f"Error: data not found: {tmp_path / 'none.npz'}")


def test_data_shape_mismatch_names_input_and_shapes(cli, tiny, tmp_path):
    np.savez(tmp_path / "bad.npz", x=np.zeros((50, 5), np.float32), y=np.zeros(50, np.int64))
    result = cli("convert", tiny["h5"], "--quantize", "int8", "--data", tmp_path / "bad.npz", "-o", tmp_path / "o.tflite")
    assert_clean_error(result, 1, "input 'features' expects per-sample shape (8,), but the data has (5,) "
                                  "(array shape (50, 5))")
    assert not (tmp_path / "o.tflite").exists()


def test_data_without_input_keys(cli, tiny, tmp_path):
    np.savez(tmp_path / "bad.npz", images=np.zeros((5, 8), np.float32))
    result = cli("convert", tiny["h5"], "--quantize", "dynamic", "--data", tmp_path / "bad.npz")
    assert_clean_error(result, 1, "no data for the model inputs; expected keys ['x'] (one per input name), "
                                  "found ['images']")


def test_unreadable_data_file(cli, tiny, tmp_path):
    (tmp_path / "bad.npz").write_bytes(b"PK\x03\x04 not really a zip")
    result = cli("convert", tiny["h5"], "--quantize", "dynamic", "--data", tmp_path / "bad.npz")
    assert_clean_error(result, 1, f"Error: {tmp_path / 'bad.npz'} is not a readable .npz or .npy file")


# ---------------------------------------------------------------- outputs checked before any work


def test_output_folder_must_exist_before_any_work(cli, tiny, tmp_path):
    out = tmp_path / "missing" / "o.tflite"
    result = cli("convert", tiny["h5"], "--quantize", "dynamic", "--data", tiny["npz"], "-o", out)
    assert_clean_error(result, 2, f"Error: cannot write -o {out}: folder {out.parent} does not exist")
    assert "…" not in result.stderr  # refused in the CLI process: no worker, no progress


def test_report_over_the_output_is_refused(cli, tiny, tmp_path):
    out = tmp_path / "o.tflite"
    result = cli("convert", tiny["h5"], "--quantize", "dynamic", "--data", tiny["npz"], "-o", out, "--report", out)
    assert_clean_error(result, 2, f"Error: --report and -o are the same file ({out})")
    assert not out.exists()


def test_verify_a_file_that_is_not_tflite(cli, tiny, tmp_path):
    bogus = tmp_path / "m.tflite"
    bogus.write_bytes(b"\0" * 64)
    result = cli("verify", bogus, "--reference", tiny["h5"], "--data", tiny["npz"])
    assert_clean_error(result, 1, f"Error: {bogus} is not a TFLite model: the flatbuffer identifier 'TFL3' is missing")
