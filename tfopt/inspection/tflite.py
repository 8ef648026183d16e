"""``tfopt inspect`` of a .tflite: ops, weights, signature and the int8 kernel check, from the flatbuffer
(no TensorFlow, no interpreter)."""

from __future__ import annotations

import numpy as np

from ..files import size_of
from ..tflite.reader import TFLiteModel, read
from .result import InspectResult, LayerRow, shape_text, summarize


def inspect_tflite(data: bytes, source: str = "model.tflite") -> InspectResult:
    model = read(data, source)
    stats = {t.index: model.weight_stats(t.index) for t in model.tensors if t.constant}
    dequantized = _dequantized_constants(model, stats)
    rows = [_op_row(model, op, stats, dequantized) for op in model.ops]
    sig = model.signature()
    quantized = model.integer_activations
    float_ops = [f"{op.name} ({_op_label(model, op)})" for op in model.float_ops()] if quantized else None
    notes = []
    if model.subgraphs > 1:
        notes.append(f"{model.subgraphs} subgraphs: only the main graph (subgraph 0) is listed")
    if not quantized:
        notes.append("activations are float: not an integer model, so no int8 kernel check applies")
    elif float_ops:
        notes.append(f"{len(float_ops)} op(s) compute in float inside an integer model (float fallback)")
    tensors = [{**t.to_dict(), **({"sparsity": round(stats[t.index].sparsity, 6),
                                   "unique_values": stats[t.index].unique_values} if stats.get(t.index) else {})}
               for t in model.tensors]
    return InspectResult(
        path=source, kind="tflite", format="tflite", size=size_of(data), inputs=_io(model, sig["inputs"]),
        outputs=_io(model, sig["outputs"]), layers=rows, total_params=sum(r.params for r in rows), tensors=tensors,
        float_ops=float_ops, integer_only=(not float_ops) if quantized else False, notes=notes,
    )


def _op_row(model: TFLiteModel, op, stats: dict, dequantized: dict[int, int]) -> LayerRow:
    """A row per op; weights stored as float16/int8 behind a DEQUANTIZE count for the op that uses them."""
    if op.name == "DEQUANTIZE" and op.inputs and op.inputs[0] in stats:
        weights = []
    else:
        sources = [dequantized.get(i, i) for i in op.inputs if i >= 0]
        weights = [stats[i] for i in sources if stats.get(i) is not None and _is_parameter(model.tensors[i])]
    params = sum(int(np.prod(w.shape)) for w in weights)
    out_shapes = ", ".join(shape_text(model.tensors[i].shape) for i in op.outputs if i >= 0)
    dtypes = "/".join(dict.fromkeys(d.lower() for d in model.op_dtypes(op)))
    sparsity, unique = summarize(weights)
    return LayerRow(_op_label(model, op), op.name, params, out_shapes, dtypes, sparsity, unique, weights)


def _is_parameter(t) -> bool:
    """Weights and biases (float or quantized), not shape/axis constants."""
    return t.dtype in ("FLOAT32", "FLOAT16", "BFLOAT16") or t.quantization is not None


def _dequantized_constants(model: TFLiteModel, stats: dict) -> dict[int, int]:
    """Output tensor of a DEQUANTIZE of a constant -> that constant."""
    return {op.outputs[0]: op.inputs[0] for op in model.ops
            if op.name == "DEQUANTIZE" and op.inputs and op.inputs[0] in stats and op.outputs}


def _op_label(model: TFLiteModel, op) -> str:
    """A readable name for an op: the layer path of its first output tensor (``model/conv1``)."""
    if not op.outputs or op.outputs[0] < 0:
        return f"op{op.index}"
    first = model.tensors[op.outputs[0]].name.split(";")[0]
    parts = first.split("/")
    name = "/".join(parts[:-1]) if len(parts) > 2 else first
    return name if len(name) <= 60 else name[:57] + "..."


def _io(model: TFLiteModel, mapping: dict[str, int]) -> list[dict]:
    out = []
    for name, index in mapping.items():
        t = model.tensors[index]
        out.append({"name": name, "shape": list(t.shape), "dtype": t.dtype.lower(),
                    "quantization": t.quantization.to_dict() if t.quantization else None})
    return out
