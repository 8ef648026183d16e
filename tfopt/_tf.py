"""The one place that configures and imports TensorFlow and its friends.

Everything heavy is imported lazily, on first use, so that ``tfopt --help`` and
recipe validation never pay for TensorFlow's start-up.  ``TF_USE_LEGACY_KERAS=1``
must be set before TensorFlow is imported: it makes ``tf.keras`` the Keras 2
implementation (``tf_keras``) that TF-MOT understands.  Keras 3 stays importable as
``keras`` for loading Keras 3 files.
"""

from __future__ import annotations

import contextlib
import functools
import os
import sys
import tempfile
import warnings
from types import ModuleType

DEFAULT_SEED = 0


NATIVE_LOG_ENV = "TFOPT_NATIVE_LOG"  # set by the worker: its stderr already goes to a log file
DEBUG_ENV = "TFOPT_DEBUG"  # show TensorFlow's native output as it comes
WORKER_ENV = "TFOPT_WORKER"  # set in the worker process: one job per process
_legacy_keras = True  # set TF_USE_LEGACY_KERAS before importing TensorFlow (TF-MOT needs it)


def prefer_legacy_keras(needed: bool) -> None:
    """In a worker (one job per process), skip importing tf_keras with TensorFlow when the job needs no
    TF-MOT (~0.5 s of start-up for a Keras 3 model). Library processes always keep it: a later job
    in the same process may fine-tune."""
    global _legacy_keras
    if os.environ.get(WORKER_ENV) and "tensorflow" not in sys.modules:
        _legacy_keras = needed


@contextlib.contextmanager
def quiet_native():
    """Silence what TensorFlow's native code prints on stdout/stderr (converter chatter, absl warnings).

    A no-op inside the worker (its stderr is a log file that --debug shows) and with TFOPT_DEBUG=1:
    library users get a quiet ``tfopt``; errors still carry their text in the exception.
    """
    if os.environ.get(NATIVE_LOG_ENV) or os.environ.get(DEBUG_ENV):
        yield
        return
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    saved = [os.dup(1), os.dup(2)]
    with tempfile.TemporaryFile() as sink:
        try:
            os.dup2(sink.fileno(), 1)
            os.dup2(sink.fileno(), 2)
            yield
        finally:
            for stream in (sys.stdout, sys.stderr):
                stream.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for fd in saved:
                os.close(fd)


def _configure_environment() -> None:
    if _legacy_keras:
        os.environ["TF_USE_LEGACY_KERAS"] = "1"
    # a library stays quiet (ERROR lines too, e.g. CUDA probing at the first op); the CLI's worker logs
    # errors to the native log that --debug shows
    logged = os.environ.get(NATIVE_LOG_ENV) or os.environ.get(DEBUG_ENV)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2" if logged else "3")
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")  # bit-stable numbers across runs
    os.environ.setdefault("ABSL_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("GRPC_VERBOSITY", "ERROR")


@functools.cache
def tf() -> ModuleType:
    _configure_environment()
    with quiet_native():  # CUDA probing and oneDNN notices on import
        import tensorflow

    tensorflow.get_logger().setLevel("ERROR")
    # TF's own calibrator still builds a tf.lite.Interpreter: its deprecation notice is not the user's concern
    warnings.filterwarnings("ignore", message=r"\s*Warning: tf.lite.Interpreter is deprecated", category=UserWarning)
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


def trusted_keras3_deserialization():
    """The same for Keras 3 models (slimming rebuilds a Keras 3 model from its own config)."""
    keras3()
    from keras.src.saving.serialization_lib import SafeModeScope

    return SafeModeScope(False)


@functools.cache
def keras3() -> ModuleType:
    tf()
    import keras

    return keras


@functools.cache
def tfmot() -> ModuleType:
    tf_keras()
    if not _legacy_keras:  # pragma: no cover - the worker decides per job; a job that needs TF-MOT asks first
        raise RuntimeError("TF-MOT needs TF_USE_LEGACY_KERAS=1 before TensorFlow is imported")
    import tensorflow_model_optimization

    return tensorflow_model_optimization


@functools.cache
def litert() -> ModuleType:
    """``ai_edge_litert.interpreter`` (Interpreter, OpResolverType)."""
    from ai_edge_litert import interpreter

    return interpreter


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
    # the Kerases keep seed state of their own (initializers without a seed draw from it): reset it where
    # one is in use, without importing either just for that (a fresh import starts from Python's seed)
    if "tf_keras" in sys.modules:
        sys.modules["tf_keras"].utils.set_random_seed(seed)
    if "keras" in sys.modules and hasattr(sys.modules["keras"], "utils"):
        sys.modules["keras"].utils.set_random_seed(seed)
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


def tflite_util() -> ModuleType:
    """``tensorflow.lite.python.util`` (``modify_model_io_type``: retype a converted model's inputs / outputs)."""
    tf()
    from tensorflow.lite.python import util

    return util


def tflite_convert_internal() -> ModuleType:
    """``tensorflow.lite.python.convert``: the converter's own quantizer (``mlir_quantize``), as the TFLite
    quantization debugger calls it (selective quantization, numeric-verify debug models)."""
    tf()
    from tensorflow.lite.python import convert

    return convert
