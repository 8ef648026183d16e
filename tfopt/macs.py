"""Multiply-accumulate count of a Keras model, per layer, for one sample (batch 1).

Counts the layers that dominate inference: Conv1D/2D/3D (grouped too), Conv*Transpose,
DepthwiseConv1D/2D, SeparableConv1D/2D and Dense (on any rank: once per leading position).
Element-wise layers (BatchNormalization folds into the convolution in TFLite, activations,
pooling, adds) are not counted.

    count_macs(read_graph(model))  # {"conv1": 97344, ...}
    total_macs(model)
"""

from __future__ import annotations

import numpy as np

from .kgraph import Graph, read_graph


def total_macs(model, custom_objects: dict | None = None) -> int:
    return sum(count_macs(read_graph(model, custom_objects)).values())


def count_macs(graph: Graph) -> dict[str, int]:
    """Layer name -> MACs summed over its calls (layers with none are left out)."""
    out: dict[str, int] = {}
    for call in graph.calls:
        if call.cls == "InputLayer" or not call.inputs:
            continue
        macs = layer_macs(call.cls, call.config, graph.shape(call.inputs[0]), graph.shape(call.output(0)))
        if macs:
            out[call.layer] = out.get(call.layer, 0) + macs
    return out


def layer_macs(cls: str, cfg: dict, in_shape: tuple, out_shape: tuple) -> int:
    """MACs of one call of a layer of class ``cls`` from its config and its input/output shapes."""
    if any(d is None for d in tuple(in_shape[1:]) + tuple(out_shape[1:])):
        return 0
    first = cfg.get("data_format") == "channels_first"
    c_in = int(in_shape[1] if first else in_shape[-1])
    c_out = int(out_shape[1] if first else out_shape[-1])
    out_positions = _prod(out_shape[2:] if first else out_shape[1:-1])
    in_positions = _prod(in_shape[2:] if first else in_shape[1:-1])
    kernel = _prod(cfg.get("kernel_size", (1,)))
    if cls == "Dense":
        return _prod(in_shape[1:-1]) * c_in * c_out
    if cls.startswith("Depthwise"):
        return out_positions * kernel * c_out  # c_out = c_in * depth_multiplier
    if cls.startswith("Separable"):
        mid = c_in * int(cfg.get("depth_multiplier", 1))
        return out_positions * (kernel * mid + mid * c_out)
    if cls.startswith("Conv") and cls.endswith("Transpose"):
        return in_positions * kernel * c_in * c_out // int(cfg.get("groups", 1) or 1)
    if cls in ("Conv1D", "Conv2D", "Conv3D"):
        return out_positions * kernel * c_in * c_out // int(cfg.get("groups", 1) or 1)
    return 0


def _prod(dims) -> int:
    return int(np.prod([int(d) for d in dims], dtype=np.int64)) if len(dims) else 1
