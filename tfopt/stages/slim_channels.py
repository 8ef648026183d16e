"""Which channels slimming keeps: channel ids per tensor, coupled groups, importance and the keep decision.

Every tensor's last axis is a vector of integer channel ids.  A union-find over ids joins the physical
channels that must be kept or removed together (a residual Add joins its branches position by position);
a union-find over groups joins the channels ranked together.  Rules per layer kind:

* producers (Conv1D/2D/3D, SeparableConv1D/2D, Dense) read their input ids (kernel rows) and make a new group;
* DepthwiseConv (multiplier 1), BatchNormalization (last axis), PReLU keep their input's ids (per-channel
  weights sliced); activations, pooling, global pooling, dropout, padding, cropping, upsampling pass them on;
* Add/Subtract/Multiply/Average/Maximum/Minimum and element-wise ops with scalar constants join their
  inputs' ids; Concatenate (last axis) puts them side by side; Flatten / a 1-D Reshape tiles them once per
  spatial position (channels_last flattening is position-major); a Reshape keeping the last axis passes them;
* anything else (Lambda, LayerNormalization, attention, nested models, ...) freezes what it reads, and so
  do the model's inputs and outputs: a frozen group is kept whole and its producers are listed with why.

Importance per producer: |gamma| of the BatchNormalization that is its only reader, else the L1 norm of its
kernel per output channel; each source's scores are divided by their mean and summed per channel.
"""

from __future__ import annotations

import math

import numpy as np

from ..kgraph import Call, Graph, Ref, node_constants
from ..report import LayerChannels, LeftAlone, SlimSection

PRODUCERS = {"Conv1D": "filters", "Conv2D": "filters", "Conv3D": "filters", "Dense": "units",
             "SeparableConv1D": "filters", "SeparableConv2D": "filters"}
CHANNELWISE = {"BatchNormalization", "DepthwiseConv1D", "DepthwiseConv2D", "PReLU"}
_POOLS = [f"{kind}Pooling{d}D" for kind in ("Max", "Average") for d in (1, 2, 3)]
_GLOBAL = [f"Global{kind}Pooling{d}D" for kind in ("Max", "Average") for d in (1, 2, 3)]
_SPATIAL = [f"{kind}{d}D" for kind in ("ZeroPadding", "Cropping", "UpSampling") for d in (1, 2, 3)]
PASSTHROUGH = {
    "Activation", "ReLU", "LeakyReLU", "ELU", "ThresholdedReLU", "Dropout", "SpatialDropout1D",
    "SpatialDropout2D", "SpatialDropout3D", "GaussianNoise", "GaussianDropout", "AlphaDropout",
    "ActivityRegularization", "Identity", "RepeatVector", "Rescaling", *_POOLS, *_GLOBAL, *_SPATIAL,
}
MERGES = {"Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum"}
# tf_keras TFOpLambda ops (x + 3.0, tf.nn.relu6(x), a * b, ...) that act element by element
ELEMENTWISE_OPS = {
    "__operators__.add", "__operators__.sub", "math.add", "math.subtract", "math.multiply", "math.truediv",
    "math.divide", "math.maximum", "math.minimum", "math.negative", "math.abs", "math.square", "math.sqrt",
    "math.exp", "math.sigmoid", "math.tanh", "nn.relu", "nn.relu6", "nn.silu", "nn.swish", "nn.elu", "nn.gelu",
    "nn.leaky_relu", "nn.sigmoid", "clip_by_value",
    # Keras 3 ops (keras.ops.add(x, 3.0), ...): their class names
    "Add", "Subtract", "Multiply", "Divide", "TrueDivide", "Maximum", "Minimum", "Negative", "Absolute", "Abs",
    "Square", "Sqrt", "Exp", "Relu", "Relu6", "Sigmoid", "HardSigmoid", "Silu", "HardSilu", "Tanh", "Elu", "Gelu",
    "LeakyRelu", "Clip",
}
_ACROSS_CHANNELS = {"softmax", "log_softmax"}



class Channels:
    """Union-find over channel ids (physical channels) and over groups (the ranking units)."""

    def __init__(self) -> None:
        self.parent: list[int] = []
        self.group: list[int] = []
        self.group_parent: list[int] = []
        self.owners: dict[int, list[str]] = {}
        self.reasons: dict[int, list[str]] = {}

    def new(self, n: int, owner: str | None = None, frozen: str | None = None) -> np.ndarray:
        g = len(self.group_parent)
        self.group_parent.append(g)
        self.owners[g] = [owner] if owner else []
        start = len(self.parent)
        self.parent.extend(range(start, start + n))
        self.group.extend([g] * n)
        ids = np.arange(start, start + n)
        if frozen:
            self.freeze(ids, frozen)
        return ids

    def find(self, i: int) -> int:
        parent = self.parent
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    def find_group(self, g: int) -> int:
        parent = self.group_parent
        while parent[g] != g:
            parent[g] = parent[parent[g]]
            g = parent[g]
        return g

    def union(self, a: np.ndarray, b: np.ndarray) -> None:
        for x, y in zip(a.tolist(), b.tolist()):
            rx, ry = self.find(x), self.find(y)
            if rx != ry:
                self.parent[rx] = ry
            gx, gy = self.find_group(self.group[x]), self.find_group(self.group[y])
            if gx != gy:
                self.group_parent[gx] = gy

    def freeze(self, ids: np.ndarray, reason: str) -> None:
        for g in sorted({self.group[i] for i in ids.tolist()}):
            self.reasons.setdefault(g, []).append(reason)

    def roots(self) -> np.ndarray:
        return np.array([self.find(i) for i in range(len(self.parent))], dtype=np.int64)


class Walk:
    """Assigns channel ids to every tensor of the graph, call by call."""

    def __init__(self, graph: Graph) -> None:
        self.graph = graph
        self.ch = Channels()
        self.ids: dict[Ref, np.ndarray] = {}
        self.layer_in: dict[str, np.ndarray] = {}
        self.layer_out: dict[str, np.ndarray] = {}
        self.depthwise: set[str] = set()
        self.unsupported: dict[str, tuple[str, str]] = {}
        self.outputs_of: dict[tuple[str, int], list[Ref]] = {}
        self.classes = {c.layer: c.cls for c in graph.calls}
        for ref in graph.shapes:
            self.outputs_of.setdefault(ref[:2], []).append(ref)

    def run(self) -> None:
        for call in self.graph.calls:
            if call.cls == "InputLayer":
                ref = call.output(0)
                self.ids[ref] = self.ch.new(_width(self.graph.shape(ref)), frozen=f"model input '{call.layer}'")
                continue
            reason = unsupported_reason(call, self.graph)
            if reason is None:
                reason = self._visit(call)
            if reason is not None:
                self._freeze_call(call, reason)
        for ref in self.graph.outputs:
            self.ch.freeze(self.ids[ref], f"model output '{ref[0]}'")

    def _visit(self, call: Call) -> str | None:
        """Assign the call's output ids; a reason string when it turns out not to be supported."""
        xs = [self.ids[r] for r in call.inputs]
        out = call.output(0)
        if call.is_op or call.cls in MERGES:  # element-wise: inputs keep the same channels
            wide = [x for x in xs if len(x) > 1] or xs[:1]  # a width-1 input broadcasts over the channels
            if len({len(x) for x in wide}) != 1:
                return f"inputs of different widths {[len(x) for x in xs]}"
            for x in wide[1:]:
                self.ch.union(wide[0], x)
            self.ids[out] = wide[0]
        elif call.cls in PRODUCERS:
            self._read(call.layer, xs[0])
            if call.layer not in self.layer_out:
                self.layer_out[call.layer] = self.ch.new(_width(self.graph.shape(out)), owner=call.layer)
            self.ids[out] = self.layer_out[call.layer]
            if str(call.config.get("activation")) in _ACROSS_CHANNELS:
                self.ch.freeze(self.ids[out], f"'{call.layer}' applies softmax across its channels")
        elif call.cls in CHANNELWISE:
            self._read(call.layer, xs[0])
            if call.cls.startswith("Depthwise"):
                self.depthwise.add(call.layer)
            self.ids[out] = xs[0]
        elif call.cls == "Concatenate":
            self.ids[out] = np.concatenate(xs)
        elif call.cls == "Flatten":
            self.ids[out] = np.tile(xs[0], _positions(self.graph.shape(call.inputs[0])))
        elif call.cls == "Reshape" and len(call.config["target_shape"]) == 1:  # a flatten: its size is edited
            self._read(call.layer, xs[0])
            self.ids[out] = np.tile(xs[0], _positions(self.graph.shape(call.inputs[0])))
        elif call.cls == "Reshape":
            self._read(call.layer, xs[0])
            self.ids[out] = xs[0]
        else:  # PASSTHROUGH
            self.ids[out] = xs[0]
        return None

    def _read(self, layer: str, x: np.ndarray) -> None:
        """A layer with per-channel weights reads ``x``; a shared layer reads the same channels at every call."""
        if layer in self.layer_in:
            self.ch.union(self.layer_in[layer], x)
        else:
            self.layer_in[layer] = x

    def _freeze_call(self, call: Call, reason: str) -> None:
        self.unsupported.setdefault(call.layer, (call.cls, reason))
        for ref in call.inputs:
            self.ch.freeze(self.ids[ref], f"read by '{call.layer}' ({call.cls}: {reason})")
        for ref in self.outputs_of.get((call.layer, call.node), []):
            self.ids[ref] = self.ch.new(_width(self.graph.shape(ref)), frozen=f"made by '{call.layer}' ({call.cls})")


def unsupported_reason(call: Call, graph: Graph) -> str | None:
    """None when slimming can see through ``call``, else why not."""
    cfg, cls = call.config, call.cls
    known = PRODUCERS.keys() | CHANNELWISE | PASSTHROUGH | MERGES | {"Concatenate", "Flatten", "Reshape"}
    if call.is_op:
        return _op_reason(call)
    if cls in ("Functional", "Sequential", "Model"):
        return "a nested model: its layers stay as they are (build the model flat to slim them)"
    if cls not in known:
        return "no channel rule for this layer"
    if cfg.get("data_format") == "channels_first":
        return "channels_first data format"
    if not call.inputs or (cls not in MERGES and cls != "Concatenate" and len(call.inputs) != 1):
        return f"{len(call.inputs)} input tensors"
    shape = graph.shape(call.inputs[0])
    rank = len(shape)
    if rank < 2 or shape[-1] is None:
        return f"input shape {shape}: no static channel axis"
    if cls in PRODUCERS and cfg.get("groups", 1) != 1:
        return f"grouped convolution (groups={cfg['groups']})"
    if cls.startswith("Depthwise") and cfg.get("depth_multiplier", 1) != 1:
        return f"depth_multiplier={cfg['depth_multiplier']}"
    if cls == "BatchNormalization" and _axes(cfg.get("axis", -1), rank) != [rank - 1]:
        return f"normalizes axis {cfg.get('axis')}, not the channel axis"
    if cls == "Concatenate" and _axes(cfg.get("axis", -1), rank) != [rank - 1]:
        return f"concatenates on axis {cfg.get('axis')}, not the channel axis"
    if cls == "Activation" and str(cfg.get("activation")) in _ACROSS_CHANNELS:
        return f"{cfg.get('activation')} across channels"
    if cls == "Rescaling" and not all(isinstance(cfg.get(k, 0.0), (int, float)) for k in ("scale", "offset")):
        return "per-channel scale/offset"
    return _reshape_reason(call, graph) if cls in ("Flatten", "Reshape") else None


def _op_reason(call: Call) -> str | None:
    """TFOpLambda: element-wise ops on tensors and scalar constants only."""
    tf_op = call.cls == "TFOpLambda"
    function = call.config.get("function") if tf_op else call.cls
    what = f"{'TensorFlow' if tf_op else 'Keras'} op {function}"
    if function not in ELEMENTWISE_OPS:
        return f"{what}: no channel rule"
    constants = [c for c in node_constants(call.node_data) if c is not None]
    if not all(isinstance(c, (int, float)) and not isinstance(c, bool) for c in constants):
        return f"{what} with non-scalar arguments"
    return None


def _reshape_reason(call: Call, graph: Graph) -> str | None:
    shape = graph.shape(call.inputs[0])
    if call.cls == "Flatten" or len(call.config["target_shape"]) == 1:
        return None if all(d is not None for d in shape[1:]) else f"input shape {shape} is not static"
    target = list(call.config["target_shape"])
    if target[-1] != shape[-1]:
        return f"reshape {shape[1:]} -> {tuple(target)} moves the channel axis"
    return None


def _axes(axis, rank: int) -> list[int]:
    axes = axis if isinstance(axis, (list, tuple)) else [axis]
    return sorted(a % rank for a in axes)


def _width(shape: tuple) -> int:
    return int(shape[-1]) if len(shape) >= 2 and shape[-1] is not None else 1


def _positions(shape: tuple) -> int:
    return int(np.prod([int(d) for d in shape[1:-1]], dtype=np.int64)) if len(shape) > 2 else 1


def importance(model, graph: Graph, walk: Walk, how: str) -> np.ndarray:
    """A score per channel id: the sum over the layers making / filtering it of their normalized scores."""
    scores = np.zeros(len(walk.ch.parent))
    sources = [(name, ids) for name, ids in walk.layer_out.items()]
    sources += [(name, walk.layer_in[name]) for name in sorted(walk.depthwise)]
    for name, ids in sources:
        weights = model.get_layer(name).get_weights()
        v = _bn_scale(model, graph, name) if how == "auto" else None
        if v is None:
            kernel = weights[1] if type(model.get_layer(name)).__name__.startswith("Separable") else weights[0]
            axis = -2 if name in walk.depthwise else -1
            v = np.abs(np.moveaxis(kernel, axis, -1)).reshape(-1, kernel.shape[axis]).sum(axis=0)
        scores[ids] += v / (v.mean() + 1e-12)
    return scores


def _bn_scale(model, graph: Graph, name: str) -> np.ndarray | None:
    """|gamma| of the BatchNormalization that is the only reader of layer ``name``'s output."""
    readers = graph.consumers.get((name, 0, 0), [])
    if len(readers) != 1 or readers[0].cls != "BatchNormalization" or not readers[0].config.get("scale", True):
        return None
    return np.abs(model.get_layer(readers[0].layer).get_weights()[0])


def _keep_count(n: int, ratio: float, round_to: int) -> int:
    k = max(1, int(round(n * (1.0 - ratio))))
    return min(n, int(math.ceil(k / round_to)) * round_to)


def decide(walk: Walk, scores: np.ndarray, ratio: float, per_layer: dict[str, float], round_to: int,
            report: SlimSection) -> np.ndarray:
    """Keep mask per channel id: every unfrozen group keeps its most important channels."""
    ch = walk.ch
    roots = ch.roots()
    group_of = np.array([ch.find_group(g) for g in ch.group], dtype=np.int64)
    owners: dict[int, list[str]] = {}
    reasons: dict[int, list[str]] = {}
    for g in range(len(ch.group_parent)):
        root = ch.find_group(g)
        owners.setdefault(root, []).extend(ch.owners[g])
        reasons.setdefault(root, []).extend(ch.reasons.get(g, []))
    component_score = np.bincount(roots, weights=scores, minlength=len(roots))
    keep_root = np.ones(len(roots), dtype=bool)
    for group, members in owners.items():
        if reasons[group]:
            for name in members:
                report.left_alone.append(LeftAlone(name, walk.classes[name], _summary(reasons[group])))
            continue
        components = list(dict.fromkeys(roots[group_of == group].tolist()))
        r = min((per_layer[n] for n in members if n in per_layer), default=ratio)
        k = _keep_count(len(components), r, round_to)
        order = sorted(range(len(components)), key=lambda i: (-component_score[components[i]], i))
        for i in order[k:]:
            keep_root[components[i]] = False
        report.slimmed_groups += int(k < len(components))
    report.groups = sum(1 for members in owners.values() if members)
    return keep_root[roots]


def _summary(reasons: list[str]) -> str:
    unique = list(dict.fromkeys(reasons))
    return "; ".join(unique[:3]) + (f"; and {len(unique) - 3} more" if len(unique) > 3 else "")


def channel_table(graph: Graph, walk: Walk, keep: np.ndarray) -> list[LayerChannels]:
    classes = {c.layer: c.cls for c in graph.calls}
    rows = []
    for name in dict.fromkeys(c.layer for c in graph.calls):
        ids = walk.layer_out.get(name)
        if ids is None and classes[name] in CHANNELWISE:
            ids = walk.layer_in.get(name)
        if ids is not None:
            rows.append(LayerChannels(name, classes[name], len(ids), int(keep[ids].sum())))
    return rows
