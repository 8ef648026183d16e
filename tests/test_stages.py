"""Fine-tuning stages (TF-MOT): prune, cluster, qat, their combinations, bridges and errors.

Every number is measured in the exported .tflite (tfopt.tflite.reader), never in Keras wrappers.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import sha256

from tfopt.errors import ModelLoadError, UnsupportedLayerError
from tfopt.stages.finetune import DISTILL, LABELS
from tfopt.recipe import from_dict

ROOT = Path(__file__).resolve().parent.parent
FAST = {"epochs": 1, "min_steps": 0, "batch_size": 32, "learning_rate": 1e-3}


@pytest.fixture(scope="module")
def cnn(tmp_path_factory) -> dict[str, Path]:
    """A tiny tf_keras CNN (6x6x2 inputs, conv 3x3x2x8 + dense 32x16 + dense 16x3) on seeded blobs."""
    from tfopt import _tf

    K = _tf.tf_keras()
    _tf.seed_everything(0)
    rng = np.random.default_rng(0)
    centers = rng.normal(0, 2, (3, 6, 6, 2))
    y = rng.integers(0, 3, 600)
    x = (centers[y] + rng.normal(0, 1, (600, 6, 6, 2))).astype(np.float32)
    model = K.Sequential([
        K.Input((6, 6, 2), name="image"),
        K.layers.Conv2D(8, 3, activation="relu", name="conv"),
        K.layers.MaxPooling2D(name="pool"),
        K.layers.Flatten(name="flat"),
        K.layers.Dense(16, activation="relu", name="dense"),
        K.layers.Dense(3, activation="softmax", name="probs"),
    ], name="tiny_cnn")  # a fixed name: the default depends on how many models the session built
    model.compile("adam", "sparse_categorical_crossentropy")
    model.fit(x[:400], y[:400], epochs=15, batch_size=32, verbose=0)
    d = tmp_path_factory.mktemp("cnn")
    model.save(d / "cnn.h5", include_optimizer=False)
    np.savez(d / "cnn.npz", x_train=x[:400], y_train=y[:400], x_test=x[400:], y_test=y[400:])
    np.save(d / "cnn_x.npy", x[:300])
    return {"dir": d, "h5": d / "cnn.h5", "npz": d / "cnn.npz", "npy": d / "cnn_x.npy"}


def run_stages(model: Path, data: Path, stages: list[dict], quantize: str = "none", out: Path | None = None, **extra):
    from tfopt.pipeline import run

    train = {**FAST, **extra.pop("train", {})}
    raw = {"model": {"path": str(model)}, "data": {"path": str(data), "calibration_samples": 64, **extra.pop("data_", {})},
           "stages": stages, "train": train,
           "convert": {"quantize": quantize, **extra.pop("convert", {})},
           "output": {"tflite": str(out or Path(model).with_suffix(f".{len(stages)}.tflite"))}, **extra}
    return run(from_dict(raw)).to_dict()  # the JSON document users read


def kernels(stage: dict) -> dict[str, dict]:
    return stage["layers"]


# ------------------------------------------------------------------ single stages


def test_prune_reaches_target_sparsity_in_exported_tflite_and_sparse_encoding_is_smaller(cnn):
    report = run_stages(cnn["h5"], cnn["npz"], [{"kind": "prune", "sparsity": 0.6}], convert={"sparse_encoding": True})
    (stage,) = report["stages"]
    assert stage["measured_in"] == "float32 TFLite export" and stage["target"] == LABELS
    assert stage["loss_function"] == "sparse_categorical_crossentropy"
    assert abs(stage["kernel_sparsity"] - 0.6) <= 0.02
    for name in ("conv", "dense"):  # kernels with >= 100 weights
        assert abs(kernels(stage)[name]["sparsity"] - 0.6) <= 0.02, name
    final = stage["exported_output"]
    assert abs(final["kernel_sparsity"] - 0.6) <= 0.02  # the sparse-encoded file, densified by LiteRT
    assert report["sizes"]["output"]["bytes"] < report["sizes"]["output_without_sparse_encoding"]["bytes"]
    assert report["ok"] and report["verification"]["outputs"][0]["metrics"]["accuracy_drop"] <= 0.05


def test_prune_constant_schedule_and_block_pattern(cnn):
    stages = [{"kind": "prune", "sparsity": 0.5, "schedule": "constant", "block": [1, 4]}]
    with pytest.raises(UnsupportedLayerError) as e:
        run_stages(cnn["h5"], cnn["npz"], stages)
    assert str(e.value) == (
        "prune: TF-MOT cannot prune 2 layer(s) of model 'tiny_cnn': 'conv' (Conv2D: block sparsity needs 2-D "
        "weights, its kernel is 4-D), 'probs' (Dense: its 16x3 kernel does not divide into 1x4 blocks) "
        "(pass --skip-unsupported to apply prune to the supported layers only)"
    )
    report = run_stages(cnn["h5"], cnn["npz"], stages, train={"skip_unsupported": True})
    (stage,) = report["stages"]
    assert stage["schedule"] == "constant" and stage["block"] == "1x4"
    assert [s["name"] for s in stage["skipped_layers"]] == ["conv", "probs"]
    assert kernels(stage)["conv"]["sparsity"] == 0.0
    assert abs(kernels(stage)["dense"]["sparsity"] - 0.5) <= 0.02


def test_prune_2_4_pattern_zeroes_two_of_every_four(cnn):
    report = run_stages(cnn["h5"], cnn["npz"], [{"kind": "prune", "sparsity": 0.5, "pattern": "2:4"}])
    (stage,) = report["stages"]
    assert stage["pattern"] == "2:4"
    assert abs(kernels(stage)["dense"]["sparsity"] - 0.5) <= 0.02


def test_cluster_leaves_at_most_n_values_per_kernel(cnn):
    report = run_stages(cnn["h5"], cnn["npz"], [{"kind": "cluster", "clusters": 6, "init": "linear"}])
    (stage,) = report["stages"]
    assert stage["preserve_sparsity"] is False
    for name, k in kernels(stage).items():
        assert 2 <= k["unique_values"] <= 6, name


def test_qat_gives_full_int8_close_to_the_original(cnn):
    report = run_stages(cnn["h5"], cnn["npz"], [{"kind": "qat"}], quantize="int8")
    (stage,) = report["stages"]
    assert stage["scheme"] == "QAT" and stage["measured_in"] == "int8 TFLite export"
    assert set(report["io_types"].values()) == {"int8"}
    assert {k["dtype"] for k in kernels(stage).values()} == {"int8"}
    assert set(kernels(stage)) == {"conv", "dense", "probs"}  # quant_<name> mapped back
    assert report["verification"]["outputs"][0]["metrics"]["agreement"] >= 0.9


# ------------------------------------------------------------------ combinations


def test_prune_then_qat_preserves_sparsity_in_int8(cnn):
    report = run_stages(cnn["h5"], cnn["npz"], [{"kind": "prune", "sparsity": 0.7}, {"kind": "qat"}], quantize="int8")
    prune, qat = report["stages"]
    assert qat["scheme"] == "PQAT"
    assert abs(qat["exported_output"]["kernel_sparsity"] - 0.7) <= 0.02
    assert abs(kernels(qat)["dense"]["sparsity"] - 0.7) <= 0.02


def test_cluster_then_qat_preserves_clusters_in_int8(cnn):
    report = run_stages(cnn["h5"], cnn["npz"], [{"kind": "cluster", "clusters": 8}, {"kind": "qat"}], quantize="int8")
    cluster, qat = report["stages"]
    assert qat["scheme"] == "CQAT"
    for name, k in kernels(qat).items():  # int8 per-channel scales: count per output channel
        assert k["max_unique_per_channel"] <= 8, name


def test_prune_cluster_qat_keeps_both_sparsity_and_clusters(cnn):
    stages = [{"kind": "prune", "sparsity": 0.6}, {"kind": "cluster", "clusters": 8}, {"kind": "qat"}]
    report = run_stages(cnn["h5"], cnn["npz"], stages, quantize="int8")
    prune, cluster, qat = report["stages"]
    assert cluster["preserve_sparsity"] is True and qat["scheme"] == "PCQAT"
    assert abs(cluster["kernel_sparsity"] - 0.6) <= 0.02
    assert all(k["unique_values"] <= 8 for k in kernels(cluster).values())
    final = qat["exported_output"]
    assert abs(final["kernel_sparsity"] - 0.6) <= 0.02
    assert all(k["max_unique_per_channel"] <= 8 for k in final["layers"].values())


# ------------------------------------------------------------------ targets, bridges, errors


def test_unlabelled_data_distills_from_the_original_model(cnn):
    report = run_stages(cnn["h5"], cnn["npy"], [{"kind": "prune", "sparsity": 0.5}], verify={"enabled": False})
    (stage,) = report["stages"]
    assert stage["target"] == DISTILL
    assert stage["loss_function"] == "categorical_crossentropy"
    assert stage["train_samples"] == 240  # a one-split source: 80 % fine-tunes, 20 % evaluates
    assert abs(stage["kernel_sparsity"] - 0.5) <= 0.02


def test_a_training_file_with_plain_y_labels_trains_the_output_they_fit(tiny, tmp_path):
    """--train-data holding x/y: its unnamed labels go to the output the evaluation labels went to."""
    report = run_stages(tiny["h5"], tiny["npz"], [{"kind": "prune", "sparsity": 0.5}], out=tmp_path / "m.tflite",
                        data_={"train": str(tiny["xy"])})
    (stage,) = report["stages"]
    # 600 samples in the training file: 10 % of them held out for validation (best-epoch restore)
    assert (stage["target"], stage["train_samples"], stage["validation_samples"], stage["loss_function"]) == (
        LABELS, 540, 60, "sparse_categorical_crossentropy")
    assert report["ok"] and abs(stage["kernel_sparsity"] - 0.5) <= 0.02


def _keras3_functional(path: Path, extra_layer=None):
    from tfopt import _tf

    k = _tf.keras3()
    k.utils.set_random_seed(0)
    inp = k.Input((8,), name="features")
    h = k.layers.Dense(16, activation="relu", name="hidden")(inp)
    h = k.layers.BatchNormalization(name="bn")(h)
    h = extra_layer(h) if extra_layer else h
    s = k.layers.Add(name="add")([h, k.layers.Dense(16, name="skip")(inp)])
    model = k.Model(inp, k.layers.Dense(3, activation="softmax", name="probs")(s))
    model.save(path)
    return path


def test_keras3_model_is_bridged_to_tf_keras_and_pruned(tmp_path):
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(300, 8)).astype(np.float32), rng.integers(0, 3, 300)
    np.savez(tmp_path / "d.npz", x_train=x[:200], y_train=y[:200], x_test=x[200:], y_test=y[200:])
    model = _keras3_functional(tmp_path / "k3.keras")
    before = sha256(model)
    report = run_stages(model, tmp_path / "d.npz", [{"kind": "prune", "sparsity": 0.5}])
    (stage,) = report["stages"]
    assert stage["bridge"] == "Keras 3 -> tf_keras"
    assert stage["bridge_max_abs_diff"] <= 1e-5
    assert abs(kernels(stage)["hidden"]["sparsity"] - 0.5) <= 0.02
    assert sha256(model) == before


def test_keras3_layer_without_tf_keras_twin_is_named(tmp_path):
    from tfopt import _tf
    from tfopt.stages.bridge import to_tf_keras
    from tfopt.models import load_model

    path = _keras3_functional(tmp_path / "k3.keras", _tf.keras3().layers.RMSNormalization(name="rms"))
    with pytest.raises(UnsupportedLayerError) as e:
        to_tf_keras(load_model(path), None)
    assert str(e.value).startswith(
        "cannot bridge the Keras 3 model to tf_keras for TF-MOT: 1 layer(s) cannot be rebuilt: "
        "'rms' (RMSNormalization: not a tf_keras layer)"
    )


def test_subclassed_model_is_refused_with_a_clear_error(tmp_path):
    from tfopt import _tf
    from tfopt.stages.bridge import to_tf_keras
    from tfopt.models import LoadedModel
    from tfopt.shapes import TensorSpec

    K = _tf.tf_keras()

    class Tiny(K.Model):
        def __init__(self):
            super().__init__()
            self.dense = K.layers.Dense(2)

        def call(self, x):
            return self.dense(x)

    model = Tiny()
    model(np.zeros((1, 4), np.float32))
    loaded = LoadedModel(tmp_path / "m.h5", "h5", "2.21.0", model, [TensorSpec("x", (None, 4), "float32")],
                         [TensorSpec("y", (None, 2), "float32")])
    with pytest.raises(ModelLoadError, match=r"the model is a subclassed Keras model \(Tiny\); TF-MOT clones models "
                                             r"layer by layer, which needs a Functional or Sequential model"):
        to_tf_keras(loaded, None)


@pytest.fixture(scope="module")
def unsupported(tmp_path_factory) -> dict[str, Path]:
    from tfopt import _tf

    K = _tf.tf_keras()
    _tf.seed_everything(0)
    inp = K.Input((8,), name="features")
    h = K.layers.LayerNormalization(name="norm")(K.layers.Dense(16, activation="relu", name="hidden")(inp))
    h = K.layers.Lambda(lambda t: t * 2.0, name="double")(h)
    model = K.Model(inp, K.layers.Dense(3, activation="softmax", name="probs")(h), name="model")
    d = tmp_path_factory.mktemp("unsupported")
    model.save(d / "u.h5")
    rng = np.random.default_rng(2)
    x, y = rng.normal(size=(300, 8)).astype(np.float32), rng.integers(0, 3, 300)
    np.savez(d / "u.npz", x_train=x[:200], y_train=y[:200], x_test=x[200:], y_test=y[200:])
    return {"h5": d / "u.h5", "npz": d / "u.npz", "dir": d}


UNSUPPORTED_QAT = (
    "Error: qat: neither TF-MOT nor tfopt can quantize (QAT) 1 layer(s) of model 'model': 'double' (Lambda: not in "
    "TF-MOT's 8-bit quantize registry (and no layout transform covers it); a Lambda layer runs arbitrary Python: "
    "neither TF-MOT nor tfopt can tell which int8 ops it becomes) (pass --skip-unsupported to keep them in float and "
    "quantize the rest (int8 may then need --allow-float-fallback))"
)  # the LayerNormalization gets tfopt's own output QuantizeConfig


def test_unsupported_layers_are_all_listed_with_exit_1(cli, unsupported):
    before = sha256(unsupported["h5"])
    result = cli("convert", unsupported["h5"], "--data", unsupported["npz"], "--qat", "--epochs", "1", "--min-steps", "0",
                 "-o", unsupported["dir"] / "u.tflite")
    assert result.exit_code == 1
    assert result.stderr.strip().splitlines()[-1] == UNSUPPORTED_QAT
    assert "Traceback" not in result.stderr
    assert sha256(unsupported["h5"]) == before and not (unsupported["dir"] / "u.tflite").exists()


def test_skip_unsupported_applies_to_the_rest_and_reports_skipped(cli, unsupported):
    result = cli("convert", unsupported["h5"], "--data", unsupported["npz"], "--qat", "--skip-unsupported", "--min-steps", "0",
                 "--allow-float-fallback", "--epochs", "1", "--batch-size", "50", "--json", "--max-accuracy-drop", "1", "--max-f1-drop", "1",
                 "--min-agreement", "0", "-o", unsupported["dir"] / "u.tflite")
    assert result.exit_code == 0, result.stderr
    assert result.stderr == ""  # --json: no progress, no summary
    report = json.loads(result.stdout)
    (stage,) = report["stages"]
    assert [(s["name"], s["class"]) for s in stage["skipped_layers"]] == [("double", "Lambda")]
    assert [(s["name"], s["class"]) for s in stage["own_quantize_configs"]] == [("norm", "LayerNormalization")]
    assert report["recipe"]["train"]["skip_unsupported"] is True
    assert report["recipe"]["convert"]["quantize"] == "int8"  # --qat implies int8
    assert kernels(stage)["hidden"]["dtype"] == "int8"


def test_progress_reports_each_epoch_on_stderr(cli, cnn, tmp_path):
    result = cli("convert", cnn["h5"], "--data", cnn["npz"], "--prune", "0.5", "--epochs", "2", "--min-steps", "0",
                 "-o", tmp_path / "p.tflite")
    assert result.exit_code == 0, result.stderr
    assert "… prune: epoch 1/2, loss " in result.stderr and "… prune: epoch 2/2, loss " in result.stderr


def test_qat_with_a_float_mode_is_a_usage_error(cli, cnn):
    result = cli("convert", cnn["h5"], "--data", cnn["npz"], "--qat", "--quantize", "float16")
    assert result.exit_code == 2
    assert result.stderr.strip() == (
        "Error: --quantize: got 'float16', expected 'int8' with a qat stage (QAT trains for int8)"
    )


def test_bad_prune_block_and_2_4_sparsity_are_usage_errors(cli, cnn):
    bad = cli("convert", cnn["h5"], "--data", cnn["npz"], "--prune", "0.5", "--prune-block", "4")
    assert bad.exit_code == 2 and "got '4', expected RxC with positive integers, e.g. 1x4" in bad.stderr
    nm = cli("convert", cnn["h5"], "--data", cnn["npz"], "--prune", "0.8", "--prune-pattern", "2:4")
    assert nm.exit_code == 2
    assert "Error: --prune: got 0.8, expected 0.5 with pattern '2:4' (2 of every 4 weights)" in nm.stderr


def _legacy_h5(path: Path, x: np.ndarray, y: np.ndarray) -> Path:
    """A Keras 2.2-style .h5: legacy auto names (dense_1…), no InputLayer, batch_input_shape on a layer."""
    import h5py

    from tfopt import _tf

    K = _tf.tf_keras()
    _tf.seed_everything(0)
    model = K.Sequential([K.Input((8,)), K.layers.Dense(16, activation="relu", name="dense_1"),
                          K.layers.Dense(3, activation="softmax", name="dense_2")], name="sequential_1")
    model.compile("adam", "sparse_categorical_crossentropy")
    model.fit(x, y, epochs=10, verbose=0)
    model.save(path, include_optimizer=False)
    with h5py.File(path, "r+") as f:
        config = json.loads(f.attrs["model_config"])
        layers = config["config"]["layers"]
        first = layers.pop(0)
        layers[0]["config"]["batch_input_shape"] = first["config"]["batch_input_shape"]
        f.attrs["model_config"] = json.dumps(config).encode()
        f.attrs["keras_version"] = b"2.2.4"
        f.attrs["backend"] = b"tensorflow"
    return path


def test_legacy_named_h5_goes_through_prune_cluster_and_qat(tmp_path):
    rng = np.random.default_rng(3)
    centers = rng.normal(0, 3, (3, 8))
    y = rng.integers(0, 3, 400)
    x = (centers[y] + rng.normal(0, 1, (400, 8))).astype(np.float32)
    np.savez(tmp_path / "d.npz", x_train=x[:300], y_train=y[:300], x_test=x[300:], y_test=y[300:])
    model = _legacy_h5(tmp_path / "legacy.h5", x[:300], y[:300])
    stages = [{"kind": "prune", "sparsity": 0.5}, {"kind": "cluster", "clusters": 4}, {"kind": "qat"}]
    report = run_stages(model, tmp_path / "d.npz", stages, quantize="int8")
    assert report["model"]["keras_version"] == "2.2.4"
    final = report["stages"][-1]["exported_output"]
    assert set(final["layers"]) == {"dense_1", "dense_2"}
    assert all(k["max_unique_per_channel"] <= 4 for k in final["layers"].values())
    assert report["verification"]["outputs"][0]["name"] == "dense_2"


@pytest.mark.slow
def test_mirrored_strategy_on_two_logical_cpus(cnn, tmp_path):
    """Logical devices must be configured before TensorFlow initialises: run in a fresh interpreter."""
    script = textwrap.dedent(f"""
        import json
        from tfopt import _tf
        tf = _tf.tf()
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
        from tfopt.pipeline import run
        from tfopt.recipe import from_dict
        report = run(from_dict({{
            "model": {{"path": {str(cnn["h5"])!r}}}, "data": {{"path": {str(cnn["npz"])!r}}},
            "stages": [{{"kind": "prune", "sparsity": 0.6}}, {{"kind": "qat"}}],
            "train": {{"epochs": 1, "min_steps": 0, "batch_size": 32, "learning_rate": 1e-3, "strategy": "mirrored"}},
            "convert": {{"quantize": "int8"}}, "output": {{"tflite": {str(tmp_path / "m.tflite")!r}}}}}))
        print(json.dumps(report.to_dict()["stages"]))
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    prune, qat = json.loads(proc.stdout.strip().splitlines()[-1])
    assert prune["notes"][0] == "mirrored strategy over 2 device(s): /device:CPU:0, /device:CPU:1"
    assert abs(qat["exported_output"]["kernel_sparsity"] - 0.6) <= 0.02


def test_labels_that_do_not_fit_the_outputs_are_a_data_error(tiny, tmp_path):
    from tfopt.errors import DataError

    with np.load(tiny["npz"]) as z:
        np.savez(tmp_path / "bad.npz", x_train=z["x_train"], y_train=np.full(len(z["y_train"]), 7),
                 x_test=z["x_test"], y_test=z["y_test"])  # fmt: skip
    with pytest.raises(DataError, match=r"^prune: fine-tuning failed on the training data \(InvalidArgumentError: "):
        run_stages(tiny["h5"], tmp_path / "bad.npz", [{"kind": "prune", "sparsity": 0.5}], out=tmp_path / "o.tflite")
    assert not (tmp_path / "o.tflite").exists()
