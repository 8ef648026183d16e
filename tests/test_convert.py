"""Keras → TFLite: the mode table drives the converter, and each configuration converts once per run."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from conftest import SAMPLE_KERAS, SAMPLE_NPZ
from tfopt.convert import ConvertConfig, Converter, configure
from tfopt.errors import UsageError
from tfopt.modes import MODES


def fake_tf():
    """Enough of ``tf`` for ``configure``: attribute names stand for the real enum members."""
    ops = SimpleNamespace(TFLITE_BUILTINS="BUILTINS", TFLITE_BUILTINS_INT8="INT8",
                          EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8="INT16x8")
    lite = SimpleNamespace(Optimize=SimpleNamespace(DEFAULT="DEFAULT", EXPERIMENTAL_SPARSITY="SPARSITY"), OpsSet=ops)
    return SimpleNamespace(lite=lite, float16="f16", int8="i8", uint8="u8", int16="i16", float32="f32")


def configured(mode: str, **kw):
    converter = SimpleNamespace(target_spec=SimpleNamespace(supported_types=[], supported_ops=[]), optimizations=None,
                                inference_input_type=None, inference_output_type=None)
    configure(converter, ConvertConfig(MODES[mode], **kw), fake_tf())
    return converter


def test_the_mode_table_configures_the_converter():
    assert configured("none").optimizations == []
    assert configured("none", sparse_encoding=True).optimizations == ["SPARSITY"]
    assert configured("float16").target_spec.supported_types == ["f16"]
    assert configured("dynamic").optimizations == ["DEFAULT"] and configured("dynamic").target_spec.supported_ops == []
    int8 = configured("int8")
    assert int8.target_spec.supported_ops == ["INT8"] and int8.inference_input_type == "i8"
    assert configured("int8", allow_float_fallback=True).target_spec.supported_ops == ["INT8", "BUILTINS"]
    assert configured("int8", io_type="float32").inference_input_type is None
    assert configured("int16x8").target_spec.supported_ops == ["INT16x8"]
    assert configured("int16x8").inference_output_type == "i16"


def test_io_type_and_calibration_are_checked_before_converting(tiny):
    from tfopt.models import load_model

    with Converter(load_model(tiny["h5"])) as converter:
        with pytest.raises(UsageError, match=r"^--io-type: got 'int16', expected one of \['int8', 'uint8', 'float32'\]"):
            converter.convert(ConvertConfig(MODES["int8"], "int16"))
        with pytest.raises(UsageError, match=r"^--quantize int8 needs calibration data"):
            converter.convert(ConvertConfig(MODES["int8"]))


def test_each_configuration_converts_once_and_keras3_exports_once(tmp_path):
    from tfopt.data import load_data
    from tfopt.models import load_model

    model = load_model(SAMPLE_KERAS)
    plan = load_data(SAMPLE_NPZ, model.inputs, model.outputs, calibration_samples=20, eval_samples=10)
    with Converter(model) as converter:
        float32 = converter.convert(ConvertConfig(MODES["none"]))
        assert converter.convert(ConvertConfig(MODES["none"])) is float32  # no second conversion
        int8 = converter.convert(ConvertConfig(MODES["int8"]), plan.calibration)
        assert int8 is not float32 and int8.io_type == "int8" and int8.tflite.io_types()["probs"] == "int8"
        assert len(converter._exports) == 1  # one SavedModel export served both configurations
        workdir = converter._workdir.name
    assert float32.data[4:8] == b"TFL3" and float32.tflite.io_types() == {"image": "float32", "probs": "float32"}
    import os

    assert not os.path.exists(workdir)  # closed: the export is gone
