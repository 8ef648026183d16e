"""Keras / SavedModel → TFLite flatbuffer, one table entry per quantization mode."""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from . import _tf, convert_checks
from .data import Subset
from .errors import UsageError
from .models import LoadedModel


@dataclass(frozen=True)
class Mode:
    """How one --quantize value configures the converter."""

    name: str
    file_tag: str  # used in default output names: model.<file_tag>.tflite
    needs_calibration: bool
    io_types: tuple[str, ...]  # allowed --io-type values; first is the default
    max_accuracy_drop: float  # default verification thresholds
    min_agreement: float


MODES: dict[str, Mode] = {
    m.name: m
    for m in (
        Mode("none", "float32", False, ("float32",), 0.002, 0.995),
        Mode("float16", "float16", False, ("float32",), 0.005, 0.99),
        Mode("dynamic", "dynamic", False, ("float32",), 0.01, 0.97),
        Mode("int8", "int8", True, ("int8", "uint8", "float32"), 0.01, 0.97),
        Mode("int16x8", "int16x8", True, ("int16", "float32"), 0.01, 0.97),
    )
}


def mode(name: str) -> Mode:
    try:
        return MODES[name]
    except KeyError:
        raise UsageError(f"unknown quantization mode {name!r}: expected one of {', '.join(MODES)}") from None


@dataclass(frozen=True)
class ConvertConfig:
    mode: str = "none"
    io_type: str | None = None  # None = the mode's default
    allow_float_fallback: bool = False
    sparse_encoding: bool = False
    input_shapes: dict | None = None  # name -> full static shape (None = dynamic batch), see shapes.py
    select_tf_ops: bool = False  # allow Select TF ops (Flex) when builtins lack an op (unverifiable)

    @property
    def resolved_io_type(self) -> str:
        return self.io_type or MODES[self.mode].io_types[0]


@dataclass
class ConvertResult:
    tflite: bytes
    mode: str
    io_type: str
    seconds: float
    notes: list[str] = field(default_factory=list)
    input_shapes: dict = field(default_factory=dict)  # the static shapes the conversion needed
    select_tf_ops: bool = False  # whether it needed Select TF ops (Flex)


def _configure_mode(converter, config: ConvertConfig, tf) -> None:
    name = config.mode
    if name == "none":
        if config.sparse_encoding:  # float32 weights can be stored sparse too
            converter.optimizations = [tf.lite.Optimize.EXPERIMENTAL_SPARSITY]
        return
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if config.sparse_encoding:
        converter.optimizations.append(tf.lite.Optimize.EXPERIMENTAL_SPARSITY)
    if name == "float16":
        converter.target_spec.supported_types = [tf.float16]
    elif name == "int8":
        ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        if config.allow_float_fallback:
            ops.append(tf.lite.OpsSet.TFLITE_BUILTINS)
        converter.target_spec.supported_ops = ops
    elif name == "int16x8":
        ops = [tf.lite.OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8]
        if config.allow_float_fallback:
            ops.append(tf.lite.OpsSet.TFLITE_BUILTINS)
        converter.target_spec.supported_ops = ops
    io = config.resolved_io_type
    if MODES[name].needs_calibration and io != "float32":
        converter.inference_input_type = getattr(tf, io)
        converter.inference_output_type = getattr(tf, io)


def _converter_for(model: LoadedModel, tf, workdir: str):
    """The fastest correct converter entry point for where the model came from.

    tf_keras models convert from a traced concrete function: ``from_keras_model`` would save a
    SavedModel first and import Keras 3 just to type-check the model (~3 s per process).
    """
    if model.flavour == "tf_keras":
        return convert_checks.static_converter(model, tf, {})
    if model.flavour == "keras3":
        return tf.lite.TFLiteConverter.from_saved_model(export_keras3(model, tf, workdir))
    return tf.lite.TFLiteConverter.from_saved_model(str(model.path))


def export_keras3(model: LoadedModel, tf, workdir: str, shapes: dict | None = None) -> str:
    """Export a Keras 3 model as a SavedModel whose signature keeps the Keras output names.

    (``model.export()`` would name outputs ``output_0``…; a named dict lets verification
    match outputs by name.)  Variables are saved, so int8 calibration can read them.
    ``shapes`` fixes input shapes (name -> full shape) for models that need static ones.
    """
    keras = _tf.keras3()
    shapes = shapes or {}
    specs = [tf.TensorSpec(shapes.get(s.name, (None,) + tuple(s.shape[1:])), s.dtype, name=s.name) for s in model.inputs]
    keras_model, out_names = model.model, [o.name for o in model.outputs]

    def serve(*args):
        out = keras_model(list(args) if len(args) > 1 else args[0], training=False)
        out = out if isinstance(out, (list, tuple)) else [out]
        return dict(zip(out_names, out))

    archive = keras.export.ExportArchive()
    archive.track(keras_model)
    archive.add_endpoint(name="serving_default", fn=serve, input_signature=specs)
    path = tempfile.mkdtemp(prefix="keras3_savedmodel_", dir=workdir)
    archive.write_out(path, verbose=False)
    return path


def convert(model: LoadedModel, config: ConvertConfig, calibration: Subset | None = None) -> ConvertResult:
    """Convert ``model``; int8/int16x8 need ``calibration`` samples (fed one at a time)."""
    tf = _tf.tf()
    spec = mode(config.mode)
    if config.resolved_io_type not in spec.io_types:
        raise UsageError(
            f"--io-type {config.resolved_io_type} does not apply to --quantize {config.mode}: "
            f"expected one of {', '.join(spec.io_types)}"
        )
    if spec.needs_calibration and calibration is None:
        raise UsageError(f"--quantize {config.mode} needs calibration data: pass --data FILE (or --calibration random)")
    start = time.perf_counter()
    notes: list[str] = []
    with tempfile.TemporaryDirectory(prefix="tfopt-convert-") as workdir:

        def attempt(state: convert_checks.Attempt) -> bytes:
            if state.shapes and model.flavour == "keras3":  # a concrete function would keep resource variables
                converter = tf.lite.TFLiteConverter.from_saved_model(export_keras3(model, tf, workdir, state.shapes))
            elif state.shapes:
                converter = convert_checks.static_converter(model, tf, state.shapes)
            else:
                converter = _converter_for(model, tf, workdir)
            _configure_mode(converter, config, tf)
            if state.select_tf_ops:
                ops = set(converter.target_spec.supported_ops) | {tf.lite.OpsSet.SELECT_TF_OPS}
                if tf.lite.OpsSet.TFLITE_BUILTINS_INT8 not in ops:
                    ops.add(tf.lite.OpsSet.TFLITE_BUILTINS)
                converter.target_spec.supported_ops = ops
            if spec.needs_calibration:
                converter.representative_dataset = _representative(model, calibration)
            return converter.convert()

        flatbuffer, state = convert_checks.convert_with_fallbacks(attempt, model, config, notes)
    notes += convert_checks.check_result(flatbuffer, model, config)
    seconds = time.perf_counter() - start
    return ConvertResult(flatbuffer, config.mode, config.resolved_io_type, seconds, notes, state.shapes, state.select_tf_ops)


def _representative(model: LoadedModel, calibration: Subset) -> Callable:
    names = [s.name for s in model.inputs]

    def gen():
        for x, _ in calibration.batches(32):
            for i in range(len(x[names[0]])):  # by name: the converter's input order is not the model's
                yield {n: x[n][i : i + 1].astype(np.float32) if x[n].dtype.kind == "f" else x[n][i : i + 1] for n in names}

    return gen

