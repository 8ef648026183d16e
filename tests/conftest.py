"""Shared fixtures: the shipped samples, tiny seeded models, a CLI runner and file hashes."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "sample_models"
SAMPLE_H5 = SAMPLES / "mnist_cnn.h5"
SAMPLE_KERAS = SAMPLES / "mnist_cnn.keras"
SAMPLE_NPZ = SAMPLES / "mnist.npz"


def sha256(path: Path) -> str:
    path = Path(path)
    if path.is_dir():
        h = hashlib.sha256()
        for p in sorted(path.rglob("*")):
            if p.is_file():
                h.update(p.relative_to(path).as_posix().encode())
                h.update(p.read_bytes())
        return h.hexdigest()
    return hashlib.sha256(path.read_bytes()).hexdigest()


@dataclass
class CliResult:
    exit_code: int
    stdout: str
    stderr: str
    exception: BaseException | None


def run_cli(*args: str) -> CliResult:
    """Run ``tfopt ARGS`` in-process (the command spawns its own worker)."""
    from tfopt.cli import main

    result = CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=True)
    exc = result.exception if not isinstance(result.exception, SystemExit) else None
    return CliResult(result.exit_code, result.stdout, result.stderr, exc)


@pytest.fixture
def cli():
    return run_cli


@pytest.fixture(scope="session")
def tiny(tmp_path_factory) -> dict[str, Path]:
    """A tiny tf_keras MLP classifier (8 features, 3 classes) trained on seeded blobs, plus its data."""
    from tfopt import _tf

    K = _tf.tf_keras()
    _tf.seed_everything(0)
    rng = np.random.default_rng(0)
    centers = rng.normal(0, 3, (3, 8))
    y = rng.integers(0, 3, 600)
    x = (centers[y] + rng.normal(0, 1, (600, 8))).astype(np.float32)
    model = K.Sequential(
        [K.Input((8,), name="features"), K.layers.Dense(16, activation="relu", name="hidden"),
         K.layers.Dense(3, activation="softmax", name="probs")]
    )
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x[:400], y[:400], epochs=20, batch_size=32, verbose=0)
    d = tmp_path_factory.mktemp("tiny")
    model.save(d / "tiny.h5", include_optimizer=False)
    np.savez(d / "tiny.npz", x_train=x[:400], y_train=y[:400], x_test=x[400:], y_test=y[400:])
    np.savez(d / "tiny_xy.npz", x=x, y=y)
    np.save(d / "tiny_x.npy", x[400:])
    return {"dir": d, "h5": d / "tiny.h5", "npz": d / "tiny.npz", "xy": d / "tiny_xy.npz", "npy": d / "tiny_x.npy"}


def _sine(x):
    import tensorflow as tf

    return tf.math.sin(x)


@pytest.fixture(scope="session")
def odd_model(tmp_path_factory) -> dict[str, Path]:
    """A tiny tf_keras model with a half-zero kernel, a layer QAT cannot wrap (LayerNormalization) and an op
    without an int8 kernel (sin), plus its float32 and int8-with-float-fallback .tflite conversions."""
    from tfopt import _tf
    from tfopt.convert import ConvertConfig, convert
    from tfopt.data import random_calibration
    from tfopt.models import load_model

    K = _tf.tf_keras()
    _tf.seed_everything(0)
    model = K.Sequential([
        K.Input((8,), name="features"), K.layers.Dense(16, activation="relu", name="hidden"),
        K.layers.LayerNormalization(name="norm"), K.layers.Lambda(_sine, name="sine"),
        K.layers.Dense(3, activation="softmax", name="probs"),
    ], name="odd")  # fixed: the default name depends on how many models the session built
    w = model.get_layer("hidden").get_weights()
    w[0][:4] = 0.0  # 4 of 8 input rows: exactly half the kernel is zero
    model.get_layer("hidden").set_weights(w)
    d = tmp_path_factory.mktemp("odd")
    model.save(d / "odd.h5", include_optimizer=False)
    loaded = load_model(d / "odd.h5")
    calibration = random_calibration(loaded.inputs, 16, 0)
    out = {"dir": d, "h5": d / "odd.h5"}
    from tfopt.modes import MODES

    for tag, config in (("float32", ConvertConfig(MODES["none"])),
                        ("int8", ConvertConfig(MODES["int8"], "int8", allow_float_fallback=True))):
        out[tag] = d / f"odd.{tag}.tflite"
        out[tag].write_bytes(convert(loaded, config, calibration if tag == "int8" else None).data)
    return out


@pytest.fixture(scope="session")
def legacy_h5(tmp_path_factory) -> dict[str, Path]:
    """A Keras 2.2.4-style .h5 (class_name "Model", legacy initializer/optimizer configs, conv2d_1-style
    names; see tests/legacy_h5.py) of a tiny trained 8x8x1 CNN, plus its x_train/…/y_test .npz."""
    from legacy_h5 import write_legacy_data, write_legacy_h5

    d = tmp_path_factory.mktemp("legacy")
    return {"dir": d, "h5": write_legacy_h5(d / "legacy.h5"), "npz": write_legacy_data(d / "legacy.npz")}
