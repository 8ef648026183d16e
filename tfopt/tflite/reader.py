"""The one .tflite reader: ops, tensors, quantization, signatures and weight statistics, from the flatbuffer.

Uses the flatbuffer schema that LiteRT ships (pure Python), so nothing is executed and no
delegate rewrites the graph: what you get is what is stored in the file.  Parse a file once and
pass the ``TFLiteModel`` around; the runner (``runner.py``) takes it too.

    model = read(Path("model.int8.tflite").read_bytes())
    [op.name for op in model.ops]                  # ['QUANTIZE', 'CONV_2D', ...]
    model.float_ops()                              # ops that still compute in float
    model.kernels(layer_names)                     # per-kernel sparsity and unique values
"""

from __future__ import annotations

import functools
from collections import Counter
from dataclasses import asdict, dataclass, field

import numpy as np

from .. import _tf
from ..errors import ModelLoadError

FILE_IDENTIFIER = b"TFL3"
NUMPY_DTYPES = {
    "FLOAT32": np.float32, "FLOAT16": np.float16, "FLOAT64": np.float64, "INT8": np.int8, "UINT8": np.uint8,
    "INT16": np.int16, "UINT16": np.uint16, "INT32": np.int32, "UINT32": np.uint32, "INT64": np.int64,
    "UINT64": np.uint64, "BOOL": np.bool_,
}
FLOAT_TYPES = frozenset({"FLOAT32", "FLOAT16", "FLOAT64", "BFLOAT16"})
INTEGER_TYPES = frozenset({"INT8", "UINT8", "INT16", "UINT16", "INT32", "UINT32", "INT64", "UINT64", "BOOL"})
BOUNDARY_OPS = frozenset({"QUANTIZE", "DEQUANTIZE"})  # convert between float and integer: float on one side by design
# Ops that keep state in variable tensors between invocations (fused RNN kernels, resource variables):
# a .tflite holding one must be reset (Interpreter.reset_all_variables) before each new sequence.
STATEFUL_OPS = frozenset({
    "UNIDIRECTIONAL_SEQUENCE_LSTM", "BIDIRECTIONAL_SEQUENCE_LSTM", "UNIDIRECTIONAL_SEQUENCE_RNN",
    "BIDIRECTIONAL_SEQUENCE_RNN", "SVDF", "ASSIGN_VARIABLE",
})
KERNEL_OPS = {"CONV_2D": 1, "DEPTHWISE_CONV_2D": 1, "FULLY_CONNECTED": 1, "TRANSPOSE_CONV": 1, "CONV_3D": 1}
MIN_WEIGHT_ELEMENTS = 2  # constant tensors smaller than this (scalars) are not "weights"


@dataclass(frozen=True)
class Quantization:
    scale: tuple[float, ...]
    zero_point: tuple[int, ...]
    axis: int  # quantized dimension (per-channel when len(scale) > 1)

    @property
    def per_channel(self) -> bool:
        return len(self.scale) > 1

    def to_dict(self) -> dict:
        scale = [float(s) for s in self.scale]
        return {"scale": scale if len(scale) > 1 else scale[0], "zero_point": list(self.zero_point) if
                len(self.zero_point) > 1 else self.zero_point[0], "axis": self.axis, "per_channel": len(scale) > 1}


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
    name: str  # builtin name (CONV_2D) or the custom op's code (FlexMatrixDeterminant)
    custom: bool
    inputs: tuple[int, ...]  # tensor indices (-1 = optional input left out)
    outputs: tuple[int, ...]

    @property
    def is_flex(self) -> bool:
        return self.name.startswith("Flex")


@dataclass(frozen=True)
class WeightStats:
    """One constant tensor's values: zeros are stored values equal to the zero point (0 for weights)."""

    name: str
    shape: tuple[int, ...]
    dtype: str
    sparsity: float  # fraction of exact zeros
    unique_values: int  # distinct stored values
    max_unique_per_channel: int  # distinct stored values in the worst channel (quantized axis)
    layer: str = ""  # the Keras layer it came from (best match), else the tensor name
    op: str = ""  # the op that uses it as its kernel

    def to_dict(self) -> dict:
        d = asdict(self)
        d["shape"], d["sparsity"] = list(self.shape), round(self.sparsity, 6)
        return d


@dataclass
class TFLiteModel:
    """Subgraph 0 of a .tflite (the main graph) plus the file's signatures."""

    raw: bytes = field(repr=False)
    version: int
    description: str
    tensors: list[Tensor]
    ops: list[Op]
    inputs: list[int]
    outputs: list[int]
    signatures: dict[str, dict[str, dict[str, int]]] = field(default_factory=dict)  # key -> inputs/outputs -> idx
    subgraphs: int = 1
    _buffers: list = field(default_factory=list, repr=False)
    _tensor_buffer: list[int] = field(default_factory=list, repr=False)

    @property
    def size(self) -> int:
        return len(self.raw)

    def __getstate__(self) -> dict:  # pickles as bytes (the worker pipe): parsed again on arrival
        return {"raw": self.raw}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(read(state["raw"]).__dict__)

    # ---------------------------------------------------------------- signature

    def signature(self) -> dict[str, dict[str, int]]:
        """The first signature's inputs/outputs (name -> tensor index), else the graph's own."""
        sig = next(iter(self.signatures.values()), None)
        if sig is not None:
            return sig
        return {"inputs": {self.tensors[i].name: i for i in self.inputs},
                "outputs": {self.tensors[i].name: i for i in self.outputs}}

    def io_types(self) -> dict[str, str]:
        """dtype name per signature input and output (``{"image": "int8", "probs": "int8"}``)."""
        sig = self.signature()
        return {name: self.tensors[i].dtype.lower() for part in ("inputs", "outputs") for name, i in sig[part].items()}

    def input_tensors(self) -> dict[str, Tensor]:
        return {name: self.tensors[i] for name, i in self.signature()["inputs"].items()}

    # ---------------------------------------------------------------- ops

    def op_dtypes(self, op: Op) -> list[str]:
        """Dtypes of the tensors an op computes on (constant int32 biases included)."""
        return [self.tensors[i].dtype for i in (*op.inputs, *op.outputs) if i >= 0]

    def computes_in_float(self, op: Op) -> bool:
        """A compute op (not QUANTIZE/DEQUANTIZE) with a float input or output: no integer kernel was used.

        A CAST whose result is an integer computes nothing in float (float-typed ids cast for an Embedding)."""
        if op.name in BOUNDARY_OPS:
            return False
        if op.name == "CAST" and all(self.tensors[i].dtype in INTEGER_TYPES for i in op.outputs if i >= 0):
            return False
        return any(self.tensors[i].dtype in FLOAT_TYPES for i in (*op.inputs, *op.outputs) if i >= 0)

    def float_ops(self) -> list[Op]:
        return [op for op in self.ops if self.computes_in_float(op)]

    def stateful_ops(self) -> list[Op]:
        return [op for op in self.ops if op.name in STATEFUL_OPS]

    @property
    def integer_activations(self) -> bool:
        """Whether activations are quantized integers somewhere (an integer model)."""
        return any(t.dtype in ("INT8", "INT16", "UINT8") and t.quantization and not t.constant for t in self.tensors)

    # ---------------------------------------------------------------- weights

    def tensor_data(self, index: int) -> np.ndarray | None:
        """The stored values of a constant tensor (sparse-encoded: the stored non-zero blocks), or None."""
        t = self.tensors[index]
        if not t.constant or t.dtype not in NUMPY_DTYPES:
            return None
        raw = _buffer_bytes(self._buffers[self._tensor_buffer[index]], self.raw)
        values = np.frombuffer(raw, dtype=NUMPY_DTYPES[t.dtype])
        return values.reshape(t.shape) if not t.sparse and int(np.prod(t.shape)) == values.size else values

    def weight_stats(self, index: int, axis: int | None = None) -> WeightStats | None:
        """Sparsity and unique values of a constant tensor (None for activations and scalars)."""
        values = self.tensor_data(index)
        if values is None or values.size < MIN_WEIGHT_ELEMENTS:
            return None
        t = self.tensors[index]
        if t.sparse:
            return _sparse_stats(t, values)
        zero = _zero_points(t, values)
        q_axis = t.quantization.axis if t.quantization is not None else 0
        return array_stats(t.name, values, zero, q_axis if axis is None else axis)

    def kernels(self, layer_names: list[str] | None = None) -> list[WeightStats]:
        """The weight operand of every CONV/DEPTHWISE/FULLY_CONNECTED op, followed through DEQUANTIZE
        (float16 / int8 storage) and DENSIFY (sparse storage), in op order, each counted once."""
        producer = {o: op for op in self.ops for o in op.outputs}
        out, seen = [], set()
        for op in self.ops:
            pos = KERNEL_OPS.get(op.name)
            if pos is None or len(op.inputs) <= pos:
                continue
            index = op.inputs[pos]
            for via in ("DEQUANTIZE", "DENSIFY"):
                src = producer.get(index)
                if src is not None and src.name == via:
                    index = src.inputs[0]
            if index < 0 or index in seen:
                continue
            seen.add(index)
            stats = self.weight_stats(index, axis=3 if op.name == "DEPTHWISE_CONV_2D" else None)
            if stats is not None:
                out.append(_with(stats, layer=layer_of(stats.name, layer_names), op=op.name))
        return out


def read(data: bytes, source: str = "the model") -> TFLiteModel:
    """Parse ``data``; raise ModelLoadError if it is not a TFLite flatbuffer."""
    if not is_tflite_bytes(data):
        raise ModelLoadError(f"{source} is not a TFLite model: the flatbuffer identifier 'TFL3' is missing")
    schema = _tf.tflite_schema()
    try:
        model = schema.ModelT.InitFromPackedBuf(bytearray(data), 0)
    except Exception as e:  # noqa: BLE001 - flatbuffers raises struct/index errors on corrupt data
        raise ModelLoadError(f"{source} is a corrupt TFLite flatbuffer ({type(e).__name__}: {e})") from e
    if not model.subgraphs:
        raise ModelLoadError(f"{source} has no subgraph: expected a converted model")
    types, builtins = _names(schema.TensorType), _names(schema.BuiltinOperator)
    graph, buffers = model.subgraphs[0], model.buffers or []
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
    return TFLiteModel(data, int(model.version), _text(model.description), tensors, ops, list(_ints(graph.inputs)),
                       list(_ints(graph.outputs)), _signatures(model), len(model.subgraphs), buffers, tensor_buffer)


def is_tflite_bytes(head: bytes) -> bool:
    """The TFLite flatbuffer identifier (bytes 4..8 of the file)."""
    return len(head) >= 8 and head[4:8] == FILE_IDENTIFIER


def summarize_ops(ops: list[Op]) -> str:
    """``SIN ×2, TANH`` — op names in first-seen order with their counts."""
    counts = Counter(op.name for op in ops)
    return ", ".join(name if n == 1 else f"{name} ×{n}" for name, n in counts.items())


def layer_of(tensor_name: str, layer_names: list[str] | None) -> str:
    """The Keras layer a tensor came from: the longest known layer name among its path parts."""
    parts = {p for piece in tensor_name.split(";") for p in piece.split("/")}
    for name in sorted(layer_names or [], key=len, reverse=True):
        if name in parts:
            return name
    return tensor_name.split(";")[0]


def kernel_sparsity(kernels: list[WeightStats]) -> float:
    """Fraction of zeros over all kernels, weighted by their sizes."""
    total = sum(int(np.prod(k.shape)) for k in kernels)
    zeros = sum(k.sparsity * int(np.prod(k.shape)) for k in kernels)
    return round(zeros / total, 4) if total else 0.0


# ------------------------------------------------------------------ helpers


def _with(stats: WeightStats, **changes) -> WeightStats:
    return WeightStats(**{**stats.__dict__, **changes})


def _zero_points(t: Tensor, values: np.ndarray) -> np.ndarray | int:
    q = t.quantization
    if q is None or not any(q.zero_point):
        return 0
    zp = np.asarray(q.zero_point, dtype=np.int64)
    if zp.size == 1 or values.ndim == 0:
        return int(zp[0])
    shape = [1] * values.ndim
    shape[q.axis] = zp.size
    return zp.reshape(shape)


def array_stats(name: str, values: np.ndarray, zero: np.ndarray | int = 0, axis: int = -1) -> WeightStats:
    """Sparsity (values equal to the zero point) and unique values, overall and per channel along ``axis``."""
    flat = values.reshape(-1)
    axis = axis % values.ndim if values.ndim else 0
    channels = np.moveaxis(values, axis, 0).reshape(values.shape[axis], -1) if values.ndim else flat[None]
    return WeightStats(name, tuple(int(s) for s in values.shape), str(values.dtype),
                       float(np.mean(values == zero)) if flat.size else 0.0, int(np.unique(flat).size),
                       int(max(np.unique(c).size for c in channels)) if channels.size else 0)


def _sparse_stats(t: Tensor, stored: np.ndarray) -> WeightStats:
    """Exact sparsity and unique values of a sparse-encoded kernel (per channel: the kernel bound)."""
    size = int(np.prod(t.shape))
    stored = stored.reshape(-1)
    nonzero = int(np.count_nonzero(stored))
    unique = np.unique(stored).size + (1 if size > stored.size and not np.any(stored == 0) else 0)
    return WeightStats(t.name, tuple(t.shape), str(stored.dtype), 1.0 - nonzero / size if size else 0.0,
                       int(unique), int(unique))


@functools.cache
def _enum_names(enum_class) -> dict[int, str]:
    return {v: k for k, v in vars(enum_class).items() if not k.startswith("_") and isinstance(v, int)}


def _names(enum_class) -> dict[int, str]:
    return _enum_names(enum_class)


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
