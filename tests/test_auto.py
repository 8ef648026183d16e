"""``--quantize auto`` and ``tfopt analyze`` on a model with one deliberately sensitive layer (tests/auto_models.py):
full int8 misses the gate, auto keeps exactly that layer in float and passes, `tfopt verify` agrees, and the
analysis ranks that layer first."""

from __future__ import annotations

import json

import pytest

import auto_models
from tfopt.auto import fewest_float_layers, margin


@pytest.fixture(scope="module")
def sensitive(tmp_path_factory):
    return auto_models.sensitive_cnn(tmp_path_factory.mktemp("auto"))


def test_auto_keeps_the_sensitive_layer_in_float_and_the_written_file_verifies(cli, sensitive, tmp_path):
    out, report = tmp_path / "s.tflite", tmp_path / "s.json"
    result = cli("convert", sensitive["model"], "--data", sensitive["data"], "--quantize", "auto", "--allow-slower",
                 "-o", out, "--report", report)
    assert result.exit_code == 0, result.stderr
    doc = json.loads(report.read_text())
    auto = doc["auto"]
    assert auto["full_int8"]["passed"] is False and auto["full_int8"]["failures"][0].startswith(
        "output 'probs' (classification): top-1 agreement 0.9")
    assert auto["chosen"]["float_layers"] == ["sep_sensitive"] and auto["chosen"]["passed"] is True
    assert 0.6 < auto["chosen"]["int8_mac_share"] < 0.8 and auto["chosen"]["bytes"] < 0.4 * auto["float32"]["bytes"]
    assert list(auto["kept_in_float"]) == ["sep_sensitive"]
    assert auto["kept_in_float"]["sep_sensitive"].startswith("sensitivity rank 1: alone in float it moves agreement")
    assert doc["analysis"]["layers"][0]["layer"] == "sep_sensitive" and doc["ok"] is True
    assert "kept in float:" in result.stderr and "auto: int8, 1 layer(s) float" in result.stderr
    verified = cli("verify", out, "--reference", sensitive["model"], "--data", sensitive["data"])
    assert verified.exit_code == 0, verified.stderr


def test_analyze_ranks_the_sensitive_layer_first(cli, sensitive):
    result = cli("analyze", sensitive["model"], "--data", sensitive["data"], "--eval-samples", "200", "--json")
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    layers = doc["layers"]
    assert [r["rank"] for r in layers] == list(range(1, len(layers) + 1))
    top = layers[0]
    assert top["layer"] == "sep_sensitive" and top["ops"] == "DEPTHWISE_CONV_2D,CONV_2D"
    assert top["sqnr_gain_db"] > 10 and all(r["sqnr_gain_db"] < 1 for r in layers[1:])
    assert top["rmse_scale"] > max(r["rmse_scale"] for r in layers[1:]) and doc["full_int8"]["passed"] is False
    assert {r["layer"] for r in layers} >= {"conv1", "conv3", "fc1", "probs"}


def test_fewest_float_layers_gallops_bisects_and_prunes():
    calls = []

    def passes(layers):
        calls.append(tuple(layers))
        return {"b", "e"} <= set(layers)

    assert fewest_float_layers(list("abcdefgh"), passes) == ["b", "e"]
    assert calls[:5] == [tuple("abcdefgh"), ("a",), ("a", "b"), tuple("abcd"), tuple("abcdef")]  # bisect 4..8
    assert fewest_float_layers(list("abc"), lambda layers: False) is None


def test_margin_is_the_worst_relative_gate_room():
    from tfopt.verify import Gate, OutputResult, VerifyResult

    gates = [Gate("agreement", 0.97, 0.95, "d"), Gate("accuracy_drop", 0.01, 0.005, "d")]
    result = VerifyResult(10, [OutputResult("p", None, True, {}, gates)])
    assert margin(result) == pytest.approx((0.95 - 0.97) / 0.97)


def test_an_int8_miss_reports_the_per_layer_table(cli, sensitive, tmp_path):
    report = tmp_path / "i8.json"
    result = cli("convert", sensitive["model"], "--data", sensitive["data"], "--quantize", "int8",
                 "-o", tmp_path / "i8.tflite", "--report", report)
    assert result.exit_code == 3
    doc = json.loads(report.read_text())
    assert doc["analysis"]["layers"][0]["layer"] == "sep_sensitive" and "auto" not in doc
    assert "int8 missed a gate; the layer whose int8 error moves the outputs most is 'sep_sensitive' (per-layer " \
           "table above): --quantize auto keeps the layers the gates need in float" in doc["notes"]
    assert "per-layer int8 error (ranked by the effect of keeping only that layer in float):" in result.stderr


def test_auto_exits_3_naming_the_closest_when_nothing_meets_the_budget(cli, sensitive, tmp_path):
    report = tmp_path / "x.json"
    result = cli("convert", sensitive["model"], "--data", sensitive["data"], "--quantize", "auto", "--min-sqnr", "400",
                 "-o", tmp_path / "x.tflite", "--report", report)
    assert result.exit_code == 3 and not (tmp_path / "x.tflite").exists()
    auto = json.loads(report.read_text())["auto"]
    closest = auto["closest"]
    assert auto["chosen"] is None and closest["passed"] is False and closest["margin"] < 0
    assert closest["margin"] == max(c["margin"] for c in [auto["float32"], *auto["candidates"]])
    assert f"closest: {closest['label']}, its worst gate missed by " in result.stderr
    assert (tmp_path / "x.failed.tflite").is_file()


def test_objective_and_allow_slower_belong_to_auto():
    from tfopt import from_dict
    from tfopt.errors import RecipeError

    with pytest.raises(RecipeError) as e:
        from_dict({"model": {"path": "m.h5"}, "data": {"path": "d.npz"},
                   "convert": {"quantize": "int8", "allow_slower": True}})
    assert "convert.objective / convert.allow_slower: got them with quantize = 'int8', expected quantize = 'auto' " \
           "(they steer its search)" in str(e.value)
    r = from_dict({"model": {"path": "m.h5"}, "data": {"path": "d.npz"},
                   "convert": {"quantize": "auto", "objective": "latency", "allow_slower": True}})
    assert (r.mode.search, r.convert.objective, r.convert.allow_slower) == (True, "latency", True)
