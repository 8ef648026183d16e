"""Write a Keras-2.2.4-style .h5 of a mini-Xception (Conv+BN, SeparableConv2D+BN, residual Add).

The approach of tfopt's tests/legacy_h5.py: build and train with tf_keras under the names old
Keras auto-generated (``conv2d_1``, ``batch_normalization_1``, ``separable_conv2d_1`` ... one-based),
save, then rewrite the HDF5 attributes into the Keras 2.0-2.3 form (``keras_version 2.2.4``,
``class_name: "Model"``, Glorot as ``VarianceScaling``, no per-layer dtype, a Keras 2.2 style
``training_config`` with ``lr``).  Loaded in a fresh process, the names collide with the ones
TF-MOT's layout transforms generate (``conv2d_1`` for the Conv2D a SeparableConv2D is split into).
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
    "loss": "sparse_categorical_crossentropy", "metrics": ["accuracy"], "sample_weight_mode": None,
    "loss_weights": None,
}


def mini_xception(K, shape=(16, 16, 3), classes: int = 3):
    """The face_classification mini-Xception shape, two residual modules, legacy (one-based) names."""
    L = K.layers
    n: dict[str, int] = {}

    def name(kind: str) -> str:
        n[kind] = n.get(kind, 0) + 1
        return f"{kind}_{n[kind]}"

    inp = K.Input(shape, name="input_1")
    x = L.Conv2D(8, 3, use_bias=False, name=name("conv2d"))(inp)
    x = L.BatchNormalization(name=name("batch_normalization"))(x)
    x = L.Activation("relu", name=name("activation"))(x)
    for filters in (8, 16):
        residual = L.Conv2D(filters, 1, strides=2, padding="same", use_bias=False, name=name("conv2d"))(x)
        residual = L.BatchNormalization(name=name("batch_normalization"))(residual)
        x = L.SeparableConv2D(filters, 3, padding="same", use_bias=False, name=name("separable_conv2d"))(x)
        x = L.BatchNormalization(name=name("batch_normalization"))(x)
        x = L.Activation("relu", name=name("activation"))(x)
        x = L.SeparableConv2D(filters, 3, padding="same", use_bias=False, name=name("separable_conv2d"))(x)
        x = L.BatchNormalization(name=name("batch_normalization"))(x)
        x = L.MaxPooling2D(3, strides=2, padding="same", name=name("max_pooling2d"))(x)
        x = L.Add(name=name("add"))([x, residual])
    x = L.Conv2D(classes, 3, padding="same", name=name("conv2d"))(x)
    x = L.GlobalAveragePooling2D(name=name("global_average_pooling2d"))(x)
    out = L.Activation("softmax", name="predictions")(x)
    return K.Model(inp, out, name="model_1")


def _legacy_layer(layer: dict) -> dict:
    cfg = layer["config"]
    for key in ("kernel_initializer", "depthwise_initializer", "pointwise_initializer"):
        if isinstance(cfg.get(key), dict) and cfg[key].get("class_name") == "GlorotUniform":
            cfg[key] = json.loads(json.dumps(OLD_GLOROT))
    if layer["class_name"] != "InputLayer":
        cfg.pop("dtype", None)
    else:
        cfg.pop("ragged", None)
    for key in ("module", "registered_name", "build_config"):
        layer.pop(key, None)
    return layer


def _settle_batchnorm(K, model, x) -> None:
    """Moving statistics = the statistics of ``x`` (so the float model is good in inference)."""
    layers = [layer for layer in model.layers if isinstance(layer, K.layers.BatchNormalization)]
    for layer in layers:
        layer.momentum, saved = 0.0, layer.momentum
        layer._tfopt_saved_momentum = saved
    model(x[:512], training=True)
    for layer in layers:
        layer.momentum = layer._tfopt_saved_momentum


def write(path: Path, x: np.ndarray, y: np.ndarray, epochs: int = 3, seed: int = 0) -> Path:
    """Train ``mini_xception`` on (x, y) and save it as a Keras 2.2.4-style .h5 at ``path``."""
    import h5py

    from tfopt import _tf

    K = _tf.tf_keras()
    _tf.seed_everything(seed)
    model = mini_xception(K, x.shape[1:], int(y.max()) + 1)
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x, y, epochs=epochs, batch_size=32, verbose=0)
    _settle_batchnorm(K, model, x)
    path = Path(path)
    model.save(path, include_optimizer=False)
    with h5py.File(path, "r+") as f:
        config = json.loads(f.attrs["model_config"])
        config["config"]["layers"] = [_legacy_layer(layer) for layer in config["config"]["layers"]]
        f.attrs["model_config"] = json.dumps({"class_name": "Model", "config": config["config"]}).encode()
        f.attrs["keras_version"] = b"2.2.4"
        f.attrs["backend"] = b"tensorflow"
        f.attrs["training_config"] = json.dumps(OLD_TRAINING).encode()
        if "model_weights" in f:
            f["model_weights"].attrs["keras_version"] = b"2.2.4"
    return path
