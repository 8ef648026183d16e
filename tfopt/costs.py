"""MACs and weights per op of a .tflite, and the share of them that runs / is stored in int8.

MACs per sample (batch 1; a dynamic batch dimension counts as 1), from the flatbuffer alone:

* CONV_2D:            out_h * out_w * out_c * k_h * k_w * in_c          (filter [out_c, k_h, k_w, in_c])
* DEPTHWISE_CONV_2D:  out_h * out_w * out_c * k_h * k_w                  (filter [1, k_h, k_w, out_c])
* FULLY_CONNECTED:    rows * units * in_features                         (filter [units, in_features])
* TRANSPOSE_CONV:     in_h * in_w * in_c * k_h * k_w * out_c             (filter [out_c, k_h, k_w, in_c])
* BATCH_MATMUL:       output elements * inner dimension
* CONV_3D:            output elements * k_d * k_h * k_w * in_c           (filter [k_d, k_h, k_w, in_c, out_c])

Other ops (elementwise, pooling, softmax, ...) count 0 MACs.  An op "computes in int8" when its first
input and its output are 8-bit integer tensors (a hybrid dynamic-range op with float activations does
not).  Weights are the constant inputs (>= 2 elements) of the ops above and of GATHER / EMBEDDING_LOOKUP
tables, followed through DEQUANTIZE (float16 / hybrid storage); "int8 weights" are stored as INT8.

    costs = Costs.of(read(tflite_bytes))
    costs.int8_mac_share, costs.int8_weight_share, costs.by_op[0]
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .tflite import TFLiteModel

WEIGHT_POSITION = {"CONV_2D": 1, "DEPTHWISE_CONV_2D": 1, "FULLY_CONNECTED": 1, "TRANSPOSE_CONV": 1,
                   "CONV_3D": 1, "GATHER": 0, "EMBEDDING_LOOKUP": 1, "BATCH_MATMUL": 1}
DATA_POSITION = {"TRANSPOSE_CONV": 2}  # the activation input (default 0)
INT8_TYPES = frozenset({"INT8", "UINT8"})


@dataclass(frozen=True)
class OpCost:
    index: int
    op: str
    name: str  # output tensor name
    macs: int
    weights: int  # weight elements
    int8: bool  # computes in int8
    int8_weights: bool  # its weights are stored as INT8

    def to_dict(self) -> dict:
        return dict(self.__dict__)


@dataclass(frozen=True)
class Costs:
    by_op: tuple[OpCost, ...]

    @classmethod
    def of(cls, model: TFLiteModel) -> Costs:
        producer = {o: op for op in model.ops for o in op.outputs}
        return cls(tuple(_op_cost(model, op, producer) for op in model.ops if op.name not in ("QUANTIZE", "DEQUANTIZE")))

    @property
    def macs(self) -> int:
        return sum(c.macs for c in self.by_op)

    @property
    def weights(self) -> int:
        return sum(c.weights for c in self.by_op)

    @property
    def int8_mac_share(self) -> float:
        total = self.macs
        return sum(c.macs for c in self.by_op if c.int8) / total if total else 0.0

    @property
    def int8_weight_share(self) -> float:
        total = self.weights
        return sum(c.weights for c in self.by_op if c.int8_weights) / total if total else 0.0

    def to_dict(self) -> dict:
        return {"macs": self.macs, "weights": self.weights, "int8_mac_share": round(self.int8_mac_share, 4),
                "int8_weight_share": round(self.int8_weight_share, 4)}


def _dims(model: TFLiteModel, index: int) -> tuple[int, ...]:
    return tuple(max(int(d), 1) for d in model.tensors[index].shape) if index >= 0 else ()


def _op_cost(model: TFLiteModel, op, producer: dict) -> OpCost:
    out = _dims(model, op.outputs[0]) if op.outputs else ()
    weight_index = _weight_index(model, op, producer)
    w = _dims(model, weight_index) if weight_index is not None else ()
    data = op.inputs[DATA_POSITION.get(op.name, 0)] if op.inputs else -1
    macs = _macs(op.name, out, w, _dims(model, data))
    weights = int(np.prod(w)) if weight_index is not None else 0
    first_in = model.tensors[data].dtype if data >= 0 else ""
    out_type = model.tensors[op.outputs[0]].dtype if op.outputs else ""
    int8 = first_in in INT8_TYPES and out_type in INT8_TYPES
    if op.name in ("GATHER", "EMBEDDING_LOOKUP"):
        int8 = out_type in INT8_TYPES
    int8_weights = weight_index is not None and model.tensors[weight_index].dtype in INT8_TYPES
    name = model.tensors[op.outputs[0]].name if op.outputs else ""
    return OpCost(op.index, op.name, name, macs, weights, int8, int8_weights)


def _weight_index(model: TFLiteModel, op, producer: dict) -> int | None:
    """The op's constant weight operand, followed through DEQUANTIZE / DENSIFY."""
    pos = WEIGHT_POSITION.get(op.name)
    if pos is None or len(op.inputs) <= pos or op.inputs[pos] < 0:
        return None
    index = op.inputs[pos]
    for _ in range(2):
        src = producer.get(index)
        if src is not None and src.name in ("DEQUANTIZE", "DENSIFY"):
            index = src.inputs[0]
    t = model.tensors[index]
    return index if t.constant and int(np.prod([max(d, 1) for d in t.shape] or [1])) >= 2 else None


def _macs(op: str, out: tuple[int, ...], w: tuple[int, ...], inp: tuple[int, ...]) -> int:
    if not out or not w:
        return 0
    size = int(np.prod(out))
    if op == "CONV_2D" and len(w) == 4:
        return size * w[1] * w[2] * w[3]
    if op == "DEPTHWISE_CONV_2D" and len(w) == 4:
        return size * w[1] * w[2]
    if op == "FULLY_CONNECTED" and len(w) == 2:
        return size * w[1]
    if op == "TRANSPOSE_CONV" and len(w) == 4 and inp:
        return int(np.prod(inp)) * w[1] * w[2] * w[0]
    if op == "BATCH_MATMUL" and len(w) >= 2:
        return size * w[-2]
    if op == "CONV_3D" and len(w) == 5:
        return size * w[0] * w[1] * w[2] * w[3]
    return 0
