"""Train small reference models (``tfopt train``) with tf_keras, seeded and reproducible."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np

from . import _tf
from .errors import DataError, UsageError
from .files import write_atomic


def build(arch: str, input_shape: tuple[int, ...], classes: int):
    """A tf_keras model of a named architecture."""
    K = _tf.tf_keras()
    L = K.layers
    if arch == "small-cnn":
        shape = input_shape if len(input_shape) == 3 else (28, 28, 1)
        layers = [
            L.Input(shape, name="image"),
            L.Conv2D(16, 3, activation="relu", name="conv1"),
            L.MaxPooling2D(name="pool1"),
            L.Conv2D(32, 3, activation="relu", name="conv2"),
            L.MaxPooling2D(name="pool2"),
            L.Flatten(name="flatten"),
            L.Dense(128, activation="relu", name="dense1"),
            L.Dense(classes, activation="softmax", name="probs"),
        ]
    elif arch == "mlp":
        layers = [
            L.Input(input_shape, name="features"),
            L.Flatten(name="flatten"),
            L.Dense(128, activation="relu", name="dense1"),
            L.Dense(64, activation="relu", name="dense2"),
            L.Dense(classes, activation="softmax", name="probs"),
        ]
    else:
        raise UsageError(f"unknown --arch {arch!r}: expected small-cnn or mlp")
    return K.Sequential(layers, name=arch.replace("-", "_"))


def _load_labelled(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None]:
    try:
        with np.load(path, allow_pickle=False) as z:
            keys = set(z.files)
            if {"x_train", "y_train"} <= keys:
                test = (z["x_test"], z["y_test"]) if {"x_test", "y_test"} <= keys else (None, None)
                return z["x_train"], z["y_train"], *test
            if {"x", "y"} <= keys:
                return z["x"], z["y"], None, None
    except (OSError, ValueError) as e:
        raise DataError(f"{path} is not a readable .npz file ({e})") from e
    raise DataError(f"{path}: training needs labelled data: expected keys x_train/y_train (or x/y), found {sorted(keys)}")


def train_model(
    arch: str, data: str | Path, epochs: int = 3, seed: int = 0, progress: Callable[[str], None] | None = None
):
    """Build and train ``arch`` on ``data``; returns (model, test accuracy or None)."""
    K = _tf.tf_keras()
    _tf.seed_everything(seed)
    x, y, x_test, y_test = _load_labelled(Path(data))
    x = x.astype(np.float32)
    if x.ndim == 3:
        x = x[..., None]
    classes = int(y.max()) + 1
    model = build(arch, tuple(x.shape[1:]), classes)
    if x.shape[1:] != tuple(model.input_shape[1:]):
        raise DataError(f"{data}: samples of shape {x.shape[1:]} do not fit --arch {arch} input {model.input_shape[1:]}")
    model.compile(K.optimizers.Adam(1e-3), "sparse_categorical_crossentropy", metrics=["accuracy"])

    class Report(K.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if progress:
                progress(f"epoch {epoch + 1}/{epochs}: loss {logs['loss']:.4f}, accuracy {logs['accuracy']:.4f}")

    model.fit(x, y, batch_size=64, epochs=epochs, shuffle=True, verbose=0, callbacks=[Report()])
    accuracy = None
    if x_test is not None:
        xt = x_test.astype(np.float32)
        xt = xt[..., None] if xt.ndim == 3 else xt
        accuracy = float(model.evaluate(xt, y_test, verbose=0)[1])
    return model, accuracy


def save_model(model, output: str | Path) -> Path:
    """Save a tf_keras model atomically (.h5 or .keras), without optimizer state."""
    import tempfile

    output = Path(output)
    if output.suffix not in (".h5", ".keras"):
        raise UsageError(f"-o {output}: expected a .h5 or .keras file name")
    with tempfile.TemporaryDirectory() as tmp:
        tmp_file = Path(tmp) / f"model{output.suffix}"
        kwargs = {"include_optimizer": False} if output.suffix == ".h5" else {}
        model.save(tmp_file, **kwargs)
        write_atomic(output, tmp_file.read_bytes())
    return output


def train_cli(arch: str, data: str, output: str, epochs: int, seed: int, progress=None) -> dict:
    if Path(output).resolve() == Path(data).resolve():
        raise UsageError(f"refusing to write the model over the data file {data}")
    model, accuracy = train_model(arch, data, epochs, seed, progress)
    save_model(model, output)
    return {"output": output, "arch": arch, "epochs": epochs, "test_accuracy": accuracy}
