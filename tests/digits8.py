"""An 8x8 digits-sized problem made from the sample MNIST (no download): ~1,400 training samples.

``data()`` resizes the sample MNIST digits to 8x8 (area average, like sklearn's digits), takes
1,400 training and the 1,000 test samples; ``train_model()`` trains a small seeded CNN on them
(the "original float model" of the fine-tuning measurements).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tfopt import _tf

TRAIN_SAMPLES = 1400


def data(mnist_npz: str | Path, train_samples: int = TRAIN_SAMPLES) -> dict[str, np.ndarray]:
    with np.load(mnist_npz) as z:
        x_train, y_train, x_test, y_test = z["x_train"], z["y_train"], z["x_test"], z["y_test"]

    def small(x):  # 28x28 -> 8x8: crop the 2-pixel border to 24x24, average 3x3 blocks
        x = x[:, 2:26, 2:26, :]
        return x.reshape(len(x), 8, 3, 8, 3, 1).mean(axis=(2, 4)).astype(np.float32)

    return {"x_train": small(x_train[:train_samples]), "y_train": y_train[:train_samples].astype(np.int64),
            "x_test": small(x_test), "y_test": y_test.astype(np.int64)}


def build(K):
    L = K.layers
    inp = K.Input((8, 8, 1), name="digits")
    x = L.Conv2D(16, 3, padding="same", activation="relu", name="conv1")(inp)
    x = L.Conv2D(32, 3, activation="relu", name="conv2")(x)
    x = L.MaxPooling2D(name="pool")(x)
    x = L.Flatten(name="flatten")(x)
    x = L.Dense(64, activation="relu", name="dense1")(x)
    return K.Model(inp, L.Dense(10, activation="softmax", name="probs")(x), name="digits8_cnn")


def train_model(d: dict[str, np.ndarray], epochs: int = 40, seed: int = 0):
    """The float model: Adam 1e-3, batch 32, seeded."""
    K = _tf.tf_keras()
    _tf.seed_everything(seed)
    model = build(K)
    model.compile(K.optimizers.Adam(1e-3), "sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(d["x_train"], d["y_train"], batch_size=32, epochs=epochs, verbose=0, shuffle=True)
    return model
