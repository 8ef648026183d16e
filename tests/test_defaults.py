"""The fine-tuning defaults recover accuracy (issue 13, §4): `--prune 0.8 --qat` with no other flag loses at
most 1 point on the sample MNIST and on an 8x8 digits-sized problem with ~1,400 training samples.

Before the step budget (2 epochs at 1e-4, no validation) the same commands lost 1.0 and 20.1 points
(bench/RESULTS.md, "Fine-tuning defaults")."""

from __future__ import annotations

import json

import numpy as np
import pytest

import digits8
from conftest import SAMPLE_H5, SAMPLE_NPZ


def _prune80_qat(cli, model, data, out):
    result = cli("convert", model, "--prune", "0.8", "--qat", "--data", data, "-o", out, "--json")
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    (output,) = report["verification"]["outputs"]
    return report, output["metrics"]


@pytest.mark.slow
def test_prune80_qat_with_no_flags_loses_at_most_one_point_on_the_sample(cli, tmp_path):
    report, metrics = _prune80_qat(cli, SAMPLE_H5, SAMPLE_NPZ, tmp_path / "m.tflite")
    assert metrics["accuracy_drop"] <= 0.01, metrics
    assert report["stages"][0]["notes"][0].startswith("budget: "), report["stages"][0]["notes"]
    assert abs(report["stages"][-1]["exported_output"]["kernel_sparsity"] - 0.8) <= 0.02


@pytest.mark.slow
def test_prune80_qat_with_no_flags_loses_at_most_one_point_on_1400_digits(cli, tmp_path):
    d = digits8.data(SAMPLE_NPZ)
    digits8.train_model(d).save(tmp_path / "digits8.h5")
    np.savez(tmp_path / "digits8.npz", **d)
    _, metrics = _prune80_qat(cli, tmp_path / "digits8.h5", tmp_path / "digits8.npz", tmp_path / "d.tflite")
    assert metrics["accuracy_drop"] <= 0.01, metrics
