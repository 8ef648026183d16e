"""Metrics per output kind, gates and their messages, (de)quantization of the runner."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tfopt.errors import VerificationError
from tfopt.kinds import Kind, OutputKind, default_gates
from tfopt.modes import MODES
from tfopt.tflite.runner import dequantize_output, quantize_input
from tfopt.verify import Gate, GateSettings, OutputResult, macro_f1, output_metrics, require_gates

CLS = OutputKind(Kind.CLASSIFICATION, "test")
BIN = OutputKind(Kind.BINARY, "test")
REG = OutputKind(Kind.REGRESSION, "test")


def scored(name, kind, ref, out, labels=None, settings=None):
    settings = settings or GateSettings(MODES["int8"])
    metrics = output_metrics(ref, out, labels, kind, settings.threshold)
    gates = [Gate(m, limit, metrics.get(m), src) for m, limit, src in settings.for_output(name, kind.kind, labels is not None)]
    return OutputResult(name, kind, labels is not None, metrics, gates)


def test_identical_outputs_are_perfect():
    ref = np.random.default_rng(0).random((20, 5))
    m = output_metrics(ref, ref.copy(), np.arange(20) % 5, CLS)
    assert m["agreement"] == 1.0 and m["accuracy_drop"] == 0.0 and m["f1_drop"] == 0.0
    assert m["max_abs_error"] == 0 and m["sqnr_db"] == math.inf and m["cosine"] == 1.0


def test_accuracy_agreement_f1_and_sqnr_numbers():
    ref = np.eye(4)[[0, 1, 2, 3, 0, 1, 2, 3]]
    out = ref.copy()
    out[0] = [0, 1, 0, 0]  # one flip
    labels = np.array([0, 1, 2, 3, 0, 1, 2, 0])  # reference gets 7/8 right
    m = output_metrics(ref, out, labels, CLS)
    assert m["agreement"] == 7 / 8
    assert m["accuracy_reference"] == 7 / 8 and m["accuracy"] == 6 / 8
    assert math.isclose(m["accuracy_drop"], 1 / 8)
    assert math.isclose(m["sqnr_db"], 10 * math.log10(8 / 2))
    assert m["f1_drop"] > 0 and "top5_agreement" not in m  # fewer than 10 classes


def test_macro_f1_matches_a_hand_count():
    truth, pred = np.array([0, 0, 1, 1, 2]), np.array([0, 1, 1, 1, 0])
    f1, precision, recall = macro_f1(truth, pred, 3)
    # class 0: p=1/2 r=1/2; class 1: p=2/3 r=1; class 2: p=0 r=0
    assert math.isclose(precision, (0.5 + 2 / 3 + 0) / 3) and math.isclose(recall, (0.5 + 1 + 0) / 3)
    assert math.isclose(f1, (0.5 + 0.8 + 0) / 3)


def test_top5_agreement_with_ten_or_more_classes():
    rng = np.random.default_rng(0)
    ref = rng.random((50, 12))
    out = ref + rng.normal(0, 0.05, ref.shape)
    m = output_metrics(ref, out, None, CLS)
    assert m["top5_agreement"] >= m["agreement"] and m["top5_agreement"] > 0.9


def test_one_hot_labels_and_per_frame_classification():
    ref = np.eye(3)[[0, 1, 2]]
    assert output_metrics(ref, ref, np.eye(3), CLS)["accuracy_reference"] == 1.0
    frames = np.eye(3)[np.random.default_rng(0).integers(0, 3, (4, 6))]  # (4 samples, 6 frames, 3 classes)
    m = output_metrics(frames, frames, frames.argmax(-1), CLS)
    assert m["agreement"] == 1.0 and m["accuracy"] == 1.0


def test_binary_decisions_at_a_threshold_and_f1_of_positives():
    ref = np.array([[0.9], [0.8], [0.2], [0.1], [0.6]])
    out = np.array([[0.9], [0.4], [0.2], [0.1], [0.7]])  # one decision flipped
    m = output_metrics(ref, out, np.array([1, 1, 0, 0, 0]), BIN)
    assert m["agreement"] == 4 / 5
    assert m["accuracy_reference"] == 4 / 5 and m["accuracy"] == 3 / 5
    assert math.isclose(m["f1_reference"], 0.8) and math.isclose(m["f1"], 0.5)
    assert output_metrics(ref, out, None, BIN, threshold=0.3)["agreement"] == 1.0


def test_logit_outputs_are_thresholded_as_probabilities():
    logits = OutputKind(Kind.BINARY, "test", from_logits=True)
    ref, out = np.array([[2.0], [-2.0]]), np.array([[0.1], [-0.1]])  # same side of 0 = same side of p=0.5
    assert output_metrics(ref, out, None, logits)["agreement"] == 1.0


def test_regression_metrics():
    reg = output_metrics(np.ones((5, 1)), np.full((5, 1), 1.1), None, REG)
    assert math.isclose(reg["max_abs_error"], 0.1, rel_tol=1e-9) and math.isclose(reg["sqnr_db"], 20.0)
    assert math.isclose(reg["rel_l2_error"], 0.1) and "agreement" not in reg
    spread = output_metrics(np.array([[0.0], [2.0]]), np.array([[0.5], [2.0]]), None, REG)
    assert math.isclose(spread["max_abs_error_std"], 0.5)


def test_every_missed_gate_is_reported_with_kind_value_and_limit():
    ref = np.eye(4)[[0, 1, 2, 3]]
    out = np.eye(4)[[1, 1, 2, 3]]
    settings = GateSettings(MODES["int8"], limits={"sqnr_db": {"*": 10.0}})
    result = scored("probs", CLS, ref, out, np.array([0, 1, 2, 3]), settings)
    assert result.failures() == [
        "output 'probs' (classification): top-1 agreement 0.7500 < 0.97 (default for int8)",
        "output 'probs' (classification): accuracy drop 25.00 points (reference 100.00%, tflite 75.00%) > 1 points "
        "(default for int8)",
        "output 'probs' (classification): SQNR 3.0 dB < 10 dB (--min-sqnr)",
    ]


def test_a_drop_exactly_at_the_limit_passes_despite_float_noise():
    """948 then 938 right of 1000: 0.948 - 0.938 = 0.010000000000000009, which is 1 point, not more."""
    truth = np.arange(1000) % 4
    ref_pred, out_pred = truth.copy(), truth.copy()
    ref_pred[:52], out_pred[:62] = (truth[:52] + 1) % 4, (truth[:62] + 1) % 4
    result = scored("probs", CLS, np.eye(4)[ref_pred], np.eye(4)[out_pred], truth,
                    GateSettings(MODES["int8"], limits={"agreement": {"*": 0.99}}))
    drop = next(g for g in result.gates if g.metric == "accuracy_drop")
    assert drop.value > 0.01 and drop.value == pytest.approx(0.01) and drop.passed
    agreement = next(g for g in result.gates if g.metric == "agreement")
    assert agreement.value == pytest.approx(0.99) and agreement.passed
    assert not Gate("accuracy_drop", 0.01, 0.011, "x").passed and not Gate("agreement", 0.99, 0.989, "x").passed


def test_regression_heads_are_not_judged_by_argmax():
    rng = np.random.default_rng(0)
    ref = rng.normal(0, 1, (100, 4))
    out = ref + rng.normal(0, 0.01, ref.shape)  # 40 dB
    result = scored("boxes", REG, ref, out)
    assert [g.metric for g in result.gates] == ["sqnr_db", "cosine"] and result.failures() == []
    assert "agreement" not in result.metrics


def test_per_output_limits_win_over_global_ones():
    settings = GateSettings(MODES["int8"], limits={"agreement": {"*": 0.9, "probs": 0.99}})
    assert ("agreement", 0.99, "--min-agreement probs=") in settings.for_output("probs", Kind.CLASSIFICATION, False)
    assert ("agreement", 0.9, "--min-agreement") in settings.for_output("other", Kind.CLASSIFICATION, False)
    # a global agreement limit does not apply to a regression head
    assert all(m != "agreement" for m, _, _ in settings.for_output("boxes", Kind.REGRESSION, False))


@pytest.mark.parametrize("mode", list(MODES))
@pytest.mark.parametrize("kind", list(Kind))
@pytest.mark.parametrize("finetuned", [False, True])
@pytest.mark.parametrize("labels", [False, True])
def test_every_default_combination_gates_something_evaluable(mode, kind, finetuned, labels):
    gates = default_gates(kind, MODES[mode], finetuned, labels)
    evaluable = [m for m in gates if labels or m not in ("accuracy_drop", "f1_drop")]
    assert evaluable, (mode, kind, finetuned, labels)


def test_finetuned_with_labels_gates_the_drops_and_reports_agreement():
    gates = default_gates(Kind.CLASSIFICATION, MODES["int8"], finetuned=True, labels=True)
    assert set(gates) == {"accuracy_drop", "f1_drop"}
    assert default_gates(Kind.CLASSIFICATION, MODES["none"], True, True)["accuracy_drop"] == 0.01


def test_no_output_passes_with_zero_evaluated_gates():
    ref = np.eye(3)[[0, 1, 2]]
    unevaluable = [Gate("accuracy_drop", 0.01, None, "--max-accuracy-drop")]  # needs labels, none given
    output = OutputResult("probs", CLS, False, output_metrics(ref, ref, None, CLS), unevaluable)
    assert output.failures() == []  # nothing failed ...
    with pytest.raises(VerificationError, match=r"^output 'probs' \(classification\): no verification gate could be "
                                                r"evaluated \(gates: --max-accuracy-drop \(needs labels\)\)") as e:
        require_gates([output])  # ... and still never a pass
    assert e.value.exit_code == 1


def test_nan_outputs_fail_their_gates():
    ref = np.random.default_rng(0).random((10, 2))
    result = scored("boxes", REG, ref, np.full_like(ref, np.nan))
    assert len(result.failures()) == 2


def test_quantize_uses_scale_and_zero_point_and_saturates():
    detail = {"dtype": np.int8, "quantization": (0.5, -3)}
    q = quantize_input(np.array([0.0, 1.0, 1000.0, -1000.0]), detail)
    assert q.tolist() == [-3, -1, 127, -128] and q.dtype == np.int8
    assert dequantize_output(q[:2], detail).tolist() == [0.0, 1.0]
    assert quantize_input(np.array([1.5]), {"dtype": np.float32, "quantization": (0.0, 0)}).dtype == np.float32
