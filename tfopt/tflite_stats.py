"""What is really in a .tflite: per-kernel sparsity and unique weight values, read with LiteRT.

The numbers describe the exported flatbuffer, not the Keras model (wrappers, masks and
cluster indices are gone by then): a kernel is the weight operand of a CONV_2D,
DEPTHWISE_CONV_2D, TRANSPOSE_CONV or FULLY_CONNECTED op, followed through a DEQUANTIZE
op when the converter stored it in float16 / int8.  Quantized kernels are counted in their
stored integers (zero stays zero: weight zero points are 0), per output channel too,
because per-channel quantization maps one shared float value to a different integer in
every channel.

    stats = kernel_stats(open("model.tflite", "rb").read(), layer_names=["conv1", "dense1"])
    stats[0].layer, stats[0].sparsity, stats[0].unique_values
"""

from __future__ import annotations

import gzip
from dataclasses import asdict, dataclass

import numpy as np

from . import _tf

KERNEL_OPS = {"CONV_2D": 1, "DEPTHWISE_CONV_2D": 1, "FULLY_CONNECTED": 1, "TRANSPOSE_CONV": 1, "CONV_3D": 1}


@dataclass(frozen=True)
class KernelStats:
    """One weight tensor of the flatbuffer."""

    layer: str  # the Keras layer it came from (best match), else the tensor name
    tensor: str
    op: str
    shape: tuple[int, ...]
    dtype: str
    sparsity: float  # fraction of exact zeros
    unique_values: int  # distinct stored values in the whole kernel
    max_unique_per_channel: int  # distinct stored values in the worst output channel

    def to_dict(self) -> dict:
        d = asdict(self)
        d["shape"] = list(self.shape)
        d["sparsity"] = round(self.sparsity, 4)
        return d


def _interpreter(tflite: bytes):
    litert = _tf.litert()
    Interpreter, OpResolverType = litert.Interpreter, litert.OpResolverType
    # no delegates: XNNPACK packs (and may free) constant buffers, which would hide them from get_tensor
    it = Interpreter(model_content=tflite, experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    it.allocate_tensors()
    return it


def kernel_stats(tflite: bytes, layer_names: list[str] | None = None) -> list[KernelStats]:
    """Sparsity and unique values of every kernel in ``tflite`` (order of the ops)."""
    _tf.tf()  # sets the logging environment before LiteRT loads
    it = _interpreter(tflite)
    details = {d["index"]: d for d in it.get_tensor_details()}
    ops = it._get_ops_details()  # noqa: SLF001 - the only public-enough op table LiteRT offers
    producer = {int(o): op for op in ops for o in op["outputs"]}
    out, seen = [], set()
    for op in ops:
        pos = KERNEL_OPS.get(op["op_name"])
        if pos is None or len(op["inputs"]) <= pos:
            continue
        index = int(op["inputs"][pos])
        src = producer.get(index)
        if src is not None and src["op_name"] == "DEQUANTIZE":  # float16 / int8 storage
            index = int(src["inputs"][0])
            src = producer.get(index)
        if src is not None and src["op_name"] == "DENSIFY":  # float sparse storage, densified at run time
            index = int(src["inputs"][0])
        if index < 0 or index in seen:
            continue
        seen.add(index)
        try:
            values = np.asarray(it.get_tensor(index))
        except ValueError:  # not a constant buffer (weights computed at run time)
            continue
        d = details[index]
        if d.get("sparsity_parameters"):  # stored sparse: values holds every non-zero (and zeros inside blocks)
            out.append(_sparse_stats(values, d, op["op_name"], layer_names))
            continue
        axis = d["quantization_parameters"].get("quantized_dimension", 0) if op["op_name"] != "DEPTHWISE_CONV_2D" else 3
        out.append(_stats(values, d["name"], op["op_name"], axis, layer_names))
    return out


def _stats(values: np.ndarray, name: str, op: str, axis: int, layer_names: list[str] | None) -> KernelStats:
    flat = values.reshape(-1)
    axis = axis if values.ndim > axis else 0
    channels = np.moveaxis(values, axis, 0).reshape(values.shape[axis], -1) if values.ndim else flat[None]
    return KernelStats(
        layer=_layer_of(name, layer_names),
        tensor=name,
        op=op,
        shape=tuple(int(s) for s in values.shape),
        dtype=str(values.dtype),
        sparsity=float(np.mean(flat == 0)) if flat.size else 0.0,
        unique_values=int(np.unique(flat).size),
        max_unique_per_channel=int(max(np.unique(c).size for c in channels)) if channels.size else 0,
    )


def _sparse_stats(values: np.ndarray, d: dict, op: str, layer_names: list[str] | None) -> KernelStats:
    """Exact sparsity and unique values of a sparse-encoded kernel (per channel: unknown, the kernel bound)."""
    shape = tuple(int(s) for s in d["shape"])
    size = int(np.prod(shape))
    stored = values.reshape(-1)
    nonzero = int(np.count_nonzero(stored))
    unique = np.unique(stored).size + (1 if size > stored.size and not np.any(stored == 0) else 0)
    return KernelStats(_layer_of(d["name"], layer_names), d["name"], op, shape, str(values.dtype),
                       1.0 - nonzero / size if size else 0.0, int(unique), int(unique))


def _layer_of(tensor_name: str, layer_names: list[str] | None) -> str:
    parts = {p for piece in tensor_name.split(";") for p in piece.split("/")}
    for name in sorted(layer_names or [], key=len, reverse=True):
        if name in parts:
            return name
    return tensor_name.split(";")[0]


def summary(tflite: bytes, layer_names: list[str] | None = None) -> dict:
    """Report-ready: gzip size, overall sparsity and the per-kernel table."""
    kernels = kernel_stats(tflite, layer_names)
    total = sum(int(np.prod(k.shape)) for k in kernels)
    zeros = sum(k.sparsity * int(np.prod(k.shape)) for k in kernels)
    return {
        "bytes": len(tflite),
        "gzip_bytes": len(gzip.compress(tflite, compresslevel=9, mtime=0)),
        "kernel_sparsity": round(zeros / total, 4) if total else 0.0,
        "kernels": [k.to_dict() for k in kernels],
    }
