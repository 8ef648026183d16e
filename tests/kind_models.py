"""Tiny seeded models of the output kinds real users have, with their data (tests/test_kinds.py, test_auto.py).

* ``text``: two float32 inputs carrying character ids, each into an Embedding; one sigmoid unit (binary).
* ``face``: a 2-class softmax head and two linear regression heads (4 box offsets, 10 landmarks); plain ``y``.
* ``audio``: per-frame sigmoid maps (batch, frames, bins) — multilabel of rank 3.
* ``logits``: a 10-class classifier whose output is logits (no softmax), saved without a loss.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


def _k():
    from tfopt import _tf

    _tf.seed_everything(0)
    return _tf.tf_keras()


def text(d: Path) -> dict:
    K = _k()
    rng = np.random.default_rng(0)
    n, vocab, length = 900, 40, 12
    left = rng.integers(0, vocab, (n, length)).astype(np.float32)  # ids, but float32 as the data pipeline made them
    right = rng.integers(0, vocab, (n, length)).astype(np.float32)
    y = (left[:, 0] < right[:, 0]).astype(np.float32)  # a rule on the ids themselves: they must stay exact
    a, b = K.Input((length,), name="left"), K.Input((length,), name="right")
    embed = K.layers.Embedding(vocab, 8, name="chars")
    h = K.layers.Concatenate()([K.layers.Flatten()(embed(a)), K.layers.Flatten()(embed(b))])
    h = K.layers.Dense(32, activation="relu", name="hidden")(h)
    model = K.Model([a, b], K.layers.Dense(1, activation="sigmoid", name="is_match")(h))
    model.compile(K.optimizers.Adam(3e-3), "binary_crossentropy")
    model.fit([left[:700], right[:700]], y[:700], epochs=30, batch_size=32, verbose=0)
    model.save(d / "text.h5", include_optimizer=False)
    np.savez(d / "text.npz", left_train=left[:700], right_train=right[:700], y_train=y[:700],
             left_test=left[700:], right_test=right[700:], y_test=y[700:])
    return {"model": d / "text.h5", "data": d / "text.npz", "keras": model}


def face(d: Path) -> dict:
    K = _k()
    rng = np.random.default_rng(1)
    n = 600
    is_face = rng.integers(0, 2, n)
    x = rng.normal(0, 1, (n, 12, 12, 1)).astype(np.float32)
    x[is_face == 1, 3:9, 3:9, 0] += 2.0
    boxes = np.stack([x[:, 3:9, 3:9, 0].mean((1, 2)), x[:, :6, :, 0].mean((1, 2)), x[:, 6:, :, 0].mean((1, 2)),
                      x[:, :, :6, 0].mean((1, 2))], 1).astype(np.float32)
    landmarks = np.repeat(boxes, 3, axis=1)[:, :10] * 2
    inp = K.Input((12, 12, 1), name="image")
    h = K.layers.Conv2D(8, 3, activation="relu", name="conv")(inp)
    h = K.layers.Dense(24, activation="relu", name="hidden")(K.layers.Flatten()(h))
    outs = [K.layers.Dense(2, activation="softmax", name="face")(h), K.layers.Dense(4, name="boxes")(h),
            K.layers.Dense(10, name="landmarks")(h)]
    model = K.Model(inp, outs)
    model.compile(K.optimizers.Adam(3e-3), ["sparse_categorical_crossentropy", "mse", "mse"])
    model.fit(x[:450], [is_face[:450], boxes[:450], landmarks[:450]], epochs=25, batch_size=32, verbose=0)
    model.save(d / "face.h5", include_optimizer=False)
    np.savez(d / "face.npz", x=x[450:], y=is_face[450:])  # plain y: it belongs to the softmax head
    return {"model": d / "face.h5", "data": d / "face.npz", "keras": model}


def audio(d: Path) -> dict:
    K = _k()
    rng = np.random.default_rng(2)
    n, frames, bins = 500, 20, 8
    x = rng.normal(0, 1, (n, frames, bins)).astype(np.float32)
    active = (x > 0.3).astype(np.float32)  # per frame and bin: independent decisions
    inp = K.Input((frames, bins), name="spectrogram")
    h = K.layers.Conv1D(16, 3, padding="same", activation="relu", name="conv")(inp)
    model = K.Model(inp, K.layers.Conv1D(bins, 1, activation="sigmoid", name="activity")(h))
    model.compile(K.optimizers.Adam(3e-3), "binary_crossentropy")
    model.fit(x[:350], active[:350], epochs=20, batch_size=32, verbose=0)
    model.save(d / "audio.h5", include_optimizer=False)
    np.savez(d / "audio.npz", x=x[350:], y_activity=active[350:])
    return {"model": d / "audio.h5", "data": d / "audio.npz", "keras": model}


def logits(d: Path) -> dict:
    K = _k()
    rng = np.random.default_rng(3)
    centers = rng.normal(0, 3, (10, 16))
    y = rng.integers(0, 10, 800)
    x = (centers[y] + rng.normal(0, 1, (800, 16))).astype(np.float32)
    inp = K.Input((16,), name="features")
    model = K.Model(inp, K.layers.Dense(10, name="logits")(K.layers.Dense(32, activation="relu", name="hidden")(inp)))
    model.compile(K.optimizers.Adam(3e-3), K.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x[:600], y[:600], epochs=15, batch_size=32, verbose=0)
    model.save(d / "logits_with_loss.h5")  # the saved loss says from_logits=True
    bare = K.models.clone_model(model)
    bare.set_weights(model.get_weights())
    bare.save(d / "logits.h5")  # never compiled: only the labels can say these are logits
    np.savez(d / "logits.npz", x=x[600:], y=y[600:])
    return {"model": d / "logits.h5", "with_loss": d / "logits_with_loss.h5", "data": d / "logits.npz", "keras": bare}


def perturbed(model, path: Path, scale: float = 0.6, seed: int = 5) -> Path:
    """A copy of ``model`` with noise (``scale`` × each weight's std) on every weight: a broken conversion."""
    K = _k()
    copy = K.models.clone_model(model)
    rng = np.random.default_rng(seed)
    copy.set_weights([w + rng.normal(0, scale * (w.std() or 1.0), w.shape) for w in model.get_weights()])
    copy.save(path, include_optimizer=False)
    return path
