"""Models in the wild: multi-input/output, id inputs, custom layers, dynamic shapes, converter
crashes, int8 op coverage, Select TF ops and Keras 2.2-era .h5 files — each ends in a verified
model or one clear error."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from conftest import sha256
from legacy_h5 import write_legacy_data, write_legacy_h5
from wild_helpers import CUSTOM_LAYER_SOURCE, KERAS3_LAYER_SOURCE

from tfopt import from_dict, run
from tfopt.errors import ConversionError, DataError, ModelLoadError, UsageError


def _run(path, data=None, tflite=None, **sections):
    recipe = {"model": {"path": str(path), **sections.pop("model", {})}, **sections}
    if data is not None:
        recipe["data"] = {"path": str(data)}
    recipe["output"] = {"tflite": str(tflite or Path(path).with_suffix(".out.tflite"))}
    return run(from_dict(recipe))


def _metrics(report) -> dict:
    """Per output: its metrics plus its kind (the typed VerifyResult, flattened for the assertions)."""
    return {o.name: {**o.metrics, "kind": str(o.kind.kind)} for o in report.verification.outputs}


# ---------------------------------------------------------------- 1 + 2: multi-input ids, 3 outputs


@pytest.fixture(scope="module")
def ids_model(tmp_path_factory):
    """ids (int32 token ids → Embedding) + num (float): the class is decided by the ids only."""
    from tfopt import _tf

    K = _tf.tf_keras()
    _tf.seed_everything(0)
    rng = np.random.default_rng(0)
    ids = rng.integers(0, 30, (700, 6)).astype(np.int32)
    num = rng.random((700, 3), dtype=np.float32)
    y = (ids[:, 0] % 3).astype(np.int64)
    i_in, n_in = K.Input((6,), dtype="int32", name="ids"), K.Input((3,), name="num")
    e = K.layers.Flatten()(K.layers.Embedding(30, 8, name="embed")(i_in))
    h = K.layers.Dense(16, activation="relu")(K.layers.Concatenate()([e, n_in]))
    model = K.Model([i_in, n_in], K.layers.Dense(3, activation="softmax", name="probs")(h))
    model.compile("adam", "sparse_categorical_crossentropy")
    model.fit([ids[:500], num[:500]], y[:500], epochs=25, batch_size=32, verbose=0)
    d = tmp_path_factory.mktemp("ids")
    model.save(d / "ids.h5", include_optimizer=False)
    np.savez(d / "ids.npz", ids_train=ids[:500], num_train=num[:500], y_train=y[:500],
             ids_test=ids[500:], num_test=num[500:], y_test=y[500:])
    np.savez(d / "wrong.npz", tokens=ids, num=num, y=y)
    w = model.get_layer("embed").get_weights()
    model.get_layer("embed").set_weights([np.random.default_rng(1).permutation(w[0])])  # a degraded copy
    model.save(d / "ids_degraded.h5", include_optimizer=False)
    return d


def test_multi_input_data_are_fed_by_name_and_wrong_keys_are_listed(ids_model):
    from tfopt.data import load_data
    from tfopt.models import load_model

    model = load_model(ids_model / "ids.h5")
    assert [(i.name, i.dtype) for i in model.inputs] == [("ids", "int32"), ("num", "float32")]
    plan = load_data(ids_model / "ids.npz", model.inputs, model.outputs)
    x, y = plan.evaluation.all()
    assert x["ids"].dtype == np.int32 and x["num"].shape == (200, 3) and y["y"].shape == (200,)
    with pytest.raises(DataError) as e:
        load_data(ids_model / "wrong.npz", model.inputs, model.outputs)
    assert str(e.value) == (
        f"{ids_model / 'wrong.npz'}: no data for the model inputs; expected keys ['ids', 'num'] "
        "(one per input name), found ['num', 'tokens', 'y']"
    )


def test_int_id_inputs_stay_int32_in_int8_io_and_are_verified(ids_model):
    report = _run(ids_model / "ids.h5", ids_model / "ids.npz", convert={"quantize": "int8"})
    assert report.io_types == {"ids": "int32", "num": "int8", "probs": "int8"}
    assert "input 'ids' stays int32 in the .tflite: integer ids are never quantized " \
           "(the other inputs and outputs use int8)" in report.notes
    probs = _metrics(report)["probs"]
    assert probs["accuracy_reference"] > 0.9 and probs["agreement"] >= 0.97 and report.ok


def test_degraded_id_model_is_caught_by_verification(ids_model):
    """The .tflite of the trained model, checked against a model whose embedding was shuffled: ids reach it."""
    from tfopt import kinds
    from tfopt.data import load_data
    from tfopt.models import load_model
    from tfopt.modes import MODES
    from tfopt.tflite import read
    from tfopt.verify import GateSettings, Reference, verify

    tflite = read((ids_model / "ids.out.tflite").read_bytes())  # written by the previous test
    degraded = load_model(ids_model / "ids_degraded.h5")
    plan = load_data(ids_model / "ids.npz", degraded.inputs, degraded.outputs)
    reference = Reference.compute(degraded, plan.evaluation)
    decided, reference.labels = kinds.resolve(degraded, reference.outputs, reference.labels)
    result = verify(tflite, reference, decided, GateSettings(MODES["int8"]))
    assert not result.passed
    m = result.outputs[0].metrics
    assert m["accuracy"] - m["accuracy_reference"] > 0.3
    assert any(f.startswith("output 'probs' (classification): top-1 agreement") for f in result.failures)


def test_three_outputs_are_matched_by_name_when_tflite_reorders_them(tmp_path):
    from tfopt import _tf
    from tfopt.tflite import Runner

    K = _tf.tf_keras()
    _tf.seed_everything(0)
    x = K.Input((5,), name="x")
    h = K.layers.Dense(8, activation="tanh")(x)
    model = K.Model(x, [K.layers.Dense(1, name="zeta")(h), K.layers.Dense(4, activation="softmax", name="alpha")(h),
                        K.layers.Dense(1, name="mid")(h)])
    model.save(tmp_path / "three.h5")
    xs = np.random.default_rng(0).random((300, 5), dtype=np.float32)
    np.savez(tmp_path / "three.npz", x=xs, y_alpha=np.argmax(model.predict(xs, verbose=0)[1], 1))
    report = _run(tmp_path / "three.h5", tmp_path / "three.npz", convert={"quantize": "dynamic"})
    assert list(Runner((tmp_path / "three.out.tflite").read_bytes()).outputs) == ["alpha", "mid", "zeta"]
    m = _metrics(report)
    assert list(m) == ["zeta", "alpha", "mid"]  # the model's order, each scored against its namesake
    assert m["alpha"]["kind"] == "classification" and m["alpha"]["accuracy_reference"] == 1.0
    assert m["zeta"]["kind"] == "regression" and "accuracy_reference" not in m["zeta"]
    assert all(v["sqnr_db"] > 25 and v["cosine"] > 0.99 for v in m.values()) and report.ok


# ---------------------------------------------------------------- 3: custom layers


@pytest.fixture(scope="module")
def custom_models(tmp_path_factory):
    import wild_helpers
    from tfopt import _tf

    K = _tf.tf_keras()
    _tf.seed_everything(0)
    d = tmp_path_factory.mktemp("custom")
    (d / "layers.py").write_text(CUSTOM_LAYER_SOURCE)
    x = K.Input((4,), name="x")
    model = K.Model(x, K.layers.Dense(3, activation="softmax", name="probs")(wild_helpers.Scale(3.0, name="scale")(x)))
    model.save(d / "custom.h5")
    model.save(d / "custom_sm", save_format="tf")
    xs = np.random.default_rng(0).normal(0, 1, (300, 4)).astype(np.float32)
    np.savez(d / "data.npz", x=xs)
    return d


def test_custom_layer_h5_needs_custom_objects_and_loads_with_file_or_module(custom_models):
    from tfopt.models import load_model

    h5 = custom_models / "custom.h5"
    before = sha256(h5)
    with pytest.raises(ModelLoadError) as e:
        load_model(h5)
    assert str(e.value).startswith(f"{h5}: the model uses a custom layer or object that is not registered (Unknown layer: 'Scale'")
    assert str(e.value).endswith("pass --custom-objects FILE.py or module:attr")
    assert type(load_model(h5, "wild_helpers:CUSTOM").model.get_layer("scale")).__name__ == "Scale"
    report = _run(h5, custom_models / "data.npz", model={"custom_objects": str(custom_models / "layers.py")},
                  convert={"quantize": "dynamic"})
    assert report.ok and _metrics(report)["probs"]["agreement"] >= 0.97 and sha256(h5) == before


def test_tf_keras_savedmodel_with_revived_custom_layer_converts_through_its_signature(custom_models):
    from tfopt.models import load_model

    sm = custom_models / "custom_sm"
    assert load_model(sm).flavour == "saved_model"  # no custom objects: the layer would come back revived
    assert load_model(sm, "wild_helpers:CUSTOM").flavour == "tf_keras"
    report = _run(sm, custom_models / "data.npz", tflite=custom_models / "sm.tflite", convert={"quantize": "float16"})
    assert report.model.format == "savedmodel" and report.ok
    assert _metrics(report)["probs"]["max_abs_error"] < 1e-2


def test_keras3_custom_layer_registered_under_a_package_loads_with_custom_objects(tmp_path):
    from tfopt import _tf
    from tfopt.models import load_model

    keras = _tf.keras3()
    (tmp_path / "shift.py").write_text(KERAS3_LAYER_SOURCE)
    namespace: dict = {}
    exec(compile(KERAS3_LAYER_SOURCE, "shift", "exec"), namespace)  # noqa: S102 - registers "wild>Shift"
    x = keras.Input((4,), name="x")
    model = keras.Model(x, keras.layers.Dense(2, name="out")(namespace["Shift"](name="shift")(x)))
    model.save(tmp_path / "shift.keras")
    keras.saving.get_custom_objects().pop("wild>Shift")  # a fresh process would not know it
    with pytest.raises(ModelLoadError):
        load_model(tmp_path / "shift.keras")
    loaded = load_model(tmp_path / "shift.keras", str(tmp_path / "shift.py"))
    assert loaded.flavour == "keras3" and type(loaded.model.get_layer("shift")).__name__ == "Shift"
    xs = np.ones((2, 4), np.float32)
    np.testing.assert_allclose(loaded.predict({"x": xs})["out"], model.predict(xs, verbose=0), rtol=1e-6)


# ---------------------------------------------------------------- 4: dynamic shapes, RNNs


@pytest.fixture(scope="module")
def rnn_models(tmp_path_factory):
    from tfopt import _tf

    K = _tf.tf_keras()
    _tf.seed_everything(0)
    rng = np.random.default_rng(0)
    xs = rng.normal(0, 1, (500, 7, 4)).astype(np.float32)
    y = (xs[:, :, 0].sum(1) > 0).astype(np.int64)
    d = tmp_path_factory.mktemp("rnn")
    for name, layer, steps in (("lstm", K.layers.LSTM, None), ("gru", K.layers.GRU, 7)):
        seq = K.Input((steps, 4), name="seq")
        model = K.Model(seq, K.layers.Dense(2, activation="softmax", name="probs")(layer(8)(seq)))
        model.compile(K.optimizers.Adam(0.01), "sparse_categorical_crossentropy")
        model.fit(xs[:300], y[:300], epochs=15, batch_size=32, verbose=0)
        model.save(d / f"{name}.h5", include_optimizer=False)
    np.savez(d / "seq.npz", x_train=xs[:300], y_train=y[:300], x_test=xs[300:], y_test=y[300:])
    return d


def test_dynamic_sequence_length_is_refused_naming_input_dimension_and_flag(rnn_models):
    with pytest.raises(ConversionError) as e:
        _run(rnn_models / "lstm.h5", rnn_models / "seq.npz", convert={"quantize": "dynamic"})
    assert str(e.value) == (
        "input 'seq' has a dynamic dimension 1 (shape (None, None, 4)) and the TFLite converter needs static shapes "
        "for this model (RNN / TensorList ops): fix it with --input-shape seq=1,T,4"
    )
    assert not (rnn_models / "lstm.out.tflite").exists()


def test_lstm_with_input_shape_converts_and_verifies(rnn_models):
    report = _run(rnn_models / "lstm.h5", rnn_models / "seq.npz", model={"input_shapes": {"seq": [-1, 7, 4]}},
                  convert={"quantize": "int8"})
    assert report.io_types == {"seq": "int8", "probs": "int8"}
    assert "batch size fixed to 1 in the .tflite: the TFLite converter needs static shapes for this model (RNN)" \
        in report.notes
    assert "the .tflite keeps RNN state between invocations (UNIDIRECTIONAL_SEQUENCE_LSTM): call " \
           "Interpreter.reset_all_variables() before each new sequence (verification does)" in report.notes
    probs = _metrics(report)["probs"]
    assert report.ok and probs["agreement"] >= 0.97 and probs["accuracy_reference"] > 0.8


def test_gru_converts_with_batch_fixed_to_one_and_verifies(rnn_models):
    """A GRU with a static sequence length: only the batch is dynamic, so tfopt fixes it to 1.

    (Full int8 of this GRU segfaults inside TF 2.21's converter: the CLI's worker turns that into
    `Error: the TFLite converter crashed (SIGSEGV) …`; in-process it would kill pytest, so dynamic here.)
    """
    report = _run(rnn_models / "gru.h5", rnn_models / "seq.npz", convert={"quantize": "dynamic"})
    assert report.io_types == {"seq": "float32", "probs": "float32"}
    assert any(n.startswith("batch size fixed to 1") for n in report.notes)
    probs = _metrics(report)["probs"]
    assert report.ok and probs["accuracy_drop"] <= 0.01 and probs["accuracy_reference"] > 0.8


def test_keras3_lstm_with_input_shape_converts_and_verifies(rnn_models, tmp_path):
    from tfopt import _tf

    keras = _tf.keras3()
    keras.utils.set_random_seed(0)
    data = np.load(rnn_models / "seq.npz")
    seq = keras.Input((None, 4), name="seq")
    model = keras.Model(seq, keras.layers.Dense(2, activation="softmax", name="probs")(keras.layers.LSTM(8)(seq)))
    model.compile(keras.optimizers.Adam(0.01), "sparse_categorical_crossentropy")
    model.fit(data["x_train"], data["y_train"], epochs=10, batch_size=32, verbose=0)
    model.save(tmp_path / "k3.keras")
    report = _run(tmp_path / "k3.keras", rnn_models / "seq.npz", model={"input_shapes": {"*": [1, 7, 4]}},
                  convert={"quantize": "float16"})
    probs = _metrics(report)["probs"]
    assert report.ok and probs["accuracy_reference"] > 0.8 and probs["agreement"] >= 0.99


def test_input_shape_is_checked_against_the_model(rnn_models):
    from tfopt.models import load_model
    from tfopt.shapes import parse_flags, resolve

    inputs = load_model(rnn_models / "lstm.h5").inputs
    assert parse_flags(("seq=1,20,4",)) == {"seq": [1, 20, 4]} and parse_flags(("1,20,4",)) == {"*": [1, 20, 4]}
    assert resolve(inputs, {"*": (-1, 20, 4)}) == {"seq": (None, 20, 4)}
    cases = {
        "tokens": ("--input-shape (model.input_shapes): input 'tokens' does not match the model inputs ['seq']; "
                   "expected NAME=d0,d1,... with NAME one of them"),
        "seq": ("--input-shape seq=1,20: got 2 dimensions, expected 3 (batch first) for input 'seq' of shape "
                "(None, None, 4)"),
    }
    for name, message in cases.items():
        with pytest.raises(UsageError) as e:
            resolve(inputs, {name: (1, 20)})
        assert str(e.value) == message
    with pytest.raises(UsageError, match=r"dimension 2 is 5, but the model fixes it to 4"):
        resolve(inputs, {"seq": (1, 20, 5)})


def test_input_shape_flag_reaches_the_recipe_and_bad_values_exit_2(cli, tmp_path, rnn_models):
    out = tmp_path / "r.toml"
    result = cli("convert", rnn_models / "lstm.h5", "--input-shape", "seq=1,7,4", "--no-verify", "--dump-recipe", out)
    assert result.exit_code == 0
    assert "[model.input_shapes]\nseq = [1, 7, 4]" in out.read_text()
    bad = cli("convert", rnn_models / "lstm.h5", "--input-shape", "seq=1,a,4", "--no-verify")
    assert bad.exit_code == 2 and "Invalid value for '--input-shape': 'seq=1,a,4': expected [NAME=]d0,d1,..." in bad.stderr
    assert "Traceback" not in bad.stderr


# ---------------------------------------------------------------- 5: converter crashes


def test_converter_crash_becomes_one_clear_error():
    from tfopt.worker import WorkerCrashed, run_isolated

    import wild_helpers

    with pytest.raises(WorkerCrashed) as e:
        run_isolated(wild_helpers.crash_in_convert, ())
    assert str(e.value) == (
        "the TFLite converter crashed (SIGABRT) while converting to int8; native log: quantize_model.cc:42] "
        "Check failed: scale > 0 (0 vs. 0) (try another mode (e.g. --quantize dynamic) or --allow-float-fallback; "
        "run with --debug for the native log)"
    )
    assert e.value.exit_code == 1


def test_multi_recipe_run_survives_a_crashing_recipe(cli, tiny, tmp_path, monkeypatch):
    import tfopt.worker as worker
    import wild_helpers
    from tfopt import pipeline

    real = worker.run_isolated

    def routed(target, args=(), *rest, **kw):  # the recipe writing crash.tflite runs the crashing target
        crash = target is pipeline.run and args[0].output.tflite.endswith("crash.tflite")
        return real(wild_helpers.crash_in_convert if crash else target, args, *rest, **kw)

    monkeypatch.setattr(worker, "run_isolated", routed)
    recipes = []
    for name in ("crash", "fine"):
        path = tmp_path / f"{name}.toml"
        path.write_text(f'[model]\npath = "{tiny["h5"]}"\n[data]\npath = "{tiny["npz"]}"\n'
                        f'[convert]\nquantize = "int8"\n[output]\ntflite = "{tmp_path / name}.tflite"\n')
        recipes.append(path)
    before = sha256(tiny["h5"])
    result = cli("run", *recipes)
    assert result.exit_code == 1
    assert "Error: the TFLite converter crashed (SIGABRT) while converting to int8; native log: " in result.stderr
    assert "Traceback" not in result.stderr
    assert (tmp_path / "fine.tflite").is_file() and not (tmp_path / "crash.tflite").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["crash.toml", "fine.tflite", "fine.toml"]
    assert "summary of 2 recipes (exit 1):" in result.stderr and sha256(tiny["h5"]) == before
    assert "  crash: Error: the TFLite converter crashed (SIGABRT) while converting to int8" in result.stderr


# ---------------------------------------------------------------- 6 + 7: int8 op coverage, Select TF ops


def _lambda_model(path: Path, fn) -> Path:
    from tfopt import _tf

    K = _tf.tf_keras()
    _tf.seed_everything(0)
    x = K.Input((4,), name="x")
    K.Model(x, K.layers.Dense(3, activation="softmax", name="probs")(K.layers.Lambda(fn, name="op")(x))).save(path)
    np.savez(path.with_suffix(".npz"), x=np.random.default_rng(0).random((300, 4), dtype=np.float32))
    return path


def _sin(t):
    import tensorflow as tf

    return tf.math.sin(t * 3.0)


def _det(t):
    import tensorflow as tf

    return tf.reshape(tf.linalg.det(tf.reshape(t, (-1, 2, 2))), (-1, 1)) * tf.ones((1, 4))


def test_strict_int8_refuses_float_ops_and_fallback_lists_them(tmp_path):
    from tfopt.tflite import read

    h5 = _lambda_model(tmp_path / "sin.h5", _sin)
    with pytest.raises(ConversionError) as e:
        _run(h5, h5.with_suffix(".npz"), convert={"quantize": "int8"})
    assert str(e.value) == (
        "strict full-integer int8 conversion left 1 op(s) computing in float (SIN): they have no integer kernel "
        "(pass --allow-float-fallback to keep them in float, or use --quantize dynamic)"
    )
    assert not (tmp_path / "sin.out.tflite").exists()
    report = _run(h5, h5.with_suffix(".npz"), convert={"quantize": "int8", "allow_float_fallback": True})
    assert "ops left in float (no integer kernel, --allow-float-fallback): SIN" in report.notes and report.ok
    model = read((tmp_path / "sin.out.tflite").read_bytes())
    listed = {op.name: op for op in model.ops}
    assert [model.tensors[i].dtype for i in listed["SIN"].inputs] == ["FLOAT32"]
    assert [model.tensors[i].dtype for i in listed["FULLY_CONNECTED"].outputs] == ["INT8"]
    assert [op.name for op in model.float_ops()] == ["SIN"]


def test_converter_error_text_names_the_blocking_ops():
    from tfopt.convert_checks import blocking_ops

    text = ("loc(\"op\"): error: 'tfl.custom_thing' op is not quantizable\n"
            "error: Quantization not yet supported for op: 'ERF'\n")
    assert blocking_ops(text) == ["custom_thing", "ERF"]


def test_select_tf_ops_are_refused_when_verifying_and_converted_with_no_verify(tmp_path):
    from tfopt.tflite import read

    h5 = _lambda_model(tmp_path / "det.h5", _det)
    with pytest.raises(ConversionError) as e:
        _run(h5, h5.with_suffix(".npz"))
    assert str(e.value).startswith("the model needs TensorFlow ops that TFLite builtins lack (MatrixDeterminant): "
                                   "they only run as Select TF ops (Flex), which the standard LiteRT interpreter "
                                   "cannot run")
    assert str(e.value).endswith("pass --no-verify to convert with SELECT_TF_OPS anyway (the app must link the Flex "
                                 "delegate)")
    report = _run(h5, verify={"enabled": False})
    assert report.verification is None and report.notes[0].startswith(
        "WARNING: converted with Select TF ops (Flex) for MatrixDeterminant")
    assert "FlexMatrixDeterminant" in [op.name for op in read((tmp_path / "det.out.tflite").read_bytes()).ops]


# ---------------------------------------------------------------- 8: Keras 2.2-era .h5


@pytest.mark.parametrize("sequential", [False, True], ids=["functional-2.2.4", "sequential-list-config"])
def test_legacy_h5_loads_and_goes_through_ptq(tmp_path, sequential):
    import h5py

    h5 = write_legacy_h5(tmp_path / "old.h5", sequential=sequential, training_config=not sequential)
    data = write_legacy_data(tmp_path / "old.npz")
    with h5py.File(h5, "r") as f:
        assert f.attrs["keras_version"] in (b"2.2.4", "2.2.4")
        assert ('"class_name": "Sequential", "config": [' if sequential else '"class_name": "Model"') in \
            (f.attrs["model_config"].decode() if isinstance(f.attrs["model_config"], bytes) else f.attrs["model_config"])
    report = _run(h5, data, convert={"quantize": "int8"})
    assert report.model.keras_version == "2.2.4"
    probs = next(iter(_metrics(report).values()))
    assert report.ok and probs["accuracy_reference"] > 0.9 and probs["accuracy_drop"] <= 0.01
    assert os.path.getsize(tmp_path / "old.out.tflite") < os.path.getsize(h5)
