"""Keras / SavedModel → TFLite: one ``Converter`` per model, each configuration converted once per run.

    with Converter(model) as converter:
        result = converter.convert(ConvertConfig(MODES["int8"]), calibration)
        result.tflite.size, result.io_type, result.notes

The converter settings of each mode come from the mode table (``modes.py``).  A Keras 3 model is
exported to a SavedModel once per run (keeping its output names) and every configuration converts
from that export; tf_keras models convert from a traced concrete function (``from_keras_model`` would
import Keras 3 just to type-check the model, ~3 s per process).
"""

from __future__ import annotations

import dataclasses
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from . import _tf, convert_checks, ids, modes
from .data import Subset
from .errors import UsageError
from .models import LoadedModel
from .modes import Mode
from .progress import Progress, counter, noop
from .tflite import TFLiteModel, read


@dataclass(frozen=True)
class ConvertConfig:
    mode: Mode = modes.FLOAT32
    io_type: str | None = None  # None = the mode's default
    allow_float_fallback: bool = False
    sparse_encoding: bool = False
    input_shapes: tuple[tuple[str, tuple[int | None, ...]], ...] = ()  # (name, full static shape), see shapes.py
    select_tf_ops: bool = False  # allow Select TF ops (Flex) when builtins lack an op (unverifiable)

    @property
    def resolved_io_type(self) -> str:
        return self.io_type or self.mode.default_io_type

    @property
    def shapes(self) -> dict[str, tuple[int | None, ...]]:
        return dict(self.input_shapes)


@dataclass
class ConvertResult:
    tflite: TFLiteModel  # parsed once; ``.raw`` holds the bytes
    config: ConvertConfig
    seconds: float
    notes: list[str] = field(default_factory=list)
    input_shapes: dict = field(default_factory=dict)  # the static shapes the conversion needed
    select_tf_ops: bool = False  # whether it needed Select TF ops (Flex)

    @property
    def data(self) -> bytes:
        return self.tflite.raw

    @property
    def mode(self) -> Mode:
        return self.config.mode

    @property
    def io_type(self) -> str:
        return self.config.resolved_io_type


class Converter:
    """Converts one model; remembers every configuration it converted and the Keras 3 export."""

    def __init__(self, model: LoadedModel, progress: Progress = noop):
        self.model = model
        self.progress = progress  # calibration samples are counted
        self._results: dict[tuple, ConvertResult] = {}
        self._exports: dict[tuple, str] = {}
        self._workdir: tempfile.TemporaryDirectory | None = None

    def __enter__(self) -> Converter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        if self._workdir is not None:
            self._workdir.cleanup()
            self._workdir = None
            self._exports.clear()

    def convert(self, config: ConvertConfig, calibration: Subset | None = None) -> ConvertResult:
        """Convert (or return this run's earlier conversion of) ``config``; calibrated modes need samples."""
        problem = modes.io_type_problem(config.mode.name, config.io_type)
        if problem:
            raise UsageError(f"--io-type: {problem}")
        if config.mode.needs_calibration and calibration is None:
            raise UsageError(f"--quantize {config.mode.name} needs calibration data: pass --data FILE "
                             "(or --calibration random)")
        key = (config, id(calibration) if config.mode.needs_calibration else None)
        if key not in self._results:
            self._results[key] = self._convert(config, calibration)
        return self._results[key]

    def _convert(self, config: ConvertConfig, calibration: Subset | None) -> ConvertResult:
        tf = _tf.tf()
        start = time.perf_counter()
        notes: list[str] = []

        def attempt(state: convert_checks.Attempt) -> bytes:
            converter = self._entry_point(tf, state.shapes)
            configure(converter, config, tf)
            if state.select_tf_ops:
                ops = set(converter.target_spec.supported_ops) | {tf.lite.OpsSet.SELECT_TF_OPS}
                if tf.lite.OpsSet.TFLITE_BUILTINS_INT8 not in ops:
                    ops.add(tf.lite.OpsSet.TFLITE_BUILTINS)
                converter.target_spec.supported_ops = ops
            if config.mode.needs_calibration:
                tick = counter(self.progress, f"calibrating {config.mode.name}", len(calibration), "samples")
                converter.representative_dataset = representative(self.model, calibration, tick)
            with _tf.quiet_native():
                return converter.convert()

        flatbuffer, state = convert_checks.convert_with_fallbacks(attempt, self.model, config, notes)
        model = read(flatbuffer, f"the {config.mode.name} conversion")
        model = self._keep_ids_exact(model, config, calibration, notes)
        notes += convert_checks.check_result(model, self.model, config)
        return ConvertResult(model, config, time.perf_counter() - start, notes, state.shapes, state.select_tf_ops)

    def _keep_ids_exact(self, model: TFLiteModel, config: ConvertConfig, calibration: Subset | None,
                        notes: list[str]) -> TFLiteModel:
        """Integer io quantizes every input: convert with float32 io instead and make only the inputs that
        carry no ids (and the outputs) integer (``ids.py``)."""
        if not config.mode.integer or config.resolved_io_type == "float32":
            return model
        found = ids.id_inputs(model)
        if not ids.quantized(model, found):
            return model
        float_io = self.convert(dataclasses.replace(config, io_type=modes.FLOAT32.default_io_type), calibration)
        data, id_notes = ids.with_io_type(float_io.data, config.resolved_io_type, found)
        notes += id_notes
        return read(data, f"the {config.mode.name} conversion")

    def calibrated(self, config: ConvertConfig, calibration: Subset) -> bytes:
        """A float flatbuffer carrying the calibrated ranges of every tensor (the quantization debugger's
        path, ``_experimental_calibrate_only``): ``selective.quantize`` makes int8 models from it.  The
        converter's fallbacks (static shapes, Select TF ops refused) apply as for ``convert``."""
        float_io = dataclasses.replace(config, io_type=modes.FLOAT32.default_io_type)
        key = ("calibrated", float_io, id(calibration))
        if key not in self._results:
            tf = _tf.tf()

            def attempt(state: convert_checks.Attempt) -> bytes:
                converter = self._entry_point(tf, state.shapes)
                configure(converter, float_io, tf)
                tick = counter(self.progress, "calibrating", len(calibration), "samples")
                converter.representative_dataset = representative(self.model, calibration, tick)
                converter._experimental_calibrate_only = True  # noqa: SLF001 - the debugger's path
                with _tf.quiet_native():
                    return bytes(converter.convert())

            self._results[key], _ = convert_checks.convert_with_fallbacks(attempt, self.model, float_io, [])
        return self._results[key]

    def _entry_point(self, tf, shapes: dict):
        if self.model.flavour == "keras3":  # a concrete function would keep Keras 3's resource variables
            return tf.lite.TFLiteConverter.from_saved_model(self._keras3_export(tf, shapes))
        if self.model.flavour == "tf_keras" or shapes:
            return convert_checks.static_converter(self.model, tf, shapes)
        return tf.lite.TFLiteConverter.from_saved_model(str(self.model.path))

    def _keras3_export(self, tf, shapes: dict) -> str:
        key = tuple(sorted(shapes.items()))
        if key not in self._exports:
            if self._workdir is None:
                self._workdir = tempfile.TemporaryDirectory(prefix="tfopt-convert-")
            self._exports[key] = export_keras3(self.model, tf, self._workdir.name, shapes)
        return self._exports[key]


def convert(model: LoadedModel, config: ConvertConfig, calibration: Subset | None = None) -> ConvertResult:
    """Convert ``model`` once (no caching across calls): the library's one-shot entry point."""
    with Converter(model) as converter:
        return converter.convert(config, calibration)


def configure(converter, config: ConvertConfig, tf) -> None:
    """Apply the mode table's converter settings (and io types, sparse encoding, float fallback)."""
    mode = config.mode
    optimizations = [tf.lite.Optimize.DEFAULT] if mode.optimize else []
    if config.sparse_encoding:  # float32 weights can be stored sparse too
        optimizations.append(tf.lite.Optimize.EXPERIMENTAL_SPARSITY)
    converter.optimizations = optimizations
    if mode.supported_types:
        converter.target_spec.supported_types = [getattr(tf, t) for t in mode.supported_types]
    if mode.ops_set:
        ops = [getattr(tf.lite.OpsSet, mode.ops_set)]
        if config.allow_float_fallback:
            ops.append(tf.lite.OpsSet.TFLITE_BUILTINS)
        converter.target_spec.supported_ops = ops
    io = config.resolved_io_type
    if mode.needs_calibration and io != "float32":
        converter.inference_input_type = getattr(tf, io)
        converter.inference_output_type = getattr(tf, io)


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
    with _tf.quiet_native():
        archive.write_out(path, verbose=False)
    return path


def representative(model: LoadedModel, calibration: Subset, tick: Callable[[int], None] | None = None) -> Callable:
    """The converter's representative dataset: one sample at a time, fed by input name (``tick(n)`` counts them)."""
    names = [s.name for s in model.inputs]

    def gen():
        done = 0
        for x, _ in calibration.batches(32):
            for i in range(len(x[names[0]])):  # by name: the converter's input order is not the model's
                yield {n: x[n][i : i + 1].astype(np.float32) if x[n].dtype.kind == "f" else x[n][i : i + 1] for n in names}
                done += 1
                if tick:
                    tick(done)

    return gen


def output_stem(model_path: str | Path) -> tuple[Path, str]:
    """(folder, stem) of the default output names beside the model."""
    path = Path(model_path)
    return path.parent, path.name if path.is_dir() else path.stem
