"""`tfopt sweep` end to end: usage errors before any work, the sample model's full sweep (its choice re-verified
by `tfopt verify`), a real converter crash as one failed row, and none passing (exit 3, the closest named)."""

from __future__ import annotations

import json
from pathlib import Path
from xml.etree import ElementTree as ET

import numpy as np
import pytest

from browser import find_browser, probe
from conftest import SAMPLE_H5, SAMPLE_NPZ, sha256


def test_usage_errors_come_before_any_work(cli, tiny, tmp_path):
    base = ["sweep", tiny["h5"], "--data", tiny["npz"], "-o", tmp_path / "best.tflite"]
    unknown = cli(*base, "--candidates", "int8,int4")
    assert unknown.exit_code == 2
    assert unknown.stderr.startswith("Error: --candidates: unknown candidate 'int4'; expected names from: float32, "
                                     "dynamic, float16, int8, int16x8, auto, qat, prune50-qat, prune80-qat, "
                                     "cluster16-qat, slim50-distill-int8 (or --recipes DIR for your own recipe files)")
    address = cli(*base, "--candidates", "int8", "--address", "10.0.0.5:6379")
    assert (address.exit_code, address.stderr) == (2, "Error: --address: only with --executor ray\n")
    folder = cli("sweep", tiny["h5"], "--data", tiny["npz"], "--candidates", "int8", "--html",
                 tmp_path / "missing" / "s.html")
    assert folder.exit_code == 2 and "Error: cannot write --html" in folder.stderr and "…" not in folder.stderr
    same = cli(*base[:4], "--candidates", "int8", "-o", tiny["h5"])
    assert same.exit_code == 2 and "refusing to write -o" in same.stderr
    assert not list(tmp_path.iterdir())


def small_train(folder: Path) -> Path:
    """600 training samples of the sample data: the fine-tuning candidates train in seconds."""
    with np.load(SAMPLE_NPZ) as d:
        np.savez(folder / "train600.npz", x=d["x_train"][:600], y=d["y_train"][:600])
    return folder / "train600.npz"


@pytest.mark.slow
def test_sweep_of_the_sample_marks_the_front_writes_the_best_and_verify_agrees(cli, tmp_path):
    out, files = tmp_path / "best.tflite", {k: tmp_path / f"sweep.{k}" for k in ("json", "html", "xml", "md")}
    before = sha256(SAMPLE_H5)
    result = cli("sweep", SAMPLE_H5, "--data", SAMPLE_NPZ, "--train-data", small_train(tmp_path), "--epochs", "1",
                 "--min-steps", "0", "--eval-samples", "300", "--jobs", "2", "-o", out, "--output-dir", tmp_path / "all",
                 "--report", files["json"], "--html", files["html"], "--junit", files["xml"],
                 "--markdown", files["md"])  # fmt: skip
    assert result.exit_code == 0, result.stderr
    doc = json.loads(files["json"].read_text())
    rows = {c["name"]: c for c in doc["candidates"]}
    assert list(rows) == ["dynamic", "float16", "int8", "int16x8", "qat", "prune50-qat", "prune80-qat",
                          "cluster16-qat", "slim50-distill-int8"]
    assert all(c["status"] in ("passed", "failed") and c["latency"]["p50_ms"] > 0 for c in rows.values()), result.stderr
    passed = [c for c in rows.values() if c["status"] == "passed"]
    assert {"dynamic", "float16", "int8", "int16x8"} <= {c["name"] for c in passed}  # PTQ keeps the accuracy here
    chosen = rows[doc["chosen"]]
    smallest = [c for c in passed if c["bytes"] == min(c["bytes"] for c in passed)]
    assert chosen["quality"] == max(c["quality"] for c in smallest) and chosen["pareto"]  # ties: the better one
    assert doc["fronts"]["size"] == [n for n, c in rows.items() if c["pareto"]]
    assert rows["float16"]["bytes"] > 1.8 * chosen["bytes"] and doc["baseline"]["bytes"] > 3.5 * chosen["bytes"]
    assert 0.93 < chosen["quality"] <= 1.0 and doc["quality_metric"] == "accuracy"
    assert out.read_bytes() == (tmp_path / "all" / f"{doc['chosen']}.tflite").read_bytes()
    assert chosen["report"]["output"] == str(out) and sha256(SAMPLE_H5) == before
    assert f"chosen: {doc['chosen']} (lowest size among the {len(passed)} candidate(s) that passed every gate)" \
        in result.stderr
    assert f"… sweep: prune80-qat: {rows['prune80-qat']['status']}, " in result.stderr  # a line per candidate (no tty)

    finetuned = bool(chosen["report"]["stages"])
    verified = cli("verify", out, "--reference", SAMPLE_H5, "--data", SAMPLE_NPZ, "--eval-samples", "300", "--json",
                   *(["--fine-tuned"] if finetuned else []))
    assert verified.exit_code == 0, verified.stderr
    metrics = json.loads(verified.stdout)["verification"]["outputs"][0]["metrics"]
    assert metrics["accuracy"] == chosen["quality"]

    suites = ET.parse(files["xml"]).getroot().findall("testsuite")
    assert [s.get("name") for s in suites] == list(rows)
    assert [int(s.get("failures")) > 0 for s in suites] == [c["status"] == "failed" for c in rows.values()]
    assert files["md"].read_text().startswith(f"# tfopt sweep — ✅ chose `{doc['chosen']}`\n")
    browser = find_browser()
    if browser:  # the browser tests of test_html.py say how to install one when it is missing
        verdict = probe(files["html"], browser)
        expected = 2 + 1 + len(chosen["report"]["stages"])  # 2 Pareto scatters, bytes per layer, a curve per stage
        assert (verdict["plots"], verdict["drawn"], verdict["errors"], verdict["resources"]) == (
            expected, expected, [], 0)


@pytest.fixture(scope="module")
def gru(tmp_path_factory) -> dict[str, Path]:
    """A tiny GRU classifier: full int8 of it crashes TF 2.21's converter (SIGSEGV); dynamic converts."""
    from tfopt import _tf

    K = _tf.tf_keras()
    _tf.seed_everything(0)
    rng = np.random.default_rng(0)
    xs = rng.normal(0, 1, (400, 7, 4)).astype(np.float32)
    y = (xs[:, :, 0].sum(1) > 0).astype(np.int64)
    seq = K.Input((7, 4), name="seq")
    model = K.Model(seq, K.layers.Dense(2, activation="softmax", name="probs")(K.layers.GRU(8)(seq)))
    model.compile(K.optimizers.Adam(0.01), "sparse_categorical_crossentropy")
    model.fit(xs[:300], y[:300], epochs=10, batch_size=32, verbose=0)
    d = tmp_path_factory.mktemp("gru")
    model.save(d / "gru.h5", include_optimizer=False)
    np.savez(d / "seq.npz", x_train=xs[:300], y_train=y[:300], x_test=xs[300:], y_test=y[300:])
    return {"h5": d / "gru.h5", "npz": d / "seq.npz"}


@pytest.mark.slow
def test_a_candidate_that_crashes_the_converter_is_one_failed_row(cli, gru, tmp_path):
    result = cli("sweep", gru["h5"], "--data", gru["npz"], "--candidates", "int8,dynamic", "--jobs", "2",
                 "-o", tmp_path / "best.tflite", "--json")
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    int8, dynamic = doc["candidates"]
    assert (int8["status"], int8["exit_code"], int8["report"]) == ("error", 1, None)
    assert int8["error"].startswith("the TFLite converter crashed (SIGSEGV) while converting to int8")
    assert (dynamic["status"], doc["chosen"], doc["fronts"]["size"]) == ("passed", "dynamic", ["dynamic"])
    assert (tmp_path / "best.tflite").is_file() and result.stderr == ""  # --json: nothing on stderr


@pytest.mark.slow
def test_when_no_candidate_passes_the_closest_is_named_and_set_aside_exit_3(cli, tiny, tmp_path):
    recipes = tmp_path / "mine"
    recipes.mkdir()
    (recipes / "dyn.toml").write_text('version = 1\n[convert]\nquantize = "dynamic"\n[verify]\nmin_sqnr = 10.0\n')
    out = tmp_path / "best.tflite"
    result = cli("sweep", tiny["h5"], "--data", tiny["npz"], "--candidates", "float16,int8", "--recipes", recipes,
                 "--min-sqnr", "200", "--jobs", "2", "-o", out, "--report", tmp_path / "s.json")
    assert result.exit_code == 3, result.stderr
    doc = json.loads((tmp_path / "s.json").read_text())
    assert [(c["name"], c["status"], c["source"]) for c in doc["candidates"]] == [
        ("float16", "failed", "table"), ("int8", "failed", "table"), ("dyn", "failed", str(recipes / "dyn.toml"))]
    sqnr = {c["name"]: c["report"]["verification"]["outputs"][0]["metrics"]["sqnr_db"] for c in doc["candidates"]}
    closest = max(sqnr, key=sqnr.get)  # every candidate misses only the SQNR gate: the highest SQNR is closest
    assert doc["closest"] == closest and doc["chosen"] is None and doc["failed_output"] == str(tmp_path / "best.failed.tflite")
    assert not out.exists() and (tmp_path / "best.failed.tflite").is_file()
    miss = round(200 - sqnr[closest], 4)
    assert doc["candidates"][[c["name"] for c in doc["candidates"]].index(closest)]["miss"] == pytest.approx(miss, abs=1e-3)
    assert f"Error: no candidate met every gate; closest: {closest} (misses by " in result.stderr


def test_a_candidate_with_the_shared_preparation_equals_a_plain_convert(tiny, tmp_path):
    """What the sweep shares (data plan, reference outputs, kinds, float32 size) changes no number and no byte."""
    from tfopt.pipeline import run
    from tfopt.recipe import from_dict
    from tfopt.sweep.candidates import CANDIDATES
    from tfopt.sweep.jobs import prepare, run_candidate

    base = from_dict({"model": {"path": str(tiny["h5"])}, "data": {"path": str(tiny["npz"])},
                      "output": {"tflite": str(tmp_path / "plain.tflite")}})
    shared, baseline, prepared = prepare(base)
    assert set(prepared.timings) == {"load", "reference outputs", "convert float32 baseline"}
    recipe = CANDIDATES["int8"].build(base)
    candidate = run_candidate(recipe, shared)
    plain = run(recipe)
    assert candidate.data == (tmp_path / "plain.tflite").read_bytes()
    assert candidate.report.verification.to_dict()["outputs"] == plain.verification.to_dict()["outputs"]
    assert candidate.report.sizes.to_dict() == plain.sizes.to_dict() and shared.float32_tflite.bytes == len(baseline)
    assert "reference outputs" not in candidate.report.timings and "convert float32 baseline" not in candidate.report.timings


def test_auto_is_a_candidate_on_request_and_its_search_is_reported(cli, tiny, tmp_path):
    result = cli("sweep", tiny["h5"], "--data", tiny["npz"], "--candidates", "int8,auto", "--jobs", "1",
                 "-o", tmp_path / "best.tflite", "--report", tmp_path / "s.json")
    assert result.exit_code == 0, result.stderr
    rows = {c["name"]: c for c in json.loads((tmp_path / "s.json").read_text())["candidates"]}
    assert list(rows) == ["int8", "auto"] and rows["auto"]["status"] == "passed"
    search = rows["auto"]["report"]["auto"]  # the tiny model: full int8 meets every gate, the search stops there
    assert (search["chosen"]["label"], search["notes"]) == ("int8 (full)", ["full int8 meets every gate"])
    assert rows["auto"]["bytes"] == rows["int8"]["bytes"]
