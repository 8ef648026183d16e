"""Every bad input is one clear, early error (README "Bad inputs and exit codes"): the exit code, the exact
message, inputs unchanged, nothing written, and output paths refused before any model is loaded."""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import SAMPLE_H5, SAMPLE_NPZ, sha256

ROOT = Path(__file__).resolve().parent.parent


def assert_error(result, code: int, message: str):
    assert result.exit_code == code, (result.exit_code, result.stderr)
    assert result.stderr.strip().splitlines()[-1] == f"Error: {message}", result.stderr
    assert result.stderr.count("Error:") == 1 and "Traceback" not in result.stderr + result.stdout


# ------------------------------------------------------------------ §1 data, validated at load


def _bad_npz(tmp_path: Path, tiny, change) -> Path:
    with np.load(tiny["xy"]) as z:
        x, y = z["x"].copy(), z["y"]
    change(x)
    np.savez(tmp_path / "bad.npz", x=x, y=y)
    return tmp_path / "bad.npz"


@pytest.mark.parametrize("change,what", [
    (lambda x: x.__setitem__((17, 3), np.nan), "1 non-finite value(s) (NaN) in 1 sample(s), first at index 17"),
    (lambda x: x.fill(np.nan), "4800 non-finite value(s) (NaN) in 600 sample(s), first at index 0, 1, 2, 3, 4, ..."),
    (lambda x: x.__setitem__((slice(None), 0), np.inf), "600 non-finite value(s) (+Inf) in 600 sample(s), first at "
                                                          "index 0, 1, 2, 3, 4, ..."),
], ids=["one-nan", "all-nan", "inf-per-sample"])
def test_non_finite_data_is_refused_naming_file_key_count_and_samples(cli, tiny, tmp_path, change, what):
    data = _bad_npz(tmp_path, tiny, change)
    before = sha256(data)
    result = cli("convert", tiny["h5"], "--quantize", "int8", "--data", data, "-o", tmp_path / "o.tflite")
    assert_error(result, 1, f"{data}: key 'x' holds {what}; expected finite numbers: clean the data before "
                            "calibrating or verifying")
    assert sha256(data) == before and not (tmp_path / "o.tflite").exists()


def test_empty_and_non_numeric_data_files(cli, tiny, tmp_path):
    np.savez(tmp_path / "empty.npz")
    result = cli("convert", tiny["h5"], "--quantize", "dynamic", "--data", tmp_path / "empty.npz")
    assert_error(result, 1, f"{tmp_path / 'empty.npz'} holds no arrays: expected x (and y), "
                            "x_train/y_train/x_test/y_test, or one key per model input")
    np.savez(tmp_path / "zero.npz", x=np.zeros((0, 8), np.float32))
    result = cli("convert", tiny["h5"], "--quantize", "dynamic", "--data", tmp_path / "zero.npz")
    assert_error(result, 1, f"{tmp_path / 'zero.npz'}: key 'x' has no samples (shape (0, 8)), expected at least one")
    np.savez(tmp_path / "text.npz", x=np.array([["a"] * 8] * 3))
    result = cli("convert", tiny["h5"], "--quantize", "dynamic", "--data", tmp_path / "text.npz")
    assert_error(result, 1, f"{tmp_path / 'text.npz'}: key 'x' holds <U1 values, expected numbers (float or "
                            "integer arrays)")


def test_npy_and_image_folders_get_the_same_checks(tmp_path):
    from tfopt.data import load_data
    from tfopt.errors import DataError
    from tfopt.shapes import TensorSpec

    vec, out = [TensorSpec("features", (None, 8), "float32")], [TensorSpec("probs", (None, 3), "float32")]
    x = np.zeros((5, 8), np.float32)
    x[2, 1] = -np.inf
    np.save(tmp_path / "x.npy", x)
    with pytest.raises(DataError, match=r"x\.npy: the array holds 1 non-finite value\(s\) \(-Inf\) in 1 sample\(s\), "
                                        r"first at index 2"):
        load_data(tmp_path / "x.npy", vec, out)
    from tfopt import _tf

    tf = _tf.tf()
    (tmp_path / "imgs" / "cat").mkdir(parents=True)
    png = tf.io.encode_png(np.full((4, 4, 1), 200, np.uint8)).numpy()
    (tmp_path / "imgs" / "cat" / "a.png").write_bytes(png)
    img = [TensorSpec("image", (None, 4, 4, 1), "float32")]
    plan = load_data(tmp_path / "imgs", img, out, scale=float("inf"), calibration_samples=1)
    with pytest.raises(DataError, match=r"--scale inf / --offset 0 make non-finite pixel values"):
        plan.evaluation.all()


# ------------------------------------------------------------------ §2 output paths, before loading the model


def _fast(cli, *args):
    start = time.perf_counter()
    result = cli(*args)
    return result, time.perf_counter() - start


@pytest.mark.parametrize("flag", ["-o", "--report", "--markdown", "--junit"])
def test_an_output_path_that_is_a_directory_is_refused_before_loading(cli, tiny, tmp_path, flag):
    args = ["convert", tiny["h5"], "--quantize", "dynamic", "--data", tiny["npz"], "-o", tmp_path / "o.tflite"]
    args = [a if a != tmp_path / "o.tflite" or flag != "-o" else tmp_path for a in args] + \
        ([flag, tmp_path] if flag != "-o" else [])
    result, seconds = _fast(cli, *args)
    assert_error(result, 2, f"cannot write {flag} {tmp_path}: it is a directory, expected a file path")
    assert "…" not in result.stderr and seconds < 2  # no worker, no model loaded


def test_a_read_only_file_system_is_refused_before_loading(cli, tiny, tmp_path, monkeypatch):
    import tempfile

    real = tempfile.mkstemp

    def read_only(*args, dir=None, **kw):
        if dir is not None and Path(dir) == tmp_path / "ro":
            raise OSError(errno.EROFS, "Read-only file system")
        return real(*args, dir=dir, **kw)

    (tmp_path / "ro").mkdir()
    monkeypatch.setattr(tempfile, "mkstemp", read_only)
    result, seconds = _fast(cli, "convert", tiny["h5"], "--quantize", "dynamic", "--data", tiny["npz"],
                            "-o", tmp_path / "ok.tflite", "--report", tmp_path / "ro" / "r.json")
    assert_error(result, 2, f"cannot write --report {tmp_path / 'ro' / 'r.json'}: read-only file system")
    assert seconds < 2 and not (tmp_path / "ok.tflite").exists()


def test_other_commands_check_their_outputs_first(cli, tiny, odd_model, tmp_path):
    result = cli("convert", tiny["h5"], "--no-verify", "--dump-recipe", tmp_path)
    assert_error(result, 2, f"cannot write --dump-recipe {tmp_path}: it is a directory, expected a file path")
    result = cli("export-c", odd_model["int8"], "-o", tmp_path / "missing" / "m.cc")
    assert_error(result, 2, f"cannot write -o {tmp_path / 'missing' / 'm.cc'}: folder {tmp_path / 'missing'} "
                            "does not exist")
    (tmp_path / "file").write_text("x")
    result = cli("run", ROOT / "examples" / "int8.toml", "--output-dir", tmp_path / "file")
    assert_error(result, 2, f"--output-dir {tmp_path / 'file'}: it is a file, expected a folder")
    result = cli("verify", odd_model["int8"], "--reference", odd_model["h5"], "--data", tiny["npz"],
                 "--report", tmp_path)
    assert_error(result, 2, f"cannot write --report {tmp_path}: it is a directory, expected a file path")
    result = cli("train", "--data", tiny["npz"], "-o", tmp_path)
    assert_error(result, 2, f"cannot write -o {tmp_path}: it is a directory, expected a file path")


def test_a_write_that_fails_later_is_a_clear_error_and_leaves_nothing(tmp_path, monkeypatch):
    from tfopt import files
    from tfopt.errors import WriteError

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(files.os, "fsync", full)
    with pytest.raises(WriteError) as e:
        files.write_atomic(tmp_path / "m.tflite", b"x" * 100)
    assert str(e.value) == f"cannot write {tmp_path / 'm.tflite'}: no space left on device; nothing was written there"
    assert e.value.exit_code == 1 and list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------ §3 exit codes CI can tell apart


def test_a_tflite_that_does_not_match_its_reference_is_an_error_not_a_missed_gate(cli, tiny, odd_model, tmp_path):
    other = odd_model["float32"]  # features (8) -> probs (3), but another model: names match, so check shapes
    from tfopt import _tf

    K = _tf.tf_keras()
    inp = K.Input((8,), name="features")
    K.Model(inp, K.layers.Dense(2, activation="softmax", name="scores")(inp)).save(tmp_path / "ref.h5")
    result = cli("verify", other, "--reference", tmp_path / "ref.h5", "--data", tiny["npy"])
    assert_error(result, 1, "the .tflite outputs ['probs'] do not match the reference model outputs ['scores']: "
                            "is it a conversion of this model?")


def _group_alive(pgid: int) -> list[int]:
    alive = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            alive.append(int(stat.parent.name))
    return alive


@pytest.mark.slow
def test_ctrl_c_exits_130_writes_nothing_and_leaves_no_worker(tiny, tmp_path):
    tfopt = Path(sys.executable).parent / "tfopt"
    out = tmp_path / "o.tflite"
    proc = subprocess.Popen([str(tfopt), "convert", str(tiny["h5"]), "--prune", "0.5", "--epochs", "500",
                             "--data", str(tiny["npz"]), "-o", str(out), "--report", str(tmp_path / "r.json")],
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    seen = ""
    while "fine-tuning" not in seen:
        line = proc.stderr.readline()
        assert line, seen
        seen += line
    time.sleep(1.0)
    os.killpg(proc.pid, signal.SIGINT)
    rest = proc.stderr.read()
    proc.wait(timeout=30)
    assert proc.returncode == 130, seen + rest
    assert rest.strip().splitlines()[-1] == "Error: interrupted: nothing written"
    assert list(tmp_path.iterdir()) == []
    # every process tfopt started ends: the worker is joined before exit; multiprocessing's resource
    # tracker sees its pipe close when tfopt exits and follows within moments — nothing may linger
    deadline = time.monotonic() + 10
    while _group_alive(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _group_alive(proc.pid) == []


# ------------------------------------------------------------------ §6 a quiet library, §7 flags named in errors


def test_the_library_prints_nothing_of_tensorflows(tiny, tmp_path):
    code = (f"from tfopt import from_dict, run; r = run(from_dict({{'model': {{'path': {str(tiny['h5'])!r}}}, "
            f"'data': {{'path': {str(tiny['npz'])!r}}}, 'convert': {{'quantize': 'int8'}}, "
            f"'output': {{'tflite': {str(tmp_path / 'o.tflite')!r}}}}})); assert r.ok")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "" and proc.stderr == ""


def test_flag_errors_name_the_flag_not_the_recipe_field(cli, tiny):
    result = cli("convert", tiny["h5"], "--prune", "1.5", "--data", tiny["npz"])
    assert_error(result, 2, "--prune: got 1.5, expected a fraction 0 <= x < 1 (0.8 = 80 % of the weights zero)")
    result = cli("convert", tiny["h5"], "--max-accuracy-drop", "probs=2", "--data", tiny["npz"])
    assert_error(result, 2, "--max-accuracy-drop: got 2.0, expected 0 <= x <= 1")
    result = cli("convert", tiny["h5"], "--min-agreement", "high", "--data", tiny["npz"])
    assert_error(result, 2, "--min-agreement 'high': expected a number or NAME=NUMBER (e.g. --min-agreement probs=0.99)")
