"""Slimming: every layer kind rebuilds narrower with the outputs of the original whose removed channels are zeroed."""

from __future__ import annotations

import numpy as np
import pytest

import slim_models as builders
from conftest import SAMPLES
from tfopt import _tf
from tfopt.errors import SlimError
from tfopt.kgraph import read_graph
from tfopt.macs import count_macs, total_macs
from tfopt.stages.slim import apply_plan, plan_slim, slim, zero_removed_inputs


@pytest.fixture(params=["tf_keras", "keras3"])
def keras(request):
    """The Keras package a test builds its models with: tf_keras (Keras 2) and Keras 3."""
    return _tf.tf_keras() if request.param == "tf_keras" else _tf.keras3()


def _outputs(model, x) -> list[np.ndarray]:
    out = model(x, training=False)  # a direct call: predict() costs a traced function per model
    return [np.asarray(o) for o in (out if isinstance(out, (list, tuple)) else [out])]


def _io(model):
    return ([tuple(t.shape) for t in model.inputs], [tuple(t.shape) for t in model.outputs])


def assert_equivalent(model, plan, new_model, x) -> None:
    """Same I/O shapes; the slim model == the original with removed channels zeroed (to 1e-5); zeroing mattered."""
    assert _io(new_model) == _io(model)
    zeroed = zero_removed_inputs(model, plan)
    slim_out, ref_out, orig_out = _outputs(new_model, x), _outputs(zeroed, x), _outputs(model, x)
    for s, r in zip(slim_out, ref_out):
        np.testing.assert_allclose(s, r, rtol=1e-5, atol=1e-5)
    assert max(float(np.abs(o - r).max()) for o, r in zip(orig_out, ref_out)) > 1e-3  # not a vacuous check


@pytest.mark.parametrize("kind", sorted(builders.KINDS))
def test_every_layer_kind_rebuilds_equivalent(keras, kind):
    model = builders.KINDS[kind](keras)
    builders.randomize(model)
    plan = plan_slim(model, 0.5)
    new_model = apply_plan(model, plan)
    assert type(new_model).__module__.split(".")[0] == type(model).__module__.split(".")[0]
    assert new_model.count_params() < model.count_params()
    assert any(c.after < c.before for c in plan.report.channels)
    assert plan.report.unsupported == []
    assert_equivalent(model, plan, new_model, builders.sample_inputs(model))


def test_residual_branches_keep_the_same_channels(keras):
    plan = plan_slim(_random(builders.residual(keras)), 0.5)
    masks = [plan.outputs[n] for n in ("stem", "branch1", "branch2", "branch3", "branch4")]
    assert all((m == masks[0]).all() for m in masks) and masks[0].sum() == 4
    assert (plan.inputs["head"] == masks[0]).all()


def test_concatenate_slices_at_offsets(keras):
    plan = plan_slim(_random(builders.concat(keras)), 0.5)
    expected = np.concatenate([plan.outputs["a"], plan.outputs["b"], plan.outputs["c"]])
    assert (plan.inputs["after"] == expected).all()
    out = np.concatenate([plan.outputs["after"], plan.outputs["d"]])
    assert (plan.inputs["out"] == np.tile(out, 8 * 8)).all()  # Flatten of the 8x8 concatenation


def test_flatten_dense_rows_follow_every_position(keras):
    plan = plan_slim(_random(builders.flatten_dense(keras)), 0.5)
    assert (plan.inputs["d1"] == np.tile(plan.outputs["c1"], 4 * 4)).all()
    assert plan.inputs["d1"].sum() == 16 * 4


def test_shared_layer_reads_the_same_channels_at_every_call(keras):
    plan = plan_slim(_random(builders.shared_layer(keras)), 0.5)
    assert (plan.outputs["a"] == plan.outputs["b"]).all()


def test_importance_is_kernel_l1_or_the_following_batchnorm_gamma(keras):
    model = builders.batchnorm(keras)
    builders.randomize(model)
    conv, bn = model.get_layer("c1"), model.get_layer("bn1")
    kernel = conv.get_weights()[0]
    kernel *= np.arange(1, 9, dtype=np.float32)  # L1 grows with the filter index
    conv.set_weights([kernel])
    gamma, *rest = bn.get_weights()
    bn.set_weights([np.arange(8, 0, -1, dtype=np.float32), *rest])  # |gamma| falls with the filter index
    by_l1 = plan_slim(model, 0.5, importance="l1").outputs["c1"]
    by_gamma = plan_slim(model, 0.5).outputs["c1"]
    assert by_l1.tolist() == [False] * 4 + [True] * 4
    assert by_gamma.tolist() == [True] * 4 + [False] * 4


def test_per_layer_ratio_overrides_the_global_one(keras):
    model = _random(builders.conv2d(keras))
    _, report = slim(model, 0.5, {"c1": 0.75, "c2": 0.0})
    after = {c.name: c.after for c in report.channels}
    assert after == {"c1": 2, "c2": 6, "out": 4}
    assert report.per_layer == {"c1": 0.75, "c2": 0.0}


def test_round_to_keeps_multiples(keras):
    model = _random(builders.dense(keras))
    _, report = slim(model, 0.7, round_to=4)
    after = {c.name: c.after for c in report.channels}
    assert after == {"d1": 8, "d2": 4, "out": 4}  # 16*0.3 = 4.8 -> 5 -> 8; 12*0.3 = 3.6 -> 4


def test_unsupported_readers_freeze_their_channels_and_are_listed(keras):
    x = keras.Input((12, 12, 3), name="image")
    a = keras.layers.Conv2D(8, 3, name="a")(x)
    n = keras.layers.LayerNormalization(name="ln")(a)
    b = keras.layers.Conv2D(8, 3, name="b")(n)
    y = keras.layers.GlobalAveragePooling2D(name="gap")(b)
    model = _random(keras.Model(x, keras.layers.Dense(4, name="out")(y)))
    plan = plan_slim(model, 0.5)
    assert [(u.name, u.cls, u.reason) for u in plan.report.unsupported] == [
        ("ln", "LayerNormalization", "no channel rule for this layer")]
    left = {l.name: l.reason for l in plan.report.left_alone}
    assert left["a"] == "read by 'ln' (LayerNormalization: no channel rule for this layer)"
    assert plan.outputs["a"].all() and plan.outputs["b"].sum() == 4
    assert_equivalent(model, plan, apply_plan(model, plan), builders.sample_inputs(model))


def test_model_outputs_are_never_slimmed(keras):
    x = keras.Input((12, 12, 3), name="image")
    a = keras.layers.Conv2D(8, 3, name="a")(x)
    model = _random(keras.Model(x, [keras.layers.Conv2D(6, 3, name="seg")(a), a]))
    plan = plan_slim(model, 0.5)
    assert plan.outputs["seg"].all() and plan.outputs["a"].all()
    assert {l.name: l.reason for l in plan.report.left_alone} == {"seg": "model output 'seg'", "a": "model output 'a'"}


def test_bad_settings_raise_clear_errors(keras):
    model = builders.conv2d(keras)
    with pytest.raises(SlimError, match=r"^--slim \(stages\[slim\]\.ratio\): got 1\.0, expected 0 < R < 1"):
        slim(model, 1.0)
    with pytest.raises(SlimError, match=r"^--slim-layer \(stages\[slim\]\.layers\): got c1=1\.5, expected 0 <= R < 1$"):
        slim(model, 0.5, {"c1": 1.5})
    with pytest.raises(SlimError, match=r"^--slim-layer \(stages\[slim\]\.layers\): got flat, nope, expected a "
                                        r"slimmable layer of this model: c1, c2, out$"):
        slim(model, 0.5, {"nope": 0.5, "flat": 0.2})


def test_sample_cnn_half_channels_is_a_quarter_of_the_parameters():
    K, k3 = _tf.tf_keras(), _tf.keras3()
    for model in (K.models.load_model(f"{SAMPLES}/mnist_cnn.h5"), k3.models.load_model(f"{SAMPLES}/mnist_cnn.keras")):
        new_model, report = slim(model, 0.5)
        assert report.params_before == 108618 and report.params_after == 27562  # 0.254x <= 0.35x
        assert [(c.name, c.before, c.after) for c in report.channels] == [
            ("conv1", 16, 8), ("conv2", 32, 16), ("dense1", 128, 64), ("probs", 10, 10)]
        assert report.macs_ratio < 0.3
        assert [l.name for l in report.left_alone] == ["probs"]


def test_mobilenet_v2_residual_blocks_slim_equivalently():
    K = _tf.tf_keras()
    model = K.applications.MobileNetV2(alpha=0.35, weights=None, input_shape=(32, 32, 3), classes=10,
                                       classifier_activation=None)
    builders.randomize(model)
    plan = plan_slim(model, 0.5)
    new_model = apply_plan(model, plan)
    assert new_model.count_params() / model.count_params() < 0.35
    assert [l.name for l in plan.report.left_alone] == ["predictions"]
    # the inverted residual blocks of a stage share their output channels
    assert (plan.outputs["block_1_project"] == plan.outputs["block_2_project"]).all()
    assert_equivalent(model, plan, new_model, builders.sample_inputs(model, n=2))


def test_macs_count_convolutions_and_dense(keras):
    counts = count_macs(read_graph(builders.separable(keras)))
    assert counts == {
        "c1": 12 * 12 * 3 * 8,
        "sep": 10 * 10 * (9 * 16 + 16 * 10),
        "sep2": 8 * 8 * (9 * 10 + 10 * 6),
        "out": 6 * 4,
    }
    assert total_macs(builders.dense_3d(keras)) == 5 * 10 * 16 + 5 * 16 * 8 + 40 * 3


def _random(model):
    builders.randomize(model)
    return model


def test_ops_across_channels_freeze_what_they_read(keras):
    x = keras.Input((12, 12, 3), name="image")
    a = keras.layers.Conv2D(8, 3, name="a")(x)
    if keras is _tf.tf_keras():
        m = _tf.tf().reduce_mean(a, axis=-1, keepdims=True)
        why = "TensorFlow op math.reduce_mean: no channel rule"
    else:
        m = keras.ops.mean(a, axis=-1, keepdims=True)
        why = "Keras op Mean: no channel rule"
    b = keras.layers.Conv2D(8, 3, name="b")(keras.layers.Concatenate(name="cat")([a, m]))
    y = keras.layers.GlobalAveragePooling2D(name="gap")(b)
    model = _random(keras.Model(x, keras.layers.Dense(4, name="out")(y)))
    plan = plan_slim(model, 0.5)
    assert [u.reason for u in plan.report.unsupported] == [why]
    assert plan.outputs["a"].all() and plan.outputs["b"].sum() == 4
    assert_equivalent(model, plan, apply_plan(model, plan), builders.sample_inputs(model))


def test_a_nested_model_is_left_alone_with_the_reason(keras):
    inner = builders.depthwise(keras)
    x = keras.Input((12, 12, 3), name="outer_image")
    y = keras.layers.Dense(6, name="head")(inner(x))
    model = _random(keras.Model(x, keras.layers.Dense(3, name="final")(y)))
    plan = plan_slim(model, 0.5)
    assert [(u.name, u.reason) for u in plan.report.unsupported] == [
        (inner.name, "a nested model: its layers stay as they are (build the model flat to slim them)")]
    assert plan.outputs["head"].sum() == 3
    assert_equivalent(model, plan, apply_plan(model, plan), builders.sample_inputs(model))
