"""Id inputs in a model that also has a real-valued input: only the id input stays float32 under int8 io."""

from __future__ import annotations

import numpy as np

from tfopt import from_dict
from tfopt.pipeline import run
from tfopt.tflite import Runner, read


def test_id_input_stays_float_while_the_feature_input_is_int8(tmp_path):
    from tfopt import _tf

    K = _tf.tf_keras()
    _tf.seed_everything(0)
    rng = np.random.default_rng(0)
    ids = rng.integers(0, 30, (300, 6)).astype(np.float32)
    feats = rng.normal(0, 1, (300, 4)).astype(np.float32)
    a, b = K.Input((6,), name="ids"), K.Input((4,), name="feats")
    h = K.layers.Concatenate()([K.layers.Flatten()(K.layers.Embedding(30, 4, name="emb")(a)), b])
    model = K.Model([a, b], K.layers.Dense(3, activation="softmax", name="probs")(h))
    model.save(tmp_path / "m.h5", include_optimizer=False)
    np.savez(tmp_path / "d.npz", ids=ids, feats=feats)
    report = run(from_dict({"model": {"path": str(tmp_path / "m.h5")}, "data": {"path": str(tmp_path / "d.npz")},
                            "convert": {"quantize": "int8"}, "output": {"tflite": str(tmp_path / "m.tflite")}}))
    assert report.io_types == {"ids": "float32", "feats": "int8", "probs": "int8"}
    assert "the other inputs (feats) and the outputs use int8" in report.notes
    tflite = read((tmp_path / "m.tflite").read_bytes())
    assert not tflite.input_tensors()["ids"].quantization
    out = Runner(tflite)({"ids": ids[:50], "feats": feats[:50]})["probs"]
    ref = model.predict([ids[:50], feats[:50]], verbose=0)
    assert np.mean(out.argmax(1) == ref.argmax(1)) >= 0.96
