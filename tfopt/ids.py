"""Inputs that carry ids (token / character / category ids) stay exact in every integer mode.

An input *carries ids* when it reaches a cast to an integer type, a gather's indices or an embedding
lookup — whatever its own dtype: a float32 input holding character ids that an ``Embedding`` casts to
int32 is one.  It is found in the converted graph (``id_inputs``), which sees through Lambda layers
and the QUANTIZE / DEQUANTIZE the converter puts after a quantized input.

The converter's int8 / uint8 / int16 io (``inference_input_type``) applies to *every* input, so it
quantizes such an input (neighbouring ids collapse).  The fix (``with_io_type``): convert with float32
io, then make only the other inputs (and the outputs) integer with TensorFlow's own
``modify_model_io_type``, which retypes the inputs consumed by a QUANTIZE op and leaves an input that
feeds CAST / GATHER directly in float32 — exact for ids below 2**24.

    found = id_inputs(read(data))                      # {"left": "reaches CAST to int32 (op 2)"}
    data, notes = with_io_type(float_io_bytes, "int8", found)
"""

from __future__ import annotations

from collections.abc import Iterable

from . import _tf
from .tflite import TFLiteModel, read

INTEGER = frozenset({"INT8", "UINT8", "INT16", "UINT16", "INT32", "UINT32", "INT64", "UINT64"})
QUANTIZED_IO = frozenset({"INT8", "UINT8", "INT16"})
PASS_THROUGH = frozenset({"RESHAPE", "SQUEEZE", "EXPAND_DIMS", "STRIDED_SLICE", "SLICE", "TRANSPOSE",
                          "CONCATENATION", "PACK", "UNPACK", "SPLIT", "SPLIT_V", "TILE", "BROADCAST_TO", "PAD",
                          "PADV2", "QUANTIZE", "DEQUANTIZE"})
ID_OPERANDS = {"GATHER": 1, "GATHER_ND": 1, "EMBEDDING_LOOKUP": 0, "ONE_HOT": 0, "HASHTABLE_LOOKUP": 0}


def id_inputs(model: TFLiteModel) -> dict[str, str]:
    """Signature input name -> why it carries ids, from a converted graph."""
    consumers: dict[int, list] = {}
    for op in model.ops:
        for pos, t in enumerate(op.inputs):
            if t >= 0:
                consumers.setdefault(t, []).append((op, pos))
    found = {}
    for name, index in model.signature()["inputs"].items():
        tensor = model.tensors[index]
        if tensor.dtype in INTEGER and not (tensor.quantization and any(tensor.quantization.scale)):
            found[name] = f"integer input ({tensor.dtype.lower()})"
            continue
        reason = _reaches_ids(model, index, consumers)
        if reason:
            found[name] = reason
    return found


def _reaches_ids(model: TFLiteModel, start: int, consumers: dict) -> str | None:
    stack, seen = [start], {start}
    while stack:
        tensor = stack.pop()
        for op, pos in consumers.get(tensor, []):
            if op.name == "CAST" and all(model.tensors[o].dtype in INTEGER for o in op.outputs):
                return f"reaches CAST to {model.tensors[op.outputs[0]].dtype.lower()}"
            if ID_OPERANDS.get(op.name) == pos:
                return f"reaches {op.name} indices"
            if op.name in PASS_THROUGH:
                for out in op.outputs:
                    if out not in seen:
                        seen.add(out)
                        stack.append(out)
    return None


def quantized(model: TFLiteModel, names: Iterable[str]) -> list[str]:
    """The inputs among ``names`` that ``model`` quantized (int8/uint8/int16 with a scale)."""
    inputs = model.input_tensors()
    return [n for n in names if n in inputs and inputs[n].dtype in QUANTIZED_IO
            and inputs[n].quantization is not None and any(inputs[n].quantization.scale)]


def with_io_type(float_io: bytes, io_type: str, keep_float: dict[str, str]) -> tuple[bytes, list[str]]:
    """Make a float-io quantized model's inputs (except ``keep_float``) and its outputs ``io_type``.

    Returns the model and its notes.  An id input that *also* feeds quantized math cannot be split from
    the others: then every input stays float32 (noted)."""
    tf = _tf.tf()
    model = read(float_io, "the float-io conversion")
    fed = _quantize_fed_inputs(model)
    notes = [f"input '{n}' carries ids ({why}): it stays float32 in the .tflite and is never quantized"
             for n, why in sorted(keep_float.items())]
    clash = sorted(set(keep_float) & fed)
    others = fed - set(keep_float)
    input_type = getattr(tf, io_type) if others and not clash else tf.float32
    if clash:
        notes.append(f"input(s) {', '.join(clash)} carry ids and also feed quantized ops: every input stays float32")
    elif others:
        notes.append(f"the other inputs ({', '.join(sorted(others))}) and the outputs use {io_type}")
    else:
        notes.append(f"the outputs use {io_type}")
    with _tf.quiet_native():
        data = bytes(_tf.tflite_util().modify_model_io_type(float_io, input_type, getattr(tf, io_type)))
    return data, notes


def _quantize_fed_inputs(model: TFLiteModel) -> set[str]:
    """Float signature inputs consumed by a QUANTIZE op (what ``modify_model_io_type`` retypes)."""
    fed = {op.inputs[0] for op in model.ops if op.name == "QUANTIZE" and op.inputs}
    return {name for name, i in model.signature()["inputs"].items()
            if i in fed and model.tensors[i].dtype == "FLOAT32"}
