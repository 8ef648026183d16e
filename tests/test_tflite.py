"""The one .tflite reader (flatbuffer) and the one LiteRT runner."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from tfopt.errors import ModelLoadError
from tfopt.tflite import Runner, read, summarize_ops
from tfopt.tflite.reader import kernel_sparsity


def test_reader_lists_ops_signature_io_types_and_float_ops(odd_model):
    model = read(odd_model["int8"].read_bytes())
    names = [op.name for op in model.ops]
    assert names[0] == "FULLY_CONNECTED" and "SIN" in names and names.count("FULLY_CONNECTED") == 2
    assert model.signature()["inputs"].keys() == {"features"} and model.io_types() == {"features": "int8", "probs": "int8"}
    assert [op.name for op in model.float_ops()] == ["SIN"] and model.integer_activations
    assert summarize_ops(model.ops[:1] + model.float_ops() * 2) == "FULLY_CONNECTED, SIN ×2"
    assert model.stateful_ops() == []


def test_kernel_statistics_come_from_the_stored_values(odd_model):
    float32 = read(odd_model["float32"].read_bytes())
    kernels = {k.layer: k for k in float32.kernels(["hidden", "probs"])}
    assert set(kernels) == {"hidden", "probs"}
    assert kernels["hidden"].sparsity == pytest.approx(0.5) and kernels["hidden"].shape == (16, 8)
    assert kernels["hidden"].op == "FULLY_CONNECTED" and kernels["hidden"].dtype == "float32"
    assert kernel_sparsity(list(kernels.values())) == pytest.approx(0.5 * 128 / 176, abs=1e-4)
    int8 = {k.layer: k for k in read(odd_model["int8"].read_bytes()).kernels(["hidden", "probs"])}
    assert int8["hidden"].dtype == "int8" and int8["hidden"].max_unique_per_channel <= 8 + 1
    assert 0.5 <= int8["hidden"].sparsity < 0.6


def test_a_parsed_model_pickles_as_its_bytes(odd_model):
    model = read(odd_model["int8"].read_bytes())
    again = pickle.loads(pickle.dumps(model))
    assert again.raw == model.raw and [op.name for op in again.ops] == [op.name for op in model.ops]


def test_not_a_tflite_is_a_clear_error():
    with pytest.raises(ModelLoadError, match="^x is not a TFLite model: the flatbuffer identifier 'TFL3' is missing$"):
        read(b"\0" * 64, "x")


def test_runner_batches_and_matches_sample_by_sample(odd_model):
    runner = Runner(read(odd_model["float32"].read_bytes()), threads=1)
    x = np.random.default_rng(0).random((7, 8), dtype=np.float32)
    assert runner.resizable and runner.input_names == ["features"] and runner.output_names == ["probs"]
    batched = runner({"features": x})["probs"]
    single = np.concatenate([runner({"features": x[i : i + 1]})["probs"] for i in range(7)])
    np.testing.assert_allclose(batched, single, rtol=1e-6)
    assert batched.shape == (7, 3)


def test_runner_quantizes_inputs_and_dequantizes_outputs(odd_model):
    float_out = Runner(odd_model["float32"].read_bytes())({"features": np.full((4, 8), 0.3, np.float32)})["probs"]
    int8_out = Runner(odd_model["int8"].read_bytes())({"features": np.full((4, 8), 0.3, np.float32)})["probs"]
    assert int8_out.dtype == np.float32 and np.abs(int8_out - float_out).max() < 0.05


def test_runner_sets_inputs_once_for_benchmarks(odd_model):
    runner = Runner(odd_model["int8"].read_bytes(), threads=1, batch=2)
    runner.set_inputs({"features": np.zeros((2, 8), np.float32)})
    runner.invoke()
    assert runner.raw_input_shapes() == {"features": (2, 8)}
