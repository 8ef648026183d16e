"""Data sources: npz layouts, npy, image folders; validation against the model's inputs."""

from __future__ import annotations

import numpy as np
import pytest

from tfopt.data import load_data
from tfopt.errors import DataError
from tfopt.shapes import TensorSpec

IMG = [TensorSpec("image", (None, 28, 28, 1), "float32")]
VEC = [TensorSpec("features", (None, 8), "float32")]
OUT = [TensorSpec("probs", (None, 3), "float32")]


def test_train_test_npz_calibrates_on_train_and_evaluates_on_test(tmp_path):
    x = np.arange(100 * 8, dtype=np.float32).reshape(100, 8)
    np.savez(tmp_path / "d.npz", x_train=x[:60], y_train=np.zeros(60), x_test=x[60:], y_test=np.ones(40))
    plan = load_data(tmp_path / "d.npz", VEC, OUT, calibration_samples=10)
    cal_x, _ = plan.calibration.all()
    ev_x, ev_y = plan.evaluation.all()
    assert len(plan.calibration) == 10 and len(plan.evaluation) == 40
    assert set(cal_x["features"][:, 0] // 8) <= set(range(60))  # calibration rows all from train
    assert np.array_equal(ev_x["features"], x[60:]) and np.all(ev_y["y"] == 1)  # y is matched to an output later (kinds.resolve)
    assert plan.notes == []


def test_single_split_holds_out_the_calibration_samples_and_says_so(tmp_path):
    x = np.arange(50 * 8, dtype=np.float32).reshape(50, 8)
    np.savez(tmp_path / "d.npz", x=x, y=np.arange(50) % 3)
    plan = load_data(tmp_path / "d.npz", VEC, OUT, calibration_samples=20, seed=1)
    cal = set(plan.calibration.all()[0]["features"][:, 0])
    ev = set(plan.evaluation.all()[0]["features"][:, 0])
    assert len(cal) == 20 and len(ev) == 30 and not cal & ev
    assert plan.notes == ["d.npz has one split: 20 seeded samples calibrate, the other 30 evaluate"]
    again = load_data(tmp_path / "d.npz", VEC, OUT, calibration_samples=20, seed=1)
    assert set(again.calibration.all()[0]["features"][:, 0]) == cal  # seeded


def test_eval_samples_limits_evaluation(tmp_path):
    np.savez(tmp_path / "d.npz", x_train=np.zeros((10, 8)), x_test=np.zeros((30, 8)))
    assert len(load_data(tmp_path / "d.npz", VEC, OUT, eval_samples=7).evaluation) == 7


def test_channel_dimension_is_added_when_only_size_one_dims_differ(tmp_path):
    np.savez(tmp_path / "d.npz", x=np.zeros((5, 28, 28), np.uint8))
    x, y = load_data(tmp_path / "d.npz", IMG, OUT, calibration_samples=2).evaluation.all()
    assert x["image"].shape == (3, 28, 28, 1) and x["image"].dtype == np.float32 and y == {}


def test_npy_feeds_the_single_input_without_labels(tmp_path):
    np.save(tmp_path / "x.npy", np.ones((12, 8), np.float64))
    plan = load_data(tmp_path / "x.npy", VEC, OUT, calibration_samples=4)
    assert plan.evaluation.has_labels is False and len(plan.evaluation) == 8


def test_multi_input_npz_by_name_and_clear_error_when_names_differ(tmp_path):
    inputs = [TensorSpec("ids", (None, 4), "int32"), TensorSpec("dense", (None, 2), "float32")]
    np.savez(tmp_path / "ok.npz", ids=np.ones((6, 4), np.int64), dense=np.zeros((6, 2)), y=np.zeros(6))
    x, _ = load_data(tmp_path / "ok.npz", inputs, OUT, calibration_samples=2).evaluation.all()
    assert x["ids"].dtype == np.int32 and x["dense"].dtype == np.float32
    np.savez(tmp_path / "bad.npz", x=np.zeros((6, 4)))
    with pytest.raises(DataError, match=r"expected keys \['ids', 'dense'\] \(one per input name\), found \['x'\]"):
        load_data(tmp_path / "bad.npz", inputs, OUT)


def test_float_values_for_integer_ids_are_refused(tmp_path):
    inputs = [TensorSpec("ids", (None, 4), "int32")]
    np.savez(tmp_path / "d.npz", x=np.full((6, 4), 0.5))
    with pytest.raises(DataError, match="input 'ids' expects integer ids \\(int32\\), but the data has non-integer"):
        load_data(tmp_path / "d.npz", inputs, OUT)


def test_arrays_of_different_lengths_are_refused(tmp_path):
    np.savez(tmp_path / "d.npz", x=np.zeros((6, 8)), y=np.zeros(5))
    with pytest.raises(DataError, match=r"arrays differ in length: \{'x': 6, 'y': 5\}"):
        load_data(tmp_path / "d.npz", VEC, OUT)


def test_train_keys_without_test_keys(tmp_path):
    np.savez(tmp_path / "d.npz", x_train=np.zeros((6, 8)))
    with pytest.raises(DataError, match=r"has \*_train keys but no \*_test keys"):
        load_data(tmp_path / "d.npz", VEC, OUT)


def _write_png(path, value, size=(10, 12)):
    from tfopt import _tf

    tf = _tf.tf()
    img = np.full(size + (1,), value, np.uint8)
    path.write_bytes(tf.io.encode_png(img).numpy())


def test_image_folder_labels_resizes_scales_and_streams(tmp_path, monkeypatch):
    for label, value in (("cat", 0), ("dog", 255)):
        (tmp_path / "imgs" / label).mkdir(parents=True)
        for i in range(3):
            _write_png(tmp_path / "imgs" / label / f"{i}.png", value)
    (tmp_path / "imgs" / "dog" / "readme.txt").write_text("not an image")
    plan = load_data(tmp_path / "imgs", IMG, OUT, calibration_samples=2)
    split = plan.evaluation.split
    assert len(split) == 6 and list(split.labels) == [0, 0, 0, 1, 1, 1]
    decoded = []
    original = split.rows
    monkeypatch.setattr(split, "rows", lambda index: decoded.append(len(index)) or original(index))
    batches = list(plan.evaluation.batches(2))
    assert decoded == [2, 2]  # decoded batch by batch, never all at once
    x, y = batches[0]
    assert x["image"].shape == (2, 28, 28, 1)
    assert set(np.unique(np.concatenate([b[0]["image"] for b in batches]))) <= {0.0, 1.0}


def test_image_folder_without_class_folders(tmp_path):
    (tmp_path / "imgs").mkdir()
    with pytest.raises(DataError, match="expected one sub-folder of images per class, found no sub-folders"):
        load_data(tmp_path / "imgs", IMG, OUT)
