"""Helpers for tests/test_wild.py: a custom tf_keras layer (``wild_helpers:CUSTOM``) and a worker
target that crashes like the native TFLite converter does (progress "convert int8", then SIGABRT)."""

from __future__ import annotations

import os
import sys

CUSTOM_LAYER_SOURCE = '''
import tf_keras


class Scale(tf_keras.layers.Layer):
    """Multiplies by a fixed factor (a custom layer tf_keras cannot know)."""

    def __init__(self, factor=2.0, **kwargs):
        super().__init__(**kwargs)
        self.factor = factor

    def call(self, x):
        return x * self.factor

    def get_config(self):
        return {**super().get_config(), "factor": self.factor}
'''

KERAS3_LAYER_SOURCE = '''
import keras


@keras.saving.register_keras_serializable(package="wild")
class Shift(keras.layers.Layer):
    """Adds a fixed offset; registered under the package name "wild" (config: "wild>Shift")."""

    def __init__(self, offset=0.5, **kwargs):
        super().__init__(**kwargs)
        self.offset = offset

    def call(self, x):
        return x + self.offset

    def get_config(self):
        return {**super().get_config(), "offset": self.offset}
'''


def _scale_class():
    from tfopt import _tf

    namespace: dict = {}
    _tf.tf_keras()
    exec(compile(CUSTOM_LAYER_SOURCE, "wild_helpers_scale", "exec"), namespace)  # noqa: S102 - test fixture
    return namespace["Scale"]


def __getattr__(name):  # lazily, so importing this module never imports TensorFlow
    if name in ("Scale", "CUSTOM"):
        cls = _scale_class()
        globals().update(Scale=cls, CUSTOM={"Scale": cls})
        return globals()[name]
    raise AttributeError(name)


def crash_in_convert(*args, progress, **kwargs):
    """Behave like TensorFlow's converter aborting in native code while converting to int8."""
    progress("load")
    progress("convert int8")
    sys.stderr.write("W0000 00:00:1700000000.000001  4242 cpu_feature_guard.cc:227] noise\n")
    sys.stderr.write("F0000 00:00:1700000000.000002  4242 quantize_model.cc:42] Check failed: scale > 0 (0 vs. 0)\n")
    sys.stderr.write("WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n")
    sys.stderr.flush()
    os.abort()


def echo_progress(value, progress, scale=1):
    """A worker target: reports progress, returns a value computed in the child."""
    progress("load")
    return {"value": value * scale, "pid": os.getpid()}


def raise_usage(progress):
    from tfopt.errors import UsageError

    raise UsageError("bad flag", "try another")


def raise_bug(progress):
    raise KeyError("oops")


def wait_forever(marker, progress):
    """Writes its pid to ``marker`` (atomically, as tfopt writes outputs) and then waits to be interrupted."""
    import time

    from tfopt.files import write_atomic

    progress("fine-tune")
    write_atomic(marker, str(os.getpid()))
    while True:
        time.sleep(0.1)
