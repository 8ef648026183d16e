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
