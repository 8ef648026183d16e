"""What the TFLite converter needs from models in the wild, and what it must not do silently.

* ``convert_with_fallbacks`` runs conversion attempts and reads the converter's error text:
  static shapes (RNNs lower to TensorList ops that need them) are fixed with a batch of 1
  when only the batch is dynamic, or refused naming the input, the dimension and the
  ``--input-shape`` flag; ops that need Select TF ops (Flex) are refused unless verification
  is off; other failures list the ops the converter names.
* ``check_result`` inspects the .tflite: strict full-integer conversion must not leave ops
  computing in float (``--allow-float-fallback`` accepts them, and the notes list them);
  integer (id) inputs are never squeezed into int8 I/O.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Callable

from . import ids
from . import shapes as shapes_mod
from .errors import ConversionError
from .models import LoadedModel
from .tflite import TFLiteModel, summarize_ops

NEEDS_STATIC = ("requires element_shape to be static", "Lowering tensor list ops is failed")
_NOT_BUILTIN = re.compile(r"'tf\.(\w+)' op is neither a custom op nor a flex op")
_OP_NAMES = (
    re.compile(r"'(?:tfl|tf)\.(\w+)' op"),
    re.compile(r"[Qq]uantization (?:not yet )?supported for op:? '?(\w+)'?"),
    re.compile(r"op[: ]+'?(\w+)'? is not supported"),
)
FALLBACK_HINT = "pass --allow-float-fallback to keep them in float, or use --quantize dynamic"


@dataclass
class Attempt:
    """Converter settings that a failed attempt may change."""

    shapes: dict[str, tuple[int | None, ...]] = field(default_factory=dict)
    select_tf_ops: bool = False


def convert_with_fallbacks(
    attempt: Callable[[Attempt], bytes], model: LoadedModel, config, notes: list[str]
) -> tuple[bytes, Attempt]:
    """Call ``attempt`` until it converts or a failure is explained (ConversionError)."""
    state = Attempt(dict(config.shapes), False)
    if has_rnn(model):  # known up front: skip the failing dynamic-shape attempt (seconds per conversion)
        _fix_batch(model, state, notes)
    for _ in range(3):
        try:
            return attempt(state), state
        except ConversionError:
            raise
        except Exception as e:  # noqa: BLE001 - ConverterError, ValueError, RuntimeError, ...
            text = str(e)
            if any(marker in text for marker in NEEDS_STATIC) and _fix_batch(model, state, notes):
                continue
            flex = sorted(set(_NOT_BUILTIN.findall(text)))
            if flex and not state.select_tf_ops:
                if not config.select_tf_ops:
                    raise ConversionError(flex_refusal(flex)) from e
                state.select_tf_ops = True
                notes.append(
                    f"WARNING: converted with Select TF ops (Flex) for {', '.join(flex)}: the standard LiteRT "
                    "interpreter cannot run this model (link the Flex delegate); it was not verified"
                )
                continue
            raise ConversionError(explain(config, text), _hint(config, text)) from e
    raise ConversionError(f"the TFLite converter kept failing while converting to {config.mode.name}")


RNN_LAYERS = frozenset({"LSTM", "GRU", "SimpleRNN", "RNN", "Bidirectional", "ConvLSTM1D", "ConvLSTM2D", "ConvLSTM3D"})


def has_rnn(model: LoadedModel) -> bool:
    """Whether a Keras model has recurrent layers (the converter needs static shapes for them)."""
    stack = list(getattr(model.model, "layers", []) or [])
    while stack:
        layer = stack.pop()
        if type(layer).__name__ in RNN_LAYERS:
            return True
        stack.extend(getattr(layer, "layers", []) or [])
    return False


def _fix_batch(model: LoadedModel, state: Attempt, notes: list[str]) -> bool:
    """Static shapes needed: fix a dynamic batch to 1, or refuse naming the dynamic dimension."""
    current = {s.name: state.shapes.get(s.name, s.shape) for s in model.inputs}
    for spec in model.inputs:
        dims = [i for i, d in enumerate(current[spec.name]) if d is None and i > 0]
        if dims:
            shown = shapes_mod.format_shape(current[spec.name])
            raise ConversionError(
                f"input '{spec.name}' has a dynamic dimension {dims[0]} (shape {shown}) and the TFLite converter "
                f"needs static shapes for this model (RNN / TensorList ops): fix it with "
                f"{shapes_mod.example_flag(spec)}"
            )
    if all(shape[0] == 1 for shape in current.values()):
        return False
    state.shapes = {name: (1,) + tuple(shape[1:]) for name, shape in current.items()}
    notes.append("batch size fixed to 1 in the .tflite: the TFLite converter needs static shapes for this model (RNN)")
    return True


def flex_refusal(ops: list[str]) -> str:
    return (
        f"the model needs TensorFlow ops that TFLite builtins lack ({', '.join(ops)}): they only run as Select TF "
        "ops (Flex), which the standard LiteRT interpreter cannot run, so tfopt cannot verify the result; "
        "pass --no-verify to convert with SELECT_TF_OPS anyway (the app must link the Flex delegate)"
    )


def blocking_ops(text: str) -> list[str]:
    """Op names the converter's error text blames, in first-seen order."""
    seen: dict[str, None] = {}
    for pattern in _OP_NAMES:
        for name in pattern.findall(text):
            seen.setdefault(name, None)
    return list(seen)


def explain(config, text: str) -> str:
    ops = blocking_ops(text)
    first = next((ln.strip() for ln in text.splitlines() if "error:" in ln), " ".join(text.split()))
    first = first.split("error:", 1)[-1].strip()
    blame = f" (ops: {', '.join(ops)})" if ops else ""
    return f"the TFLite converter failed while converting to {config.mode.name}{blame}: {first[:300]}"


def _hint(config, text: str) -> str | None:
    if config.mode.integer and not config.allow_float_fallback:
        return "some ops may have no integer kernel: " + FALLBACK_HINT
    return None


def check_result(tflite: TFLiteModel, model: LoadedModel, config) -> list[str]:
    """Refuse a silently degraded .tflite; return notes about what it holds."""
    notes = []
    inputs = tflite.input_tensors()
    for spec in (s for s in model.inputs if s.is_integer):
        tensor = inputs.get(spec.name)
        if tensor is None:
            continue
        got = tensor.dtype.lower()
        if got in ("int8", "uint8", "int16") and tensor.quantization is not None and any(tensor.quantization.scale):
            raise ConversionError(
                f"input '{spec.name}' holds integer ids ({spec.dtype}) but the converter quantized it to {got}: "
                "refusing a silently broken model; use --io-type float32"
            )
        if config.mode.integer and config.resolved_io_type != "float32":
            notes.append(
                f"input '{spec.name}' stays {got} in the .tflite: integer ids are never quantized "
                f"(the other inputs and outputs use {config.resolved_io_type})"
            )
    found = ids.id_inputs(tflite)
    broken = ids.quantized(tflite, found)
    if broken:
        raise ConversionError(
            f"input '{broken[0]}' carries ids ({found[broken[0]]}) but the converter quantized it: "
            "refusing a silently broken model; use --io-type float32"
        )
    state = tflite.stateful_ops()
    if state:
        notes.append(
            f"the .tflite keeps RNN state between invocations ({summarize_ops(state)}): call "
            "Interpreter.reset_all_variables() before each new sequence (verification does)"
        )
    if config.mode.integer:
        left = [op for op in tflite.float_ops() if not op.is_flex]
        if left and not config.allow_float_fallback:
            raise ConversionError(
                f"strict full-integer {config.mode.name} conversion left {len(left)} op(s) computing in float "
                f"({summarize_ops(left)}): they have no integer kernel",
                FALLBACK_HINT,
            )
        if left:
            notes.append(f"ops left in float (no integer kernel, --allow-float-fallback): {summarize_ops(left)}")
    return notes


def static_converter(model: LoadedModel, tf, fixed: dict[str, tuple[int | None, ...]]):
    """A converter from a concrete function with the given static input shapes."""
    names = [s.name for s in model.inputs]
    specs = [tf.TensorSpec(fixed.get(s.name, s.shape), tf.as_dtype(s.dtype), name=s.name) for s in model.inputs]
    call = named_call(model)
    fn = tf.function(lambda *args: call(dict(zip(names, args))), input_signature=specs)
    return tf.lite.TFLiteConverter.from_concrete_functions([fn.get_concrete_function()], model.trackable)


def named_call(model: LoadedModel) -> Callable[[dict], dict]:
    """The model as ``{input name: tensor} -> {output name: tensor}``."""
    if model.flavour == "saved_model":
        return lambda feeds: dict(model.model(**feeds))
    names, out_names, keras_model = [s.name for s in model.inputs], [o.name for o in model.outputs], model.model

    def call(feeds: dict) -> dict:
        args = [feeds[n] for n in names]
        out = keras_model(args if len(args) > 1 else args[0], training=False)
        return dict(zip(out_names, out if isinstance(out, (list, tuple)) else [out]))

    return call
