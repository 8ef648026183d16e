"""Metrics, thresholds and (de)quantization of the verifier."""

from __future__ import annotations

import math

import numpy as np

from tfopt.verify import Thresholds, dequantize_output, quantize_input, check, output_metrics


def test_identical_outputs_are_perfect():
    ref = np.random.default_rng(0).random((20, 5))
    m = output_metrics("p", ref, ref.copy(), np.arange(20) % 5)
    assert m.kind == "classification" and m.agreement == 1.0 and m.accuracy_drop == 0.0
    assert m.max_abs_error == 0 and m.sqnr_db == math.inf and m.cosine == 1.0


def test_accuracy_agreement_and_sqnr_numbers():
    ref = np.eye(4)[[0, 1, 2, 3, 0, 1, 2, 3]]
    out = ref.copy()
    out[0] = [0, 1, 0, 0]  # one flip
    labels = np.array([0, 1, 2, 3, 0, 1, 2, 0])  # reference gets 7/8 right
    m = output_metrics("p", ref, out, labels)
    assert m.agreement == 7 / 8
    assert m.accuracy_reference == 7 / 8 and m.accuracy_tflite == 6 / 8
    assert math.isclose(m.accuracy_drop, 1 / 8)
    assert math.isclose(m.sqnr_db, 10 * math.log10(8 / 2))


def test_one_hot_labels_and_regression_outputs():
    ref = np.eye(3)[[0, 1, 2]]
    assert output_metrics("p", ref, ref, np.eye(3)).accuracy_reference == 1.0
    reg = output_metrics("r", np.ones((5, 1)), np.full((5, 1), 1.1), None)
    assert reg.kind == "regression" and reg.agreement is None
    assert math.isclose(reg.max_abs_error, 0.1, rel_tol=1e-9) and math.isclose(reg.sqnr_db, 20.0)


def test_every_missed_threshold_is_reported_with_value_and_limit():
    ref = np.eye(4)[[0, 1, 2, 3]]
    out = np.eye(4)[[1, 1, 2, 3]]
    m = output_metrics("probs", ref, out, np.array([0, 1, 2, 3]))
    failures = check([m], Thresholds(max_accuracy_drop=0.01, min_agreement=0.9, min_sqnr=10))
    assert failures == [
        "output 'probs': accuracy drop 25.00 points (reference 1.0000, tflite 0.7500) exceeds --max-accuracy-drop 1 points",
        "output 'probs': top-1 agreement 0.7500 is below --min-agreement 0.9",
        "output 'probs': SQNR 3.0 dB is below --min-sqnr 10 dB",
    ]
    assert check([m], Thresholds()) == []


def test_quantize_uses_scale_and_zero_point_and_saturates():
    detail = {"dtype": np.int8, "quantization": (0.5, -3)}
    q = quantize_input(np.array([0.0, 1.0, 1000.0, -1000.0]), detail)
    assert q.tolist() == [-3, -1, 127, -128] and q.dtype == np.int8
    assert dequantize_output(q[:2], detail).tolist() == [0.0, 1.0]
    assert quantize_input(np.array([1.5]), {"dtype": np.float32, "quantization": (0.0, 0)}).dtype == np.float32


def test_raise_for_status_lists_every_failure():
    import pytest

    from tfopt.errors import VerificationFailed
    from tfopt.verify import VerifyResult

    result = VerifyResult(10, 10, [], Thresholds(), failures=["a", "b"])
    with pytest.raises(VerificationFailed, match="^verification failed: a; b$") as e:
        result.raise_for_status()
    assert e.value.failures == ["a", "b"] and e.value.exit_code == 3
    VerifyResult(10, 10, [], Thresholds()).raise_for_status()  # passes silently
