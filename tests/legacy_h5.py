"""Write .h5 files the way Keras 2.0–2.3 wrote them (for loading / PTQ / fine-tuning tests).

``write_legacy_h5(path)`` trains a tiny CNN with tf_keras (layer names as old Keras
auto-named them: ``conv2d_1``, ``dense_1``…), saves it, then rewrites the HDF5 attributes
with h5py into the legacy form: ``keras_version = 2.2.4``, ``class_name: "Model"`` (or a
Keras 2.0/2.1 ``Sequential`` whose config is a bare list of layers with
``batch_input_shape`` on the first), Glorot initializers as ``VarianceScaling`` with
``distribution: uniform``, no per-layer ``dtype`` except where old Keras wrote it, and a
Keras 2.2 style ``training_config`` (``lr``/``decay`` optimizer keys) or none at all.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

OLD_GLOROT = {"class_name": "VarianceScaling",
              "config": {"scale": 1.0, "mode": "fan_avg", "distribution": "uniform", "seed": None}}
OLD_TRAINING = {
    "optimizer_config": {"class_name": "Adam", "config": {"lr": 0.001, "beta_1": 0.9, "beta_2": 0.999,
                                                          "decay": 0.0, "epsilon": 1e-07, "amsgrad": False}},
    "loss": "sparse_categorical_crossentropy",
    "metrics": ["accuracy"],
    "sample_weight_mode": None,
    "loss_weights": None,
}


def tiny_data(n: int = 600, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """8x8x1 images of three classes (a bright row, column or diagonal) with noise."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    x = rng.normal(0.0, 0.3, (n, 8, 8, 1)).astype(np.float32)
    for i, label in enumerate(y):
        k = rng.integers(1, 7)
        if label == 0:
            x[i, k, :, 0] += 1.5
        elif label == 1:
            x[i, :, k, 0] += 1.5
        else:
            x[i, np.arange(8), np.arange(8), 0] += 1.5
    return x, y.astype(np.int64)


def _build(sequential: bool):
    from tfopt import _tf

    K = _tf.tf_keras()
    layers = [
        K.layers.Conv2D(8, 3, activation="relu", name="conv2d_1"),
        K.layers.MaxPooling2D(name="max_pooling2d_1"),
        K.layers.Flatten(name="flatten_1"),
        K.layers.Dense(16, activation="relu", name="dense_1"),
        K.layers.Dense(3, activation="softmax", name="dense_2"),
    ]
    if sequential:
        return K.Sequential([K.Input((8, 8, 1), name="input_1")] + layers, name="sequential_1")
    x = inp = K.Input((8, 8, 1), name="input_1")
    for layer in layers:
        x = layer(x)
    return K.Model(inp, x, name="model_1")


def _legacy_layer(layer: dict) -> dict:
    cfg = layer["config"]
    for key in ("kernel_initializer", "embeddings_initializer"):
        if isinstance(cfg.get(key), dict) and cfg[key].get("class_name") == "GlorotUniform":
            cfg[key] = json.loads(json.dumps(OLD_GLOROT))
    if layer["class_name"] != "InputLayer":
        cfg.pop("dtype", None)
    else:
        cfg.pop("ragged", None)
    return layer


def legacy_config(config: dict, sequential: bool) -> dict:
    """tf_keras model_config → the Keras 2.0–2.3 form."""
    layers = [_legacy_layer(layer) for layer in config["config"]["layers"]]
    if sequential:  # Keras 2.0/2.1: a bare list, batch_input_shape on the first layer, no InputLayer
        first_input = layers[0]["config"] if layers[0]["class_name"] == "InputLayer" else None
        body = [layer for layer in layers if layer["class_name"] != "InputLayer"]
        if first_input is not None:
            body[0]["config"]["batch_input_shape"] = first_input["batch_input_shape"]
            body[0]["config"]["dtype"] = "float32"
        return {"class_name": "Sequential", "config": body}
    config["config"]["layers"] = layers
    return {"class_name": "Model", "config": config["config"]}


def write_legacy_h5(path: Path, *, sequential: bool = False, training_config: bool = True,
                    epochs: int = 8, seed: int = 0) -> Path:
    """Train the tiny CNN on ``tiny_data`` and save it as a Keras 2.2.4-style .h5 at ``path``."""
    import h5py

    from tfopt import _tf

    _tf.seed_everything(seed)
    x, y = tiny_data(seed=seed)
    model = _build(sequential)
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x[:400], y[:400], epochs=epochs, batch_size=32, verbose=0)
    path = Path(path)
    model.save(path, include_optimizer=False)
    with h5py.File(path, "r+") as f:
        config = json.loads(f.attrs["model_config"])
        f.attrs["model_config"] = json.dumps(legacy_config(config, sequential)).encode("utf-8")
        f.attrs["keras_version"] = b"2.2.4"
        f.attrs["backend"] = b"tensorflow"
        if "training_config" in f.attrs:
            del f.attrs["training_config"]
        if training_config:
            f.attrs["training_config"] = json.dumps(OLD_TRAINING).encode("utf-8")
        if "model_weights" in f:
            f["model_weights"].attrs["keras_version"] = b"2.2.4"
    return path


def write_legacy_data(path: Path, seed: int = 0) -> Path:
    """The matching x_train/y_train/x_test/y_test .npz."""
    x, y = tiny_data(seed=seed)
    np.savez(path, x_train=x[:400], y_train=y[:400], x_test=x[400:], y_test=y[400:])
    return Path(path)
