"""The call graph of a Functional or Sequential Keras model, read from its config (tf_keras and Keras 3).

``read_graph(model)`` walks the model config (layers and their inbound nodes, in either Keras'
serialization) into ``Call`` records in topological order, and takes every tensor's shape from a
fresh rebuild of that config (so node indices are the config's own, never those of other models
the live layers were also called in).  Slimming and MAC counting both work on this graph.

    graph = read_graph(model)
    for call in graph.calls:
        call.layer, call.cls, call.inputs, graph.shape(call.output(0))
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

from . import _tf
from .errors import ModelLoadError

Ref = tuple[str, int, int]  # (layer name, node index, tensor index): one tensor of the graph
_NETWORKS = {"Functional", "Sequential", "Model"}


class GraphError(ModelLoadError):
    """The model is not a graph (Functional / Sequential) model this module can read."""


@dataclass
class Call:
    """One call of a layer: its inbound node ``node`` reading the tensors ``inputs``."""

    layer: str
    cls: str
    node: int
    inputs: list[Ref]
    config: dict
    node_data: Any = None  # the serialized inbound node (its constant arguments, e.g. TFOpLambda's y=3.0)
    module: str = ""  # "keras.src.ops.numpy" etc. for a Keras 3 op (keras.ops.add(x, 3.0)) recorded in the graph
    position: int = 0  # index in the layer's inbound nodes (tf_keras refers to a nested model's first call as 1)

    @property
    def is_op(self) -> bool:
        """A TensorFlow op (tf_keras TFOpLambda) or a Keras 3 op, not a layer."""
        return self.cls == "TFOpLambda" or self.module.startswith("keras.src.ops")

    def output(self, index: int = 0) -> Ref:
        return (self.layer, self.node, index)


@dataclass
class Graph:
    """Calls in topological order, the model's input and output tensors, and every tensor's shape."""

    calls: list[Call]
    inputs: list[Ref]
    outputs: list[Ref]
    shapes: dict[Ref, tuple]
    config: dict  # the model config the graph was read from (deep copy)
    sequential: bool
    flavour: str  # "tf_keras" or "keras3"
    consumers: dict[Ref, list[Call]] = field(default_factory=dict)

    def shape(self, ref: Ref) -> tuple:
        return self.shapes[ref]

    def outputs_of(self, call: Call) -> list[Ref]:
        return sorted((r for r in self.shapes if r[0] == call.layer and r[1] == call.node), key=lambda r: r[2])


def flavour(model) -> str:
    """"tf_keras" or "keras3" (the Keras a model object belongs to)."""
    module = type(model).__module__
    if module.startswith("tf_keras"):
        return "tf_keras"
    if module.startswith("keras"):
        return "keras3"
    what = f"{type(model).__module__}.{type(model).__name__}"
    raise GraphError(f"{getattr(model, 'name', model)!r} is not a Keras model ({what})")


def keras_module(model):
    """The Keras package (tf_keras or keras) that ``model`` belongs to."""
    return _tf.tf_keras() if flavour(model) == "tf_keras" else _tf.keras3()


def is_sequential(model) -> bool:
    return any(c.__name__ == "Sequential" for c in type(model).__mro__)


def read_graph(model, custom_objects: dict | None = None, fresh: bool = False) -> Graph:
    """The call graph of ``model``; a subclassed model (no config graph) raises ``GraphError``.

    ``fresh``: ``model`` was itself just built from its config (its node numbering is the config's),
    so its tensors give the shapes and no rebuild is needed.
    """
    kind = flavour(model)
    try:
        config = copy.deepcopy(model.get_config())
    except NotImplementedError as e:
        raise GraphError(f"model '{model.name}' is subclassed ({type(model).__name__}): no layer graph to read") from e
    if not isinstance(config, dict) or "layers" not in config:
        raise GraphError(f"model '{model.name}' ({type(model).__name__}) is not a Functional or Sequential model")
    sequential = is_sequential(model)
    rebuilt = model if fresh else from_config(model, config, custom_objects)
    if sequential:
        calls, inputs, outputs = _sequential_calls(config, rebuilt)
    else:
        calls, inputs, outputs = _functional_calls(config)
    shapes = _shapes(rebuilt, calls, inputs)
    graph = Graph(_topological(calls), inputs, outputs, shapes, config, sequential, kind)
    for call in graph.calls:
        for ref in call.inputs:
            graph.consumers.setdefault(ref, []).append(call)
    return graph


def from_config(model, config: dict, custom_objects: dict | None = None):
    """Build a new model of ``model``'s class and Keras from ``config`` (Lambda layers trusted)."""
    K = keras_module(model)
    cls = K.Sequential if is_sequential(model) else K.Model
    with K.utils.custom_object_scope(custom_objects or {}), _unsafe_scope(model):
        return cls.from_config(copy.deepcopy(config))  # Keras 3 pops keys from the config it reads


def _unsafe_scope(model):
    return _tf.trusted_deserialization() if flavour(model) == "tf_keras" else _tf.trusted_keras3_deserialization()


# ------------------------------------------------------------------ config → calls


def _functional_calls(config: dict) -> tuple[list[Call], list[Ref], list[Ref]]:
    calls = []
    for entry in config["layers"]:
        cfg = entry["config"]
        name = entry.get("name") or cfg["name"]
        if entry["class_name"] == "InputLayer":
            calls.append(Call(name, "InputLayer", 0, [], cfg))
            continue
        nodes = entry.get("inbound_nodes", [])
        # tf_keras numbers a nested model's calls from 1 (node 0 is its own construction)
        offset = int(entry["class_name"] in _NETWORKS and bool(nodes) and not isinstance(nodes[0], dict))
        for position, node in enumerate(nodes):
            inputs = _node_inputs(node)
            if not inputs:
                raise GraphError(f"cannot read which tensors layer '{name}' ({entry['class_name']}) is called on")
            calls.append(Call(name, entry["class_name"], position + offset, inputs, cfg, node,
                              entry.get("module") or "", position))
    return calls, _refs(config["input_layers"]), _refs(config["output_layers"])


def _refs(items: list) -> list[Ref]:
    if items and isinstance(items[0], str):  # Keras 3 writes one tensor unnested
        items = [items]
    return [(str(n), int(i), int(t)) for n, i, t in items]


def _node_inputs(node: Any) -> list[Ref]:
    """The tensors one serialized inbound node reads, in order (both Keras' formats)."""
    refs: list[Ref] = []

    def walk(x: Any) -> None:
        if isinstance(x, dict) and x.get("class_name") == "__keras_tensor__":  # Keras 3
            n, i, t = x["config"]["keras_history"]
            refs.append((n, int(i), int(t)))
        elif _is_k2_ref(x):  # tf_keras: [name, node, tensor(, kwargs that may hold more tensors)]
            refs.append((x[0], int(x[1]), int(x[2])))
            if len(x) > 3:
                walk(x[3])
        elif isinstance(x, dict):
            for v in x.values():
                walk(v)
        elif isinstance(x, (list, tuple)):
            for v in x:
                walk(v)

    if isinstance(node, dict):  # Keras 3: {"args": [...], "kwargs": {...}}
        walk(node.get("args", []))
        walk(node.get("kwargs", {}))
    else:  # tf_keras: [[name, node, tensor, kwargs], ...], or one [name, node, tensor, kwargs] (TFOpLambda)
        walk(node)
    return refs


def node_constants(node: Any) -> list[Any]:
    """The non-tensor arguments of a serialized node (keyword ``name`` left out)."""
    out: list[Any] = []

    def walk(x: Any, key: str | None = None) -> None:
        if key == "name" or (isinstance(x, dict) and x.get("class_name") == "__keras_tensor__"):
            return
        if _is_k2_ref(x):
            if len(x) > 3:
                walk(x[3])
        elif isinstance(x, dict):
            for k, v in x.items():
                walk(v, k)
        elif isinstance(x, (list, tuple)):
            for v in x:
                walk(v)
        else:
            out.append(x)

    walk(node.get("args", []) if isinstance(node, dict) else node)
    if isinstance(node, dict):
        walk(node.get("kwargs", {}))
    return out


def _is_k2_ref(x: Any) -> bool:
    return (isinstance(x, (list, tuple)) and len(x) in (3, 4) and isinstance(x[0], str)
            and isinstance(x[1], int) and isinstance(x[2], int))


def _sequential_calls(config: dict, rebuilt) -> tuple[list[Call], list[Ref], list[Ref]]:
    entries = config["layers"]
    calls: list[Call] = []
    if entries and entries[0]["class_name"] == "InputLayer":
        head = entries[0]["config"]["name"]
        entries = entries[1:]
    else:
        head = rebuilt.inputs[0].name.split(":")[0]
    calls.append(Call(head, "InputLayer", 0, [], {"name": head}))
    previous: Ref = (head, 0, 0)
    for entry in entries:
        cfg = entry["config"]
        calls.append(Call(cfg["name"], entry["class_name"], 0, [previous], cfg))
        previous = (cfg["name"], 0, 0)
    return calls, [(head, 0, 0)], [previous]


def _topological(calls: list[Call]) -> list[Call]:
    """Calls ordered so that every tensor is produced before it is read (shared layers may be out of order)."""
    produced: set[tuple[str, int]] = set()
    pending, ordered = list(calls), []
    while pending:
        ready = [c for c in pending if all((r[0], r[1]) in produced for r in c.inputs)]
        if not ready:
            names = ", ".join(sorted({c.layer for c in pending}))
            raise GraphError(f"cannot order the model's layers (a cycle or a missing input): {names}")
        for c in ready:
            produced.add((c.layer, c.node))
        ordered += ready
        pending = [c for c in pending if (c.layer, c.node) not in produced]
    return ordered


# ------------------------------------------------------------------ shapes


def _shapes(rebuilt, calls: list[Call], inputs: list[Ref]) -> dict[Ref, tuple]:
    shapes: dict[Ref, tuple] = {}
    for ref, tensor in zip(inputs, rebuilt.inputs):
        shapes[ref] = tuple(tensor.shape)
    by_name = {op.name: op for op in getattr(rebuilt, "operations", rebuilt.layers)}  # Keras 3: layers and ops
    for call in calls:
        if call.cls == "InputLayer":
            continue
        layer = by_name[call.layer]
        node = layer._inbound_nodes[call.position]
        outs = node.output_tensors
        outs = list(outs) if isinstance(outs, (list, tuple)) else [outs]
        for index, tensor in enumerate(_flatten(outs)):
            shapes[(call.layer, call.node, index)] = tuple(tensor.shape)
    return shapes


def _flatten(x: Any) -> list:
    if isinstance(x, (list, tuple)):
        return [t for v in x for t in _flatten(v)]
    if isinstance(x, dict):
        return [t for v in x.values() for t in _flatten(v)]
    return [x]
