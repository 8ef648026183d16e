"""The one table of quantization modes: converter settings, io types, file tags and default gates.

Everything that depends on a mode name reads it from here — the recipe type and its rules, the
click choices and help text, the converter settings, the default verification gates, the file
names — so adding a mode is one row.  No TensorFlow here: converter settings are attribute names
of ``tf.lite`` that ``convert.py`` resolves.

    mode = MODES["int8"]
    mode.needs_calibration, mode.io_types[0], mode.integer
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from .errors import UsageError


@dataclass(frozen=True)
class Mode:
    """How one ``--quantize`` value configures the converter and what verification expects of it."""

    name: str
    file_tag: str  # default output names: model.<file_tag>.tflite
    weights: str  # for the help text and README: how weights are stored
    activations: str  # ... and in which type activations are computed
    io_types: tuple[str, ...]  # allowed --io-type values; the first is the default
    needs_calibration: bool = False  # a representative dataset sets the activation ranges
    integer: bool = False  # activations are integers: strict integer-kernel checks, id inputs stay exact
    optimize: bool = True  # converter.optimizations = [Optimize.DEFAULT]
    supported_types: tuple[str, ...] = ()  # converter.target_spec.supported_types (tf dtype names)
    ops_set: str | None = None  # converter.target_spec.supported_ops (tf.lite.OpsSet member)
    stored_weights: str = "INT8"  # how a converted file stores its kernels (TFLite tensor type)
    activation_type: str = "FLOAT32"  # ... and its activations: what `tfopt verify` recognises a mode by
    search: bool = False  # not one converter setting: a search over int8 mixes and the other modes (auto.py)
    # default gates when the weights were not fine-tuned (see kinds.py for the per-kind table)
    max_accuracy_drop: float = 0.01  # fraction: 0.01 = one point
    min_agreement: float = 0.97
    min_sqnr: float = 20.0  # dB, regression outputs
    min_cosine: float = 0.99  # regression outputs

    @property
    def default_io_type(self) -> str:
        return self.io_types[0]


MODES: dict[str, Mode] = {
    m.name: m
    for m in (
        Mode("none", "float32", "float32", "float32", ("float32",), optimize=False, stored_weights="FLOAT32",
             max_accuracy_drop=0.002, min_agreement=0.995, min_sqnr=60.0, min_cosine=0.99999),
        Mode("dynamic", "dynamic", "int8", "float32 (int8 where kernels allow)", ("float32",)),
        Mode("float16", "float16", "float16", "float32", ("float32",), supported_types=("float16",),
             stored_weights="FLOAT16", max_accuracy_drop=0.005, min_agreement=0.99, min_sqnr=40.0, min_cosine=0.9999),
        Mode("int8", "int8", "int8", "int8", ("int8", "uint8", "float32"), needs_calibration=True, integer=True,
             ops_set="TFLITE_BUILTINS_INT8", activation_type="INT8"),
        Mode("int16x8", "int16x8", "int8", "int16", ("int16", "float32"), needs_calibration=True, integer=True,
             ops_set="EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8", activation_type="INT16",
             min_sqnr=30.0, min_cosine=0.999),
        Mode("auto", "auto", "int8 (float in the layers the gates need)", "int8 (float where kept)",
             ("int8", "uint8", "float32"), needs_calibration=True, integer=True, ops_set="TFLITE_BUILTINS_INT8",
             activation_type="INT8", search=True),
    )
}
NAMES: tuple[str, ...] = tuple(MODES)
FLOAT32 = MODES["none"]  # the size baseline and the export fine-tuning stages are measured in
INT8 = MODES["int8"]  # what QAT trains for
AUTO = MODES["auto"]  # the search: its gates are the budget
OBJECTIVES: tuple[str, ...] = ("size", "latency")  # what auto minimises among the candidates that meet the gates
ObjectiveName = Literal[OBJECTIVES]  # type: ignore[valid-type]
IO_TYPES: tuple[str, ...] = tuple(dict.fromkeys(t for m in MODES.values() for t in m.io_types))

QuantizeName = Literal[NAMES]  # type: ignore[valid-type] - the recipe schema's type, derived from the table
IoTypeName = Literal[IO_TYPES]  # type: ignore[valid-type]


def mode(name: str) -> Mode:
    try:
        return MODES[name]
    except KeyError:
        raise UsageError(f"unknown quantization mode {name!r}: expected one of {', '.join(NAMES)}") from None


def detect(activation_types: set[str], weight_types: set[str]) -> Mode:
    """The mode a converted file was made with, from the tensor types it holds (``tfopt verify``)."""
    for m in MODES.values():
        if m.activation_type != "FLOAT32" and m.activation_type in activation_types:
            return m
    for m in MODES.values():
        if m.activation_type == "FLOAT32" and m.stored_weights in weight_types and m is not FLOAT32:
            return m
    return FLOAT32


def io_type_problem(mode_name: str, io_type: str | None) -> str | None:
    """The io-type rule (the one place it is checked): None when ``io_type`` fits the mode."""
    if io_type is None or mode_name not in MODES:
        return None
    allowed = MODES[mode_name].io_types
    if io_type in allowed:
        return None
    return f"got {io_type!r}, expected one of {list(allowed)} for quantize = {mode_name!r}"


def resolved_io_type(mode_name: str, io_type: str | None) -> str:
    return io_type or MODES[mode_name].default_io_type


def quantize_help() -> str:
    """One line per mode for ``--quantize``'s help text."""
    return "; ".join(f"{m.name}: weights {m.weights}, activations {m.activations}" for m in MODES.values())


def io_type_help() -> str:
    return "; ".join(f"{m.name}: {'/'.join(m.io_types)}" for m in MODES.values() if len(m.io_types) > 1) + \
        " (the first is the default)"


def gates_help(metric: str, unit: str = "") -> str:
    """``0.97 dynamic/int8/int16x8, 0.99 float16, ...``: a gate's default per mode, for --help."""
    by_value: dict[float, list[str]] = {}
    for m in MODES.values():
        by_value.setdefault(getattr(m, metric), []).append(m.name)
    return ", ".join(f"{v:g}{unit} {'/'.join(names)}" for v, names in by_value.items())
