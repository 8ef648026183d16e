"""A tiny seeded CNN with one deliberately sensitive layer (tests/test_auto.py, bench/auto.py).

``sensitive_cnn``: an MNIST CNN whose SeparableConv2D ``sep_sensitive`` has one depthwise channel scaled
by ``outlier`` and the matching pointwise row by ``1/outlier``: the float function is unchanged, but the
depthwise output gets one channel with a huge range that crushes its per-tensor int8 scale.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

MNIST = Path(__file__).resolve().parent.parent / "sample_models" / "mnist.npz"


def sensitive_cnn(d: Path, outlier: float = 1000.0, train: int = 3000, epochs: int = 2) -> dict:
    from tfopt import _tf

    _tf.seed_everything(0)
    K = _tf.tf_keras()
    data = np.load(MNIST)
    x, y = data["x_train"][:train].astype(np.float32), data["y_train"][:train]
    L = K.layers
    inp = K.Input((28, 28, 1), name="image")
    h = L.MaxPooling2D(2, name="pool1")(L.Conv2D(16, 3, activation="relu", name="conv1")(inp))
    h = L.MaxPooling2D(2, name="pool2")(L.SeparableConv2D(32, 3, activation="relu", name="sep_sensitive")(h))
    h = L.Flatten(name="flatten")(L.Conv2D(32, 3, activation="relu", name="conv3")(h))
    out = L.Dense(10, activation="softmax", name="probs")(L.Dense(32, activation="relu", name="fc1")(h))
    model = K.Model(inp, out, name="sensitive_cnn")
    model.compile("adam", "sparse_categorical_crossentropy")
    model.fit(x.reshape(-1, 28, 28, 1), y, epochs=epochs, batch_size=64, verbose=0)
    layer = model.get_layer("sep_sensitive")
    depthwise, pointwise, bias = layer.get_weights()
    depthwise[:, :, 0, :] *= outlier
    pointwise[:, :, 0, :] /= outlier
    layer.set_weights([depthwise, pointwise, bias])
    model.save(d / "sensitive.h5", include_optimizer=False)
    np.savez(d / "sensitive.npz", x_train=data["x_train"][:1000], y_train=data["y_train"][:1000],
             x_test=data["x_test"][:400], y_test=data["y_test"][:400])
    return {"model": d / "sensitive.h5", "data": d / "sensitive.npz", "keras": model}
