"""Selective int8: calibrate once, then quantize many times with some Keras layers kept in float.

This is the TFLite quantization debugger's path (tensorflow/lite/tools/optimize/debugging/python/
debugger.py) without the debugger:

1. ``Converter.calibrated``: the converter with a representative dataset and
   ``_experimental_calibrate_only`` returns a *float* flatbuffer carrying the calibrated min/max of
   every tensor (one calibration pass).
2. ``quantize``: the converter's own quantizer (``mlir_quantize``) on it, ~10 ms for small models.
   ``denylisted_nodes`` are the TFLite names of op outputs in the calibrated model (the full fused
   name, e.g. ``model/relu_a/Relu;model/conv_a/Conv2D``); a denylisted op keeps float weights and
   float activations, wrapped in DEQUANTIZE / QUANTIZE.  Without a denylist the result is the
   converter's own int8 model.

The op names carry the Keras layer path; ``LayerNames`` maps them back (an op fusing conv + bn + relu
belongs to its first layer in model order; a Keras 3 export's scopes carry a ``_1`` suffix).

    cal = Calibrated.of(data, LayerNames.of(keras_model))
    full = quantize(cal)                                     # == the converter's int8, int8 io
    mixed = quantize(cal, ["sep_sensitive"], io_type="float32")
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from . import _tf, modes
from .errors import UsageError
from .tflite import TFLiteModel, read

QUANTIZED_TYPES = frozenset({"INT8", "UINT8", "INT16"})
_SUFFIX = re.compile(r"_\d+$")


@dataclass(frozen=True)
class LayerNames:
    """Leaf Keras layer names in model order (nested models expanded) and the model's own name."""

    order: tuple[str, ...]
    model_name: str = ""
    outputs: dict[str, str] = field(default_factory=dict)  # model output name -> the layer producing it

    @classmethod
    def of(cls, model, output_names: list[str] | None = None) -> LayerNames:
        order: list[str] = []
        _collect(model, order)
        producers = [_producer(t) for t in getattr(model, "outputs", None) or []]
        outputs = {n: p for n, p in zip(output_names or [], producers) if p}
        return cls(tuple(dict.fromkeys(order)), getattr(model, "name", "") or "", outputs)

    def layers_in(self, tensor_name: str) -> tuple[str, ...]:
        """Every known layer a (fused) tensor name mentions, in model order."""
        rank = {name: i for i, name in enumerate(self.order)}
        found = set()
        for piece in tensor_name.split(";"):
            suffix = self._suffix(piece)
            for part in piece.split("/"):
                name = _match(part, rank, suffix)
                if name:
                    found.add(name)
        return tuple(sorted(found, key=rank.__getitem__))

    def _suffix(self, piece: str) -> str:
        """The scope suffix of a Keras 3 trace (``_1``), read off the model's own scope."""
        head = piece.split("/")[0]
        if self.model_name and head.startswith(self.model_name):
            rest = head[len(self.model_name):]
            if _SUFFIX.fullmatch(rest):
                return rest
        return ""


def _match(part: str, rank: dict[str, int], suffix: str) -> str | None:
    if suffix and part.endswith(suffix) and part[: -len(suffix)] in rank:
        return part[: -len(suffix)]
    if part in rank:
        return part
    stripped = _SUFFIX.sub("", part)
    return stripped if stripped != part and stripped in rank else None


def _producer(tensor) -> str:
    """The name of the layer that produced a symbolic output (tf_keras KerasHistory.layer, Keras 3 .operation)."""
    history = getattr(tensor, "_keras_history", None)
    return getattr(history[0], "name", "") if history else ""


def _collect(layer, out: list[str]) -> None:
    children = getattr(layer, "layers", None)
    if type(layer).__name__ == "InputLayer":
        return
    if children:
        for child in children:
            _collect(child, out)
        return
    out.append(layer.name)


@dataclass(frozen=True)
class Node:
    """One op of the calibrated model that int8 quantizes."""

    index: int  # op index in the calibrated (float) model
    op: str  # CONV_2D, ...
    name: str  # its output tensor's name: what ``denylisted_nodes`` matches
    layer: str  # the Keras layer it computes (the first its fused name mentions; else the tensor name)


@dataclass
class Calibrated:
    """A calibrated float flatbuffer and its quantizable ops, grouped by Keras layer."""

    data: bytes = field(repr=False)
    nodes: tuple[Node, ...] = ()

    @classmethod
    def of(cls, data: bytes, names: LayerNames) -> Calibrated:
        calibrated = cls(bytes(data))
        calibrated.nodes = quantized_nodes(calibrated, names)
        return calibrated

    @property
    def layers(self) -> dict[str, tuple[Node, ...]]:
        """Keras layer -> its quantized ops, layers in op order."""
        out: dict[str, list[Node]] = {}
        for node in self.nodes:
            out.setdefault(node.layer, []).append(node)
        return {k: tuple(v) for k, v in out.items()}

    def node_names(self, layers: Iterable[str]) -> list[str]:
        table = self.layers
        unknown = [name for name in layers if name not in table]
        if unknown:
            raise UsageError(f"no quantized op belongs to layer(s) {unknown}: expected one of {list(table)}")
        return [n.name for name in layers for n in table[name]]


def quantized_nodes(calibrated: Calibrated, names: LayerNames) -> tuple[Node, ...]:
    """The ops of the calibrated model whose output full int8 holds in an integer type."""
    float_model = read(calibrated.data, "the calibrated model")
    full = read(quantize(calibrated, io_type=modes.FLOAT32.default_io_type), "the int8 model")
    quantized = _quantized_ops(float_model, full)
    written = {i: name for name, i in float_model.signature()["outputs"].items()}  # ops writing a model output
    nodes = []
    for op in float_model.ops:
        if op.index in quantized:
            tensor = float_model.tensors[op.outputs[0]].name
            layers = names.layers_in(tensor) or tuple(
                names.outputs[n] for n in [written.get(op.outputs[0])] if n in names.outputs)
            nodes.append(Node(op.index, op.name, tensor, layers[0] if layers else tensor))
    return tuple(nodes)


def _quantized_ops(float_model: TFLiteModel, full: TFLiteModel) -> set[int]:
    """Calibrated-model ops whose output is an integer tensor in the full int8 model: the quantizer only
    inserts QUANTIZE / DEQUANTIZE, so the other ops align one to one; else match by output name."""
    kept = [op for op in full.ops if op.name not in ("QUANTIZE", "DEQUANTIZE")]
    ops = [op for op in float_model.ops if op.outputs and op.outputs[0] >= 0]
    if [op.name for op in kept] == [op.name for op in ops]:
        return {f.index for f, q in zip(ops, kept) if full.tensors[q.outputs[0]].dtype in QUANTIZED_TYPES}
    names = {t.name for t in full.tensors if t.dtype in QUANTIZED_TYPES and not t.constant}
    return {op.index for op in ops if float_model.tensors[op.outputs[0]].name in names}


def quantize(calibrated: Calibrated, float_layers: Iterable[str] = (), io_type: str = modes.INT8.default_io_type
             ) -> bytes:
    """int8 from the calibrated model, ``float_layers`` kept in float; ``io_type`` types every input and
    output (``ids.with_io_type`` retypes a float-io model keeping id inputs exact)."""
    tf = _tf.tf()
    nodes = sorted(set(calibrated.node_names(list(float_layers))))
    io = getattr(tf, io_type)
    internal = _tf.tflite_convert_internal()
    with _tf.quiet_native():  # the quantizer prints its flags on stdout
        data = internal.mlir_quantize(calibrated.data, disable_per_channel=False, fully_quantize=False,
                                      input_data_type=io, output_data_type=io, denylisted_nodes=nodes or None)
        try:  # share identical constant buffers, as the converter does after quantizing
            return bytes(internal.deduplicate_readonly_buffers(data))
        except Exception:  # noqa: BLE001 - the converter skips it too when flatbuffers is not usable
            return bytes(data)
