"""`tfopt train`: the reference-model trainer that make_samples.py also uses."""

from __future__ import annotations

import json

from conftest import sha256


def test_train_mlp_writes_a_loadable_model_and_reports_accuracy(cli, tiny, tmp_path):
    out = tmp_path / "mlp.h5"
    before = sha256(tiny["npz"])
    result = cli("train", "--arch", "mlp", "--data", tiny["npz"], "-o", out, "--epochs", "2", "--json")
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["arch"] == "mlp" and doc["epochs"] == 2 and doc["test_accuracy"] > 0.9  # well-separated blobs
    from tfopt.models import load_model

    model = load_model(out)
    assert model.keras_version.startswith("2.") and [i.shape for i in model.inputs] == [(None, 8)]
    assert sha256(tiny["npz"]) == before


def test_train_small_cnn_on_vectors_is_a_clear_error(cli, tiny, tmp_path):
    result = cli("train", "--arch", "small-cnn", "--data", tiny["npz"], "-o", tmp_path / "cnn.h5")
    assert result.exit_code == 1
    assert "Error: " in result.stderr and "do not fit --arch small-cnn input (28, 28, 1)" in result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "cnn.h5").exists()


def test_quiet_convert_prints_nothing(cli, tiny, tmp_path):
    result = cli("convert", tiny["h5"], "--quantize", "dynamic", "--data", tiny["npz"], "-o", tmp_path / "q.tflite",
                 "--quiet")
    assert result.exit_code == 0 and result.stderr == "" and result.stdout == ""
    assert (tmp_path / "q.tflite").stat().st_size > 0


def test_train_on_data_without_a_test_split_says_so(cli, tiny, tmp_path):
    result = cli("train", "--arch", "mlp", "--data", tiny["xy"], "-o", tmp_path / "m.h5", "--epochs", "1")
    assert result.exit_code == 0, result.stderr
    assert "test accuracy n/a (no x_test/y_test in the data) after 1 epochs" in result.stderr
