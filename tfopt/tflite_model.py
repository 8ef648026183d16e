"""Read a .tflite flatbuffer without TensorFlow: ops, tensors, quantization, signatures.

Uses the flatbuffer schema that LiteRT ships (pure Python), so nothing is executed and no
delegate rewrites the graph: what you get is what is stored in the file.

    model = read_tflite(Path("model.int8.tflite").read_bytes())
    [op.name for op in model.ops]                  # ['QUANTIZE', 'CONV_2D', ...]
    model.tensors[3].dtype, model.tensors[3].quantization.scale
    model.float_ops()                              # ops that still compute in float
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from . import _tf
from .errors import ModelLoadError

FILE_IDENTIFIER = b"TFL3"
NUMPY_DTYPES = {
    "FLOAT32": np.float32, "FLOAT16": np.float16, "FLOAT64": np.float64, "INT8": np.int8, "UINT8": np.uint8,
    "INT16": np.int16, "UINT16": np.uint16, "INT32": np.int32, "UINT32": np.uint32, "INT64": np.int64,
    "UINT64": np.uint64, "BOOL": np.bool_,
}
FLOAT_TYPES = {"FLOAT32", "FLOAT16", "FLOAT64", "BFLOAT16"}
BOUNDARY_OPS = {"QUANTIZE", "DEQUANTIZE"}  # convert between float and integer: float on one side by design


@dataclass(frozen=True)
class Quantization:
    scale: tuple[float, ...]
    zero_point: tuple[int, ...]
    axis: int  # quantized dimension (per-channel when len(scale) > 1)

    def to_dict(self) -> dict:
        scale = [float(s) for s in self.scale]
        return {"scale": scale if len(scale) > 1 else scale[0], "zero_point": list(self.zero_point) if
                len(self.zero_point) > 1 else self.zero_point[0], "axis": self.axis,
                "per_channel": len(scale) > 1}


@dataclass(frozen=True)
class Tensor:
    index: int
    name: str
    shape: tuple[int, ...]  # -1 = dynamic (from shape_signature)
    dtype: str  # schema name: FLOAT32, INT8, ...
    quantization: Quantization | None
    constant: bool  # has a data buffer (weights, biases, constants)
    nbytes: int  # bytes of the stored buffer (0 for activations)
    sparse: bool  # stored with TFLite sparsity encoding

    def to_dict(self) -> dict:
        return {"index": self.index, "name": self.name, "shape": list(self.shape), "dtype": self.dtype.lower(),
                "quantization": self.quantization.to_dict() if self.quantization else None,
                "constant": self.constant, "bytes": self.nbytes, "sparse": self.sparse}


@dataclass(frozen=True)
class Op:
    index: int
    name: str  # builtin name (CONV_2D) or the custom op's code
    custom: bool
    inputs: tuple[int, ...]  # tensor indices (-1 = optional input left out)
    outputs: tuple[int, ...]


@dataclass
class TFLiteModel:
    """Subgraph 0 of a .tflite (the main graph) plus the file's signatures."""

    size: int
    version: int
    description: str
    tensors: list[Tensor]
    ops: list[Op]
    inputs: list[int]
    outputs: list[int]
    signatures: dict[str, dict[str, dict[str, int]]] = field(default_factory=dict)  # key -> inputs/outputs -> idx
    subgraphs: int = 1
    _buffers: list = field(default_factory=list, repr=False)
    _raw: bytes = field(default=b"", repr=False)
    _tensor_buffer: list[int] = field(default_factory=list, repr=False)

    def tensor_data(self, index: int) -> np.ndarray | None:
        """The stored values of a constant tensor, or None (activations, unknown dtypes)."""
        t = self.tensors[index]
        if not t.constant or t.dtype not in NUMPY_DTYPES or t.sparse:
            return None
        raw = _buffer_bytes(self._buffers[self._tensor_buffer[index]], self._raw)
        values = np.frombuffer(raw, dtype=NUMPY_DTYPES[t.dtype])
        return values.reshape(t.shape) if int(np.prod(t.shape)) == values.size else values

    def op_dtypes(self, op: Op) -> list[str]:
        """Dtypes of the tensors an op computes on (constant int32 biases included)."""
        return [self.tensors[i].dtype for i in (*op.inputs, *op.outputs) if i >= 0]

    def float_ops(self) -> list[Op]:
        """Ops (other than QUANTIZE/DEQUANTIZE) with a float input or output: no integer kernel was used."""
        out = []
        for op in self.ops:
            if op.name in BOUNDARY_OPS:
                continue
            if any(self.tensors[i].dtype in FLOAT_TYPES for i in (*op.inputs, *op.outputs) if i >= 0):
                out.append(op)
        return out


def read_tflite(data: bytes, source: str = "the model") -> TFLiteModel:
    """Parse ``data``; raise ModelLoadError if it is not a TFLite flatbuffer."""
    if len(data) < 8 or data[4:8] != FILE_IDENTIFIER:
        raise ModelLoadError(f"{source} is not a TFLite model: the flatbuffer identifier 'TFL3' is missing")
    schema = _tf.tflite_schema()
    try:
        model = schema.ModelT.InitFromPackedBuf(bytearray(data), 0)
    except Exception as e:  # noqa: BLE001 - flatbuffers raises struct/index errors on corrupt data
        raise ModelLoadError(f"{source} is a corrupt TFLite flatbuffer ({type(e).__name__}: {e})") from e
    if not model.subgraphs:
        raise ModelLoadError(f"{source} has no subgraph: expected a converted model")
    types = _names(schema.TensorType)
    builtins = _names(schema.BuiltinOperator)
    graph = model.subgraphs[0]
    buffers = model.buffers or []
    tensors, tensor_buffer = [], []
    for i, t in enumerate(graph.tensors or []):
        buf = buffers[t.buffer] if 0 < t.buffer < len(buffers) else None
        nbytes = len(_buffer_bytes(buf, data)) if buf is not None else 0
        shape = t.shapeSignature if t.shapeSignature is not None and len(t.shapeSignature) else t.shape
        tensors.append(Tensor(i, _text(t.name), tuple(int(s) for s in (shape if shape is not None else ())),
                              types.get(t.type, str(t.type)), _quant(t.quantization), nbytes > 0, nbytes,
                              t.sparsity is not None))
        tensor_buffer.append(t.buffer)
    ops = []
    for i, o in enumerate(graph.operators or []):
        code = model.operatorCodes[o.opcodeIndex]
        builtin = max(code.builtinCode, code.deprecatedBuiltinCode)
        custom = builtins.get(builtin) == "CUSTOM"
        name = _text(code.customCode) if custom else builtins.get(builtin, f"BUILTIN_{builtin}")
        ops.append(Op(i, name, custom, _ints(o.inputs), _ints(o.outputs)))
    return TFLiteModel(len(data), int(model.version), _text(model.description), tensors, ops,
                         list(_ints(graph.inputs)), list(_ints(graph.outputs)), _signatures(model),
                         len(model.subgraphs), buffers, data, tensor_buffer)


def _names(enum_class) -> dict[int, str]:
    return {v: k for k, v in vars(enum_class).items() if not k.startswith("_") and isinstance(v, int)}


def _text(value) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else (value or "")


def _ints(values) -> tuple[int, ...]:
    return tuple(int(v) for v in values) if values is not None else ()


def _quant(q) -> Quantization | None:
    if q is None or q.scale is None or len(q.scale) == 0:
        return None
    zero = q.zeroPoint if q.zeroPoint is not None else [0] * len(q.scale)
    return Quantization(tuple(float(s) for s in q.scale), tuple(int(z) for z in zero), int(q.quantizedDimension))


def _buffer_bytes(buf, raw: bytes) -> bytes:
    if buf is None:
        return b""
    if buf.data is not None and len(buf.data):
        return bytes(np.asarray(buf.data, dtype=np.uint8))
    if getattr(buf, "offset", 0) > 1 and getattr(buf, "size", 0):  # buffers stored after the flatbuffer (>2 GB)
        return raw[buf.offset : buf.offset + buf.size]
    return b""


def _signatures(model) -> dict[str, dict[str, dict[str, int]]]:
    out = {}
    for s in model.signatureDefs or []:
        if s.subgraphIndex != 0:
            continue
        out[_text(s.signatureKey)] = {
            "inputs": {_text(m.name): int(m.tensorIndex) for m in s.inputs or []},
            "outputs": {_text(m.name): int(m.tensorIndex) for m in s.outputs or []},
        }
    return out
