"""tfopt inspect: Keras layers + TF-MOT support, .tflite ops/tensors/quantization, float ops in int8 models."""

from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import sha256
from tfopt.errors import ModelLoadError
from tfopt.inspection import inspect_path, inspect_tflite, render_text


@pytest.fixture(scope="module")
def keras_result(odd_model):
    return inspect_path(odd_model["h5"])


def test_keras_layers_params_and_kernel_sparsity(keras_result):
    rows = {r.name: r for r in keras_result.layers}
    assert [r.kind for r in keras_result.layers] == ["Dense", "LayerNormalization", "Lambda", "Dense"]
    assert rows["hidden"].params == 8 * 16 + 16
    assert rows["probs"].params == 16 * 3 + 3
    assert keras_result.total_params == 144 + 32 + 51
    assert rows["hidden"].sparsity == pytest.approx(0.5)
    assert rows["hidden"].unique_values == 65  # 64 random non-zero weights + 0
    assert [w.name for w in rows["hidden"].weights][0].endswith("kernel:0")
    assert keras_result.inputs == [{"name": "features", "shape": [None, 8], "dtype": "float32", "quantization": None}]
    assert keras_result.outputs[0]["name"] == "probs"


def test_keras_stage_support_comes_from_tfmot_registries(keras_result):
    rows = {r.name: r.stages for r in keras_result.layers}
    assert rows["hidden"] == {"prune": True, "quantize": True, "cluster": True}
    # LayerNormalization: TF-MOT refuses it, tfopt's own QuantizeConfig takes it (the converter runs it in int8)
    assert rows["norm"]["quantize"] is True and rows["sine"]["quantize"] is False
    assert keras_result.stage_support["quantize"]["unsupported"] == ["sine (Lambda)"]
    assert any(n.endswith("on tfopt's own QuantizeConfigs: norm") for n in keras_result.notes), keras_result.notes
    assert keras_result.stage_support["prune"]["unsupported"] == []


def test_keras_int8_check_lists_ops_without_int8_kernel(keras_result):
    assert keras_result.float_ops == ["SIN (odd/sine)"]
    assert keras_result.integer_only is False
    assert not any("int8" in n for n in keras_result.notes)  # the result has its own line: not said twice
    text = render_text(keras_result)
    assert "quantize: unsupported: sine (Lambda)" in text
    assert "int8: ops without an int8 kernel (stay float): SIN (odd/sine)" in text


def test_tflite_int8_tensors_quantization_and_float_fallback_ops(odd_model):
    result = inspect_tflite(odd_model["int8"].read_bytes(), "odd.int8.tflite")
    assert result.kind == "tflite" and result.size.bytes == odd_model["int8"].stat().st_size
    assert 0 < result.size.gzip_bytes < result.size.bytes
    (inp,) = result.inputs
    assert inp["name"] == "features" and inp["dtype"] == "int8" and inp["shape"] == [-1, 8]
    assert inp["quantization"]["per_channel"] is False and inp["quantization"]["scale"] > 0
    fc = [r for r in result.layers if r.kind == "FULLY_CONNECTED"]
    assert fc[0].weights[0].shape == (16, 8) and fc[0].params >= 128 and fc[0].dtypes.startswith("int8")
    assert 0.5 <= fc[0].sparsity < 0.6  # the zero rows stay zero; tiny weights may round to 0
    kernel = next(t for t in result.tensors if t["shape"] == [16, 8])
    assert kernel["dtype"] == "int8" and kernel["quantization"]["per_channel"] is True
    assert len(kernel["quantization"]["scale"]) == 16 and kernel["bytes"] == 128
    assert result.float_ops == ["SIN (odd/sine)"] and result.integer_only is False


def test_tflite_full_integer_model_is_integer_only(tiny):
    from tfopt.convert import ConvertConfig, convert
    from tfopt.data import random_calibration
    from tfopt.models import load_model

    model = load_model(tiny["h5"])
    from tfopt.modes import MODES

    data = convert(model, ConvertConfig(MODES["int8"]), random_calibration(model.inputs, 8, 0)).data
    result = inspect_tflite(data)
    assert result.float_ops == [] and result.integer_only is True
    assert result.total_params == model.model.count_params()
    assert "int8: every op has an integer kernel" in render_text(result)


def test_tflite_float_model_has_no_int8_check(odd_model):
    result = inspect_tflite(odd_model["float32"].read_bytes())
    assert result.float_ops is None and result.integer_only is False
    # the converter folds the untrained model's zero biases and unit LayerNorm away: only the two kernels stay
    assert result.total_params == 16 * 8 + 3 * 16
    assert [(r.kind, r.params, r.sparsity) for r in result.layers if r.params] == [
        ("FULLY_CONNECTED", 128, 0.5), ("FULLY_CONNECTED", 48, 0.0)]
    assert all(t["quantization"] is None for t in result.tensors if t["dtype"] == "float32")
    assert any("activations are float" in n for n in result.notes)


def test_not_a_tflite_and_corrupt_flatbuffer_errors(tmp_path):
    with pytest.raises(ModelLoadError, match="is not a TFLite model: the flatbuffer identifier 'TFL3' is missing"):
        inspect_tflite(b"\x00" * 64, "x.tflite")
    with pytest.raises(ModelLoadError, match="x.tflite is a corrupt TFLite flatbuffer"):
        inspect_tflite(b"\xff\xff\xff\x7fTFL3" + b"\x00" * 8, "x.tflite")
    with pytest.raises(ModelLoadError, match="model not found: .*missing.h5"):
        inspect_path(tmp_path / "missing.h5")


def test_cli_inspect_tflite_json_and_text(cli, odd_model):
    before = sha256(odd_model["int8"])
    r = cli("inspect", odd_model["int8"], "--json")
    assert r.exit_code == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["schema"] == "tfopt.inspect/1" and doc["kind"] == "tflite"
    assert doc["float_ops"] == ["SIN (odd/sine)"]
    assert {"layers", "tensors", "inputs", "outputs", "size", "total_params"} <= set(doc)
    r = cli("inspect", odd_model["int8"], "--tensors")
    assert r.exit_code == 0 and "FULLY_CONNECTED" in r.stdout and "per-channel[16]" in r.stdout
    assert sha256(odd_model["int8"]) == before


def test_cli_inspect_keras_in_worker(cli, odd_model):
    r = cli("inspect", odd_model["h5"], "--no-int8-check", "--json")
    assert r.exit_code == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["kind"] == "keras" and doc["float_ops"] is None
    assert [l["stages"]["quantize"] for l in doc["layers"]] == [True, True, False, True]


def test_cli_inspect_errors(cli, tmp_path):
    r = cli("inspect", tmp_path / "nope.tflite")
    assert r.exit_code == 1 and r.stderr.startswith("Error: model not found:") and "Traceback" not in r.stderr
    bad = tmp_path / "bad.tflite"
    bad.write_bytes(b"not a model at all")
    r = cli("inspect", bad)
    assert r.exit_code == 1
    assert r.stderr.strip() == f"Error: {bad} is not a TFLite model: the flatbuffer identifier 'TFL3' is missing"


def test_keras3_model_support_judged_on_the_tf_keras_bridge():
    from conftest import SAMPLE_KERAS

    result = inspect_path(SAMPLE_KERAS, int8_check=False)
    assert result.format == "keras" and result.total_params == 108_618
    assert [r.kind for r in result.layers][:2] == ["Conv2D", "MaxPooling2D"]
    assert all(r.stages == {"prune": True, "quantize": True, "cluster": True} for r in result.layers)
    assert any("the tf_keras model the bridge rebuilds" in n for n in result.notes)
