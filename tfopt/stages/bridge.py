"""Bring any loaded Keras model into tf_keras (Keras 2), the only Keras TF-MOT accepts.

* tf_keras models are rebuilt from their config with fresh weights copied in (TF-MOT's
  cloning then never meets stale graph state, legacy layer names or variables created
  outside a ``tf.distribute`` scope).
* Keras 3 Sequential / Functional models are rebuilt in tf_keras from their config
  (InputLayer ``batch_shape``, dtype policies, serialized objects and Keras 3 node records
  are translated), the weights are copied layer by layer, and the rebuilt model must
  reproduce the original's outputs (max abs diff <= ``TOLERANCE``) on real samples.
* Subclassed models and bare SavedModels cannot be cloned by TF-MOT: a clear error.

    model, info = to_tf_keras(loaded, check_inputs)
"""

from __future__ import annotations

import inspect
import re
from typing import Any

import numpy as np

from .. import _tf
from ..errors import ModelLoadError, UnsupportedLayerError
from ..models import LoadedModel

TOLERANCE = 1e-5
_UNKNOWN_KWARG = re.compile(r"(?:Keyword argument not understood|unexpected keyword argument)\W+'?(\w+)")
_K3_ONLY_KEYS = {"optional", "quantization_config", "lora_rank", "lora_alpha"}


def to_tf_keras(loaded: LoadedModel, check_inputs: dict[str, np.ndarray] | None) -> tuple[Any, dict]:
    """A fresh tf_keras copy of ``loaded.model`` and what was done to get it."""
    _require_graph_model(loaded)
    K = _tf.tf_keras()
    if loaded.flavour == "tf_keras":
        config = loaded.model.get_config()
        rebuilt = _from_config(K, loaded.model, config, loaded.custom_objects)
        rebuilt.set_weights(loaded.model.get_weights())
        return rebuilt, {"bridge": "tf_keras rebuilt from its config"}
    config = keras3_config_to_tf_keras(loaded.model, loaded.custom_objects)
    rebuilt = _from_config(K, loaded.model, config, loaded.custom_objects)
    _copy_weights(loaded.model, rebuilt)
    diff = _max_abs_diff(loaded, rebuilt, check_inputs)
    if diff is not None and diff > TOLERANCE:
        raise UnsupportedLayerError(
            f"{loaded.path}: the Keras 3 model rebuilt in tf_keras does not reproduce the original "
            f"(max abs diff {diff:.3g} > {TOLERANCE:g}); the fine-tuning stages need tf_keras (TF-MOT)",
            "convert without fine-tuning stages (post-training quantization works on Keras 3 models)",
        )
    return rebuilt, {"bridge": "Keras 3 -> tf_keras", "bridge_max_abs_diff": diff}


def _require_graph_model(loaded: LoadedModel) -> None:
    if loaded.flavour == "saved_model":
        raise ModelLoadError(
            f"{loaded.path}: fine-tuning stages (prune, cluster, qat) need a Keras model (.h5, .keras or a "
            "Keras SavedModel), not a bare SavedModel signature"
        )
    model = loaded.model
    name = type(model).__name__
    graph = getattr(model, "_is_graph_network", None)
    if graph is None:  # Keras 3: Functional and Sequential subclass keras.src.models.functional.Functional
        graph = any(c.__name__ in ("Functional", "Sequential") for c in type(model).__mro__)
    if not graph or name not in ("Functional", "Sequential", "Model"):
        raise ModelLoadError(
            f"{loaded.path}: the model is a subclassed Keras model ({name}); TF-MOT clones models layer by "
            "layer, which needs a Functional or Sequential model: rebuild it with keras.Model(inputs, outputs) "
            "or keras.Sequential([...]) and save that"
        )


def _from_config(K, original, config: dict, custom_objects: dict):
    sequential = type(original).__name__ == "Sequential"
    cls = K.Sequential if sequential else K.Model
    try:  # the user loaded this model already: its Lambda layers are trusted like load_model trusted them
        with K.utils.custom_object_scope(custom_objects or {}), _tf.trusted_deserialization():
            return cls.from_config(config)
    except (ValueError, TypeError, KeyError) as e:
        raise UnsupportedLayerError(
            f"{getattr(original, 'name', 'model')}: cannot rebuild the model in tf_keras for TF-MOT: "
            f"{type(e).__name__}: {str(e).splitlines()[0][:300]}"
        ) from e


# ------------------------------------------------------------------ Keras 3 config → tf_keras config


def keras3_config_to_tf_keras(model, custom_objects: dict | None = None) -> dict:
    """Translate a Keras 3 model config; raise naming every layer that has no tf_keras twin."""
    K = _tf.tf_keras()
    config = _plain(model.get_config())
    problems = []
    for layer in config.get("layers", []):
        cfg = layer["config"]
        if layer["class_name"] == "InputLayer":
            cfg["batch_input_shape"] = cfg.pop("batch_shape", cfg.pop("batch_input_shape", None))
        for key in _K3_ONLY_KEYS & set(cfg):
            if cfg[key] not in (None, False):
                problems.append(f"'{cfg.get('name')}' ({layer['class_name']}: Keras 3 option {key}={cfg[key]!r})")
            cfg.pop(key)
        if "inbound_nodes" in layer:
            layer["inbound_nodes"] = [_node_to_k2(n) for n in layer["inbound_nodes"]]
        problem = _check_layer(K, layer, custom_objects or {})
        if problem:
            problems.append(problem)
    for key in ("input_layers", "output_layers"):
        if key in config and config[key] and isinstance(config[key][0], str):
            config[key] = [config[key]]
    if problems:
        raise UnsupportedLayerError(
            f"cannot bridge the Keras 3 model to tf_keras for TF-MOT: {len(problems)} layer(s) cannot be rebuilt: "
            + "; ".join(problems),
            "convert without fine-tuning stages, or rebuild the model with tf_keras layers",
        )
    return config


def _plain(obj: Any) -> Any:
    """Keras 3 serialization → Keras 2: dtype policies to names, objects to class_name/config."""
    if isinstance(obj, dict):
        if obj.get("class_name") in ("DTypePolicy", "FloatDTypePolicy") and "config" in obj:
            return obj["config"].get("name", "float32")
        if obj.get("class_name") == "__keras_tensor__":
            return obj
        if "class_name" in obj and "config" in obj and ("module" in obj or "registered_name" in obj):
            out = {"class_name": obj["class_name"], "config": _plain(obj["config"])}
            for k in ("name", "inbound_nodes"):
                if k in obj:
                    out[k] = _plain(obj[k])
            return out
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_plain(v) for v in obj]
    return obj


def _node_to_k2(node: Any) -> list:
    if not isinstance(node, dict):  # already Keras 2 style
        return node
    tensors = []

    def walk(x):
        if isinstance(x, dict) and x.get("class_name") == "__keras_tensor__":
            name, node_index, tensor_index = x["config"]["keras_history"]
            tensors.append([name, node_index, tensor_index, {}])
        elif isinstance(x, (list, tuple)):
            for v in x:
                walk(v)

    walk(node.get("args", []))
    kwargs = {k: v for k, v in node.get("kwargs", {}).items() if not isinstance(v, (dict, list))}
    if tensors and kwargs:
        tensors[0][3] = kwargs
    return tensors


def _check_layer(K, layer: dict, custom_objects: dict) -> str | None:
    """Deserialize one layer in tf_keras (dropping Keras-3-only arguments left at defaults)."""
    name = layer["config"].get("name")
    cfg = layer["config"]
    last = "its config does not deserialize in tf_keras"
    for _ in range(8):
        try:
            with K.utils.custom_object_scope(custom_objects):
                built = K.layers.deserialize({"class_name": layer["class_name"], "config": cfg})
            if not isinstance(built, K.layers.Layer):  # tf_keras hands back the name of an unknown class
                return f"'{name}' ({layer['class_name']}: not a tf_keras layer)"
            layer["config"] = cfg
            return None
        except (ValueError, TypeError) as e:
            m = _UNKNOWN_KWARG.search(str(e))
            if m and m.group(1) in cfg and cfg[m.group(1)] in (None, False, {}, []):
                cfg = {k: v for k, v in cfg.items() if k != m.group(1)}
                continue
            if m and m.group(1) in cfg:
                return f"'{name}' ({layer['class_name']}: argument {m.group(1)}={cfg[m.group(1)]!r} has no tf_keras equivalent)"
            for k, v in list(cfg.items()):  # nested initializers etc. with Keras-3-only arguments
                if isinstance(v, dict) and "class_name" in v:
                    cfg = {**cfg, k: _trim_object(K, v)}
            if "Unknown" in str(e) or "Could not" in str(e):
                return f"'{name}' ({layer['class_name']}: not a tf_keras layer)"
            last = str(e).splitlines()[0][:160]
    return f"'{name}' ({layer['class_name']}: {last})"


def _trim_object(K, obj: dict) -> dict:
    """Drop constructor arguments tf_keras does not know from a serialized initializer/regularizer."""
    for module in (K.initializers, K.regularizers, K.constraints):
        cls = getattr(module, obj["class_name"], None)
        if cls is not None:
            params = inspect.signature(cls.__init__).parameters
            if not any(p.kind is p.VAR_KEYWORD for p in params.values()):
                return {"class_name": obj["class_name"], "config": {k: v for k, v in obj["config"].items() if k in params}}
    return obj


def _copy_weights(source, target) -> None:
    problems = []
    for layer in source.layers:
        weights = layer.get_weights()
        if not weights:
            continue
        try:
            target.get_layer(layer.name).set_weights(weights)
        except (ValueError, KeyError) as e:
            problems.append(f"'{layer.name}' ({type(layer).__name__}: {str(e).splitlines()[0][:120]})")
    if problems:
        raise UnsupportedLayerError("cannot copy the Keras 3 weights into the tf_keras rebuild: " + "; ".join(problems))


def _max_abs_diff(loaded: LoadedModel, rebuilt, inputs: dict[str, np.ndarray] | None) -> float | None:
    if not inputs:
        return None
    reference = loaded.predict(inputs)
    args = [inputs[s.name] for s in loaded.inputs]
    out = rebuilt.predict(args if len(args) > 1 else args[0], batch_size=256, verbose=0)
    out = out if isinstance(out, (list, tuple)) else [out]
    return float(max(np.max(np.abs(reference[s.name] - np.asarray(o))) for s, o in zip(loaded.outputs, out)))
