"""Prepare a tf_keras model for TF-MOT's QAT: rewrite what TF-MOT cannot wrap but could quantize.

TF-MOT cannot annotate or wrap ``TFOpLambda`` layers (the layers tf_keras makes for ``x + 3.0``,
``tf.nn.relu6(x)``, ``h * (1 / 6)`` in functional models, e.g. MobileNetV3's hard-swish): the
wrapper loses TFOpLambda's "preserve input structure" node format, and cloning calls the op with
a list ("'list' object has no attribute 'dtype'", tensorflow/model-optimization#867, #1145).

``prepare(model)`` rebuilds the model with each TFOpLambda that takes one tensor
(other arguments constants) replaced by ``TfoptOpLayer`` — the same TF op, the same layer name,
the constant arguments in its config — which TF-MOT wraps like any layer.  TFOpLambdas with
several tensor inputs (``tf.concat([a, b])``, ``tf.math.multiply(a, b)``) stay as they are (they
are reported as refused; use Concatenate / Multiply layers).

It also splits the activation off a SeparableConv whose activation TF-MOT's SeparableConv split
cannot carry (relu6 ...): TF-MOT would put it on the Conv2D it creates, whose name is not in the
model, so the refusal could not even be skipped.
"""

from __future__ import annotations

import functools
from typing import Any

from .. import _tf

LAYER_CLASS = "TfoptOpLayer"


@functools.cache
def op_layer_class() -> type:
    """``TfoptOpLayer(function='math.multiply', op_kwargs={'y': 0.16})``: calls ``tf.math.multiply(x, y=0.16)``."""
    K = _tf.tf_keras()
    from tensorflow.python.util.tf_export import get_symbol_from_name

    class TfoptOpLayer(K.layers.Layer):
        def __init__(self, function: str, op_kwargs: dict | None = None, **kwargs):
            super().__init__(**kwargs)
            self.function = function
            self.op_kwargs = dict(op_kwargs or {})
            self._fn = get_symbol_from_name(function)
            if self._fn is None:
                raise ValueError(f"TF symbol tf.{function} not found")

        def call(self, inputs):
            return self._fn(inputs, **self.op_kwargs)

        def get_config(self):
            return {**super().get_config(), "function": self.function, "op_kwargs": self.op_kwargs}

    return TfoptOpLayer


def custom_objects() -> dict[str, type]:
    return {LAYER_CLASS: op_layer_class()}


def _is_tensor_ref(value: Any) -> bool:
    return (isinstance(value, list) and len(value) in (3, 4) and isinstance(value[0], str)
            and isinstance(value[1], int) and isinstance(value[2], int))


def _single_tensor_node(nodes: Any) -> tuple[list, dict] | None:
    """(tensor ref, constant kwargs) of a TFOpLambda called once on one tensor; else None."""
    if not (isinstance(nodes, list) and len(nodes) == 1):
        return None
    node = nodes[0]
    if isinstance(node, list) and len(node) == 1 and isinstance(node[0], list):
        node = node[0]
    if not (_is_tensor_ref(node) and len(node) == 4 and isinstance(node[3], dict)):
        return None
    kwargs = {k: v for k, v in node[3].items() if k != "name"}
    if any(_is_tensor_ref(v) or (isinstance(v, list) and any(_is_tensor_ref(i) for i in v)) for v in kwargs.values()):
        return None
    return node[:3], kwargs


_TFMOT_ACTIVATIONS = frozenset({"linear", "relu", "swish", "gelu", "softmax", "sigmoid", "tanh"})


def _split_separable_activation(config: dict) -> list[str]:
    """SeparableConv with an activation TF-MOT's split cannot carry (relu6 ...): the conv becomes
    ``<name>_preact`` (linear) followed by an Activation layer that keeps ``<name>`` (consumers and
    output names unchanged).  TF-MOT then splits the linear SeparableConv into Depthwise + Conv."""
    names = {layer["config"]["name"] for layer in config["layers"]}
    split, out = [], []
    for layer in config["layers"]:
        out.append(layer)
        cfg = layer["config"]
        act = cfg.get("activation")
        act = act if isinstance(act, str) else (act or {}).get("class_name", "linear")
        if layer["class_name"] not in ("SeparableConv2D", "SeparableConv1D") or act in _TFMOT_ACTIVATIONS:
            continue
        name, new = cfg["name"], cfg["name"] + "_preact"
        while new in names:
            new += "_"
        names.add(new)
        cfg.update(name=new, activation="linear")
        layer["name"] = new
        out.append({"class_name": "Activation", "name": name, "inbound_nodes": [[[new, 0, 0, {}]]],
                    "config": {"name": name, "activation": act, "trainable": cfg.get("trainable", True),
                               "dtype": cfg.get("dtype", "float32")}})
        split.append({"layer": name, "change": f"{layer['class_name']} activation {act!r} split off: "
                      f"'{new}' (linear) + Activation '{name}'"})
    config["layers"] = out
    return split


def prepare(model) -> tuple[Any, list[dict]]:
    """``model`` with single-tensor TFOpLambdas as TfoptOpLayers (same names and weights) and
    SeparableConvs with a relu6-like activation split (see ``_split_separable_activation``); the names."""
    K = _tf.tf_keras()
    if isinstance(model, K.Sequential) or not getattr(model, "_is_graph_network", False):
        return model, []
    config = model.get_config()
    replaced = _split_separable_activation(config)
    for layer in config["layers"]:
        if layer["class_name"] != "TFOpLambda":
            continue
        found = _single_tensor_node(layer["inbound_nodes"])
        if found is None:
            continue
        ref, kwargs = found
        cfg = layer["config"]
        for key in ("module", "registered_name"):
            layer.pop(key, None)
        layer.update(class_name=LAYER_CLASS, inbound_nodes=[[[ref[0], ref[1], ref[2], {}]]])
        layer["config"] = {"name": cfg["name"], "trainable": cfg.get("trainable", True),
                           "dtype": cfg.get("dtype", "float32"), "function": cfg["function"], "op_kwargs": kwargs}
        replaced.append({"layer": cfg["name"], "change": f"TFOpLambda tf.{cfg['function']} -> {LAYER_CLASS}"})
    if not replaced:
        return model, []
    with K.utils.custom_object_scope(custom_objects()), _tf.trusted_deserialization():
        rebuilt = K.Model.from_config(config, custom_objects=custom_objects())
    rebuilt.set_weights(model.get_weights())
    return rebuilt, replaced
