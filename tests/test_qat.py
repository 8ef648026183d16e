"""QAT on real CNNs: support decided by TF-MOT's own annotate + apply (layout transforms included), tfopt's own
QuantizeConfigs beyond it, legacy names, and the standard blocks through `--qat` to a verified int8 .tflite."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import zoo
from tfopt import _tf, from_dict
from tfopt.pipeline import run
from tfopt.stages import qat_configs, qat_prepare, qat_ranges
from tfopt.stages import qat_support as qs

TESTS = Path(__file__).resolve().parent
FAST = {"epochs": 1, "min_steps": 30, "batch_size": 32}


@pytest.fixture(autouse=True)
def fresh_names():
    """tf_keras' name counters at 0 for every test (TFOpLambda names are 'tf.math.multiply_<n>')."""
    _tf.tf_keras().backend.clear_session()
    _tf.seed_everything(0)


@pytest.fixture(scope="module")
def K():
    return _tf.tf_keras()


@pytest.fixture(scope="module")
def data():
    return zoo.data(600, 0)


def _registry_verdict(model) -> list[str]:
    """The layer-by-layer verdict tfopt had before: Default8BitQuantizeRegistry.supports(layer)."""
    supports = _tf.tfmot_supports()["quantize"]
    return [l.name for l in model.layers if type(l).__name__ != "InputLayer" and not supports(l)]


# ------------------------------------------------------------------ support, as TF-MOT decides it


@pytest.mark.parametrize("scheme", ["qat", "pqat", "cqat", "pcqat"])
def test_the_issues_bn_model_is_supported_by_every_scheme(K, scheme):
    model = zoo.bn_model(K)
    assert _registry_verdict(model) == ["bn1", "bn2"]  # what tfopt used to refuse
    assert qs.probe_qat(model, scheme) == []


@pytest.mark.parametrize("block", ["mobilenetv2_block", "xception_block", "resnet_basic_block", "layer_zoo"])
def test_standard_blocks_need_no_config_of_tfopts_but_prelu(K, block):
    model = zoo.BLOCKS[block](K)
    refusals = {r.name for r in qs.probe_qat(model)}
    assert refusals <= {"prelu"}  # PReLU is the one layer of the issue's list TF-MOT does not take
    _, info = qs.apply_qat(model)
    assert set(info.tfopt_configs) == refusals


def test_the_probe_collects_every_refusal_not_only_the_first(K):
    model = zoo.preact_resnet_block(K)
    with pytest.raises(RuntimeError, match="pre_bn1"):  # TF-MOT itself stops at the first
        _tf.tfmot().quantization.keras.quantize_model(model)
    refusals = qs.probe_qat(model)
    assert [(r.name, r.cls) for r in refusals] == [("pre_bn1", "BatchNormalization"),
                                                    ("post_bn", "BatchNormalization")]


def test_wrapper_build_failures_are_mapped_to_their_layers(K):
    inp = K.Input((8, 8, 3))
    x = K.layers.Conv2D(4, 3, activation="relu6", name="c6")(inp)
    x = K.layers.Activation("hard_sigmoid", name="hsig")(x)
    model = K.Model(inp, K.layers.Dense(2, name="out")(K.layers.Flatten()(x)))
    refusals = {r.name: r for r in qs.probe_qat(model)}
    assert set(refusals) == {"c6", "hsig"}
    assert "relu6" in refusals["c6"].reason and "hard_sigmoid" in refusals["hsig"].reason


def test_tfopt_configs_beyond_tfmot(K):
    expected = {
        "preact_resnet_block": {"pre_bn1": "output", "post_bn": "output"},
        "mobilenetv3_block": {"rescale": "output", "tf.__operators__.add": "output", "tf.math.multiply": "output",
                              "stem_hs_mul": "output", "tf.__operators__.add_1": "output",
                              "tf.math.multiply_1": "output", "se_mul": "output"},
        "efficientnet_lite_block": {"normalize": "output"},
        "layer_zoo": {"prelu": "output"},
    }
    for block, configs in expected.items():
        qat_model, info = qs.apply_qat(zoo.BLOCKS[block](K))
        assert {k: v["config"] for k, v in info.tfopt_configs.items()} == configs, block
        assert not info.skipped
        wrapped = {getattr(l, "layer", l).name: type(l).__name__ for l in qat_model.layers}
        assert all(wrapped[name] == "QuantizeWrapperV2" for name in configs), block


def test_single_tensor_op_layers_become_wrappable_and_compute_the_same(K):
    model = zoo.mobilenetv3_block(K)
    prepared, changes = qat_prepare.prepare(model)
    assert [c["layer"] for c in changes] == ["tf.__operators__.add", "tf.math.multiply", "tf.__operators__.add_1",
                                             "tf.math.multiply_1"]
    x = np.random.default_rng(0).normal(size=(4,) + zoo.SHAPE).astype("float32")
    np.testing.assert_allclose(prepared.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-6)


def _refused_model(K):
    inp = K.Input((8, 8, 3), name="image")
    a = K.layers.Conv2D(4, 3, name="a")(inp)
    b = K.layers.Conv2D(4, 3, name="b")(inp)
    x = _tf.tf().concat([a, b], axis=-1)  # a TFOpLambda with two tensor inputs
    x = K.layers.Lambda(lambda t: t * 2.0, name="double")(x)
    x = K.layers.ELU(name="elu")(x)
    return K.Model(inp, K.layers.Dense(2, name="out")(K.layers.Flatten(name="flat")(x)))


def test_refusals_name_layer_class_and_reason_and_skipping_leaves_them_float(K):
    with pytest.raises(qs.QatUnsupportedError) as e:
        qs.apply_qat(_refused_model(K))
    found = {r.name: r for r in e.value.refusals}
    assert set(found) == {"tf.concat", "double", "elu"}
    assert found["tf.concat"].cls == "TFOpLambda" and "Concatenate" in found["tf.concat"].reason
    assert found["double"].cls == "Lambda" and "arbitrary Python" in found["double"].reason
    assert found["elu"].cls == "ELU" and "float" in found["elu"].reason
    K.backend.clear_session()  # the same layer names again
    qat_model, info = qs.apply_qat(_refused_model(K), skip_unsupported=True)
    assert {r.name for r in info.skipped} == {"tf.concat", "double", "elu"}
    plain = {l.name for l in qat_model.layers if not type(l).__name__.startswith("Quantize")}
    assert {"tf.concat", "double", "elu"} <= plain and {"quant_a", "quant_b", "quant_out"} <= {
        l.name for l in qat_model.layers}


def test_a_separable_conv_with_relu6_is_split_and_keeps_its_name(K):
    inp = K.Input((8, 8, 3))
    model = K.Model(inp, K.layers.SeparableConv2D(4, 3, activation="relu6", name="sep")(inp))
    qat_model, info = qs.apply_qat(model)
    assert info.prepared and info.prepared[0]["layer"] == "sep"
    assert qat_model.layers[-1].name == "quant_sep"
    assert [type(getattr(l, "layer", l)).__name__ for l in qat_model.layers][-3:] == [
        "DepthwiseConv2D", "Conv2D", "Activation"]


def test_concatenate_inputs_keep_their_order(K):
    """TF-MOT's ModelTransformer reorders a Concatenate's inputs (model-optimization#1179): fixed in scope."""
    inp = K.Input(zoo.SHAPE)
    a = zoo.conv_bn(K, inp, 4, 3, "a")
    b = zoo.conv_bn(K, inp, 4, 3, "b", act="relu6")
    model = K.Model(inp, K.layers.Concatenate(name="cat")([a, b]))
    qat_model, _ = qs.apply_qat(model)
    nodes = [l for l in qat_model.get_config()["layers"] if l["name"] == "quant_cat"][0]["inbound_nodes"]
    assert [n[0] for n in nodes[0]] == ["quant_a_relu", "quant_b_relu6"]


def test_configs_serialize_in_qat_scope(K):
    qat_model, _ = qs.apply_qat(zoo.mobilenetv3_block(K))
    with qat_configs.qat_scope():
        clone = K.models.clone_model(qat_model)
    assert [l.name for l in clone.layers] == [l.name for l in qat_model.layers]


def test_range_calibration_replaces_the_initial_six_and_keeps_bn_statistics(K, data):
    x, _ = data
    model = zoo.trained(K, zoo.mobilenetv2_block)
    qat_model, _ = qs.apply_qat(model)
    assert any(v == (-6.0, 6.0) for v in qat_ranges.range_summary(qat_model).values())
    bn = {v.name: v.numpy().copy() for v in qat_model.weights if "moving_" in v.name}
    stats = qat_ranges.calibrate_ranges(qat_model, qat_ranges.batches_of(x[:400], 64, 4))
    assert stats["batches"] == 4 and stats["changed"] > 0
    assert not any(v == (-6.0, 6.0) for v in qat_ranges.range_summary(qat_model).values())
    for v in qat_model.weights:
        if v.name in bn:
            np.testing.assert_array_equal(v.numpy(), bn[v.name])


LEGACY_SCRIPT = """
import json, sys
sys.path.insert(0, {tests!r})
from tfopt import _tf
from tfopt.stages import qat_support
import legacy_bn_h5
K = _tf.tf_keras()
model = K.models.load_model({path!r}, compile=False)   # a fresh process: tf_keras' name counters at 0
out = {{"names": [l.name for l in model.layers]}}
try:
    _tf.tfmot().quantization.keras.quantize_model(model)
    out["raw"] = "ok"
except Exception as e:
    out["raw"] = type(e).__name__ + ": " + str(e).splitlines()[0]
qat_model, info = qat_support.apply_qat(model)
out["refused"] = [r.name for r in info.tfmot_refusals]
out["layers"] = [l.name for l in qat_model.layers]
print("RESULT" + json.dumps(out))
"""


def test_legacy_h5_names_would_collide_with_tfmots_and_are_reserved(tmp_path, data):
    """A Keras-2.2.4 .h5 mini-Xception: TF-MOT alone builds a wrong graph; tfopt's QAT works."""
    import legacy_bn_h5

    x, y = data
    path = legacy_bn_h5.write(tmp_path / "mini_xception.h5", x[:400], y[:400], epochs=1)
    script = LEGACY_SCRIPT.format(tests=str(TESTS), path=str(path))
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    line = [ln for ln in done.stdout.splitlines() if ln.startswith("RESULT")]
    assert line, done.stderr[-2000:]
    out = json.loads(line[0][len("RESULT"):])
    assert "conv2d_1" in out["names"] and "separable_conv2d_1" in out["names"]
    assert "incompatible shapes" in out["raw"]  # TF-MOT's SeparableConv split creates conv2d_1 ... again
    assert out["refused"] == [] and "quant_predictions" in out["layers"]


# ------------------------------------------------------------------ --qat end to end: verified int8


def _saved(K, builder, tmp_path: Path, name: str) -> tuple[Path, Path]:
    model = zoo.trained(K, builder)
    x, y = zoo.data(600, 1)
    model.save(tmp_path / f"{name}.h5", include_optimizer=False)
    np.savez(tmp_path / f"{name}.npz", x_train=x[:400], y_train=y[:400], x_test=x[400:], y_test=y[400:])
    return tmp_path / f"{name}.h5", tmp_path / f"{name}.npz"


def qat_run(model: Path, data: Path, out: Path, stages=({"kind": "qat"},), **extra):
    return run(from_dict({"model": {"path": str(model)}, "data": {"path": str(data), "calibration_samples": 100},
                          "stages": list(stages), "train": {**FAST, **extra.pop("train", {})},
                          "output": {"tflite": str(out)}, **extra}))


def _assert_verified_int8(report):
    assert report.ok, report.failures
    assert set(report.io_types.values()) == {"int8"}
    assert not any("left in float" in n for n in report.notes)
    (out,) = report.verification.outputs
    assert out.metrics["accuracy_reference"] > 0.8 and out.metrics["agreement"] >= 0.9


@pytest.mark.slow
@pytest.mark.parametrize("block", ["mobilenetv2_block", "xception_block", "resnet_basic_block"])
@pytest.mark.parametrize("prune", [False, True], ids=["qat", "prune50-qat"])
def test_standard_blocks_qat_to_a_verified_int8_tflite(K, tmp_path, block, prune):
    model, data = _saved(K, zoo.BLOCKS[block], tmp_path, block)
    stages = ([{"kind": "prune", "sparsity": 0.5}] if prune else []) + [{"kind": "qat"}]
    report = qat_run(model, data, tmp_path / "o.tflite", stages)
    _assert_verified_int8(report)
    assert report.stages[-1].settings["scheme"] == ("PQAT" if prune else "QAT")
    assert report.stages[-1].own_configs == []  # TF-MOT takes these blocks whole


def test_the_issues_bn_model_goes_through_qat_from_the_command_line(cli, K, tmp_path):
    model, data = _saved(K, zoo.bn_model, tmp_path, "bn")
    result = cli("convert", model, "--qat", "--data", data, "--epochs", "1", "--min-steps", "20", "-o",
                 tmp_path / "bn.tflite", "--json")
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["io_types"] == {"image": "int8", "predictions": "int8"} and doc["stages"][0]["scheme"] == "QAT"


def test_beyond_tfmot_blocks_get_tfopts_configs_listed_in_the_report(K, tmp_path):
    model, data = _saved(K, zoo.preact_resnet_block, tmp_path, "preact")
    report = qat_run(model, data, tmp_path / "o.tflite")
    _assert_verified_int8(report)
    assert {c.name: c.reason.split(":")[0] for c in report.stages[0].own_configs} == {
        "pre_bn1": "output", "post_bn": "output"}


def test_a_keras3_functional_block_through_the_bridge(tmp_path):
    keras = _tf.keras3()
    keras.utils.set_random_seed(0)
    x, y = zoo.data(600, 0)
    k3 = zoo.xception_block(keras)
    k3.compile(keras.optimizers.Adam(3e-3), "sparse_categorical_crossentropy")
    k3.fit(x, y, batch_size=32, epochs=4, verbose=0)
    zoo.settle_batchnorm(keras, k3, x)
    k3.save(tmp_path / "xception_block.keras")
    np.savez(tmp_path / "d.npz", x_train=x[:400], y_train=y[:400], x_test=x[400:], y_test=y[400:])
    report = qat_run(tmp_path / "xception_block.keras", tmp_path / "d.npz", tmp_path / "o.tflite")
    assert report.stages[0].bridge["bridge"] == "Keras 3 -> tf_keras"
    _assert_verified_int8(report)


def test_a_legacy_named_h5_with_batchnorm_goes_through_qat(tmp_path, data):
    import legacy_bn_h5

    x, y = data
    path = legacy_bn_h5.write(tmp_path / "legacy.h5", x[:400], y[:400], epochs=2)
    np.savez(tmp_path / "d.npz", x_train=x[:400], y_train=y[:400], x_test=x[400:], y_test=y[400:])
    report = qat_run(path, tmp_path / "d.npz", tmp_path / "o.tflite",
                     verify={"max_accuracy_drop": 0.05, "max_f1_drop": 0.05})
    assert report.model.keras_version == "2.2.4"
    assert report.ok, report.failures
    assert report.stages[0].notes[-1].startswith("qat: activation ranges calibrated")


def test_inspect_reports_qat_support_the_way_the_run_behaves(cli, K, tmp_path):
    from tfopt.inspection import inspect_path

    preact, data = _saved(K, zoo.preact_resnet_block, tmp_path, "preact")
    rows = {r.name: r for r in inspect_path(preact, int8_check=False).layers}
    assert rows["pre_bn1"].stages["quantize"] is True and "tfopt's output config" in rows["pre_bn1"].support_notes[
        "quantize"]
    refused = _refused_model(K)
    refused.save(tmp_path / "refused.h5")
    np.savez(tmp_path / "r.npz", x=np.random.default_rng(0).random((200, 8, 8, 3), np.float32))
    inspected = {r.name for r in inspect_path(tmp_path / "refused.h5", int8_check=False).layers
                 if r.stages.get("quantize") is False}
    result = cli("convert", tmp_path / "refused.h5", "--qat", "--data", tmp_path / "r.npz", "--min-steps", "5",
                 "-o", tmp_path / "r.tflite")
    assert result.exit_code == 1
    line = result.stderr.strip().splitlines()[-1]
    assert line.startswith("Error: qat: neither TF-MOT nor tfopt can quantize (QAT) 3 layer(s) of model ")
    assert {name for name in ("tf.concat", "double", "elu") if f"'{name}' (" in line} == inspected


@pytest.mark.slow
def test_mobilenetv2_is_qat_wrapped_and_converted(K, tmp_path):
    """A standard architecture end to end: MobileNetV2(alpha=0.35, 96x96), random weights, QAT → int8."""
    from tfopt.convert import ConvertConfig, convert
    from tfopt.data import random_calibration
    from tfopt.models import LoadedModel
    from tfopt.modes import MODES
    from tfopt.shapes import TensorSpec

    model = K.applications.MobileNetV2(alpha=0.35, weights=None, input_shape=(96, 96, 3), classes=10)
    qat_model, info = qs.apply_qat(model)
    assert not info.skipped and not info.tfopt_configs
    qat_model.output_names = ["predictions"]
    loaded = LoadedModel(tmp_path / "m.h5", "h5", "2.21.0", qat_model, [TensorSpec("image", (None, 96, 96, 3), "float32")],
                         [TensorSpec("predictions", (None, 10), "float32")])
    result = convert(loaded, ConvertConfig(MODES["int8"]), random_calibration(loaded.inputs, 4, 0))
    assert result.tflite.io_types() == {"image": "int8", "predictions": "int8"} and not result.tflite.float_ops()
