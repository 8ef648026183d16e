"""The one place that configures and imports TensorFlow and its friends.

Everything heavy is imported lazily, on first use, so that ``tfopt --help`` and
recipe validation never pay for TensorFlow's start-up.  ``TF_USE_LEGACY_KERAS=1``
must be set before TensorFlow is imported: it makes ``tf.keras`` the Keras 2
implementation (``tf_keras``) that TF-MOT understands.  Keras 3 stays importable as
``keras`` for loading Keras 3 files.
"""

from __future__ import annotations

import functools
import os
from types import ModuleType

DEFAULT_SEED = 0


def _configure_environment() -> None:
    os.environ["TF_USE_LEGACY_KERAS"] = "1"
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")  # bit-stable numbers across runs
    os.environ.setdefault("ABSL_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("GRPC_VERBOSITY", "ERROR")


@functools.cache
def tf() -> ModuleType:
    _configure_environment()
    import tensorflow

    tensorflow.get_logger().setLevel("ERROR")
    try:
        import absl.logging

        absl.logging.set_verbosity(absl.logging.ERROR)
    except ImportError:  # pragma: no cover - absl ships with tensorflow
        pass
    return tensorflow


@functools.cache
def tf_keras() -> ModuleType:
    tf()
    import tf_keras

    return tf_keras


def trusted_deserialization():
    """A context in which tf_keras deserializes Lambda layers: for models the user already loaded."""
    tf_keras()
    from tf_keras.src.saving.serialization_lib import SafeModeScope

    return SafeModeScope(False)


@functools.cache
def keras3() -> ModuleType:
    tf()
    import keras

    return keras


@functools.cache
def tfmot() -> ModuleType:
    tf_keras()
    import tensorflow_model_optimization

    return tensorflow_model_optimization


@functools.cache
def litert() -> ModuleType:
    """``ai_edge_litert.interpreter`` (Interpreter, OpResolverType)."""
    from ai_edge_litert import interpreter

    return interpreter


def interpreter_class() -> type:
    return litert().Interpreter


@functools.cache
def tfmot_supports() -> dict:
    """stage -> predicate(tf_keras layer) -> bool, from TF-MOT's own layer registries."""
    tfmot()
    from tensorflow_model_optimization.python.core.clustering.keras import clusterable_layer, clustering_registry
    from tensorflow_model_optimization.python.core.quantization.keras.default_8bit import (
        default_8bit_quantize_registry as q8,
    )
    from tensorflow_model_optimization.python.core.sparsity.keras import prunable_layer, prune_registry

    quantize = q8.Default8BitQuantizeRegistry()
    return {
        "prune": lambda l: isinstance(l, prunable_layer.PrunableLayer) or prune_registry.PruneRegistry.supports(l),
        "quantize": lambda l: quantize.supports(l),
        "cluster": lambda l: isinstance(l, clusterable_layer.ClusterableLayer)
        or clustering_registry.ClusteringRegistry.supports(l),
    }


def seed_everything(seed: int = DEFAULT_SEED) -> None:
    """Seed Python, NumPy and TensorFlow and make TF kernels deterministic."""
    import random

    import numpy as np

    t = tf()
    random.seed(seed)
    np.random.seed(seed)
    t.random.set_seed(seed)
    tf_keras().utils.set_random_seed(seed)
    try:
        t.config.experimental.enable_op_determinism()
    except (AttributeError, RuntimeError):  # pragma: no cover - older TF
        pass


def versions() -> dict[str, str]:
    """Versions of the libraries that shaped an output, for the report."""
    from importlib import metadata

    out = {}
    for dist in ("tfopt", "tensorflow", "tf-keras", "keras", "tensorflow-model-optimization", "ai-edge-litert"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = "not installed"
    return out


@functools.cache
def tflite_schema() -> ModuleType:
    """The TFLite flatbuffer schema (pure Python + flatbuffers): reads a .tflite without TensorFlow."""
    from ai_edge_litert import schema_py_generated

    return schema_py_generated
