"""`tfopt run` and `convert --dump-recipe` end to end on the shipped sample model (each CLI call spawns workers)."""

from __future__ import annotations

import json
import os
import tomllib
from pathlib import Path
from xml.etree import ElementTree as ET

import numpy as np
import pytest

from conftest import ROOT, SAMPLE_H5, SAMPLE_NPZ, sha256

EXAMPLES = ROOT / "examples"


def test_dump_recipe_then_run_writes_identical_bytes(cli, tmp_path):
    out = tmp_path / "m.int8.tflite"
    flags = ["convert", SAMPLE_H5, "--quantize", "int8", "--data", SAMPLE_NPZ, "--calibration-samples", "100",
             "--eval-samples", "300", "-o", out, "--seed", "3"]  # fmt: skip
    dumped = cli(*flags, "--dump-recipe", tmp_path / "job.toml")
    assert dumped.exit_code == 0 and not out.exists()
    text = (tmp_path / "job.toml").read_text()
    assert text.startswith("# written by `tfopt convert --dump-recipe`; run it with: tfopt run job.toml\n")
    written = tomllib.loads(text)["model"]["path"]  # absolute, or relative to the recipe's folder
    assert (tmp_path / written).resolve() == SAMPLE_H5.resolve()
    assert Path(written).is_absolute() == (os.path.commonpath([SAMPLE_H5, tmp_path]) == "/")
    assert 'tflite = "m.int8.tflite"' in text  # beside the recipe: relative, so the folder can move

    before = sha256(SAMPLE_H5)
    converted = cli(*flags)
    assert converted.exit_code == 0, converted.stderr
    first = out.read_bytes()
    out.unlink()
    ran = cli("run", tmp_path / "job.toml")
    assert ran.exit_code == 0, ran.stderr
    assert out.read_bytes() == first
    assert "summary of 1 recipe (exit 0):" in ran.stderr and sha256(SAMPLE_H5) == before


def test_run_shipped_ptq_recipes_and_a_failing_one_exits_3_with_ci_reports(cli, tmp_path):
    strict = tmp_path / "strict.toml"
    strict.write_text((EXAMPLES / "int8.toml").read_text().replace("../sample_models", str(SAMPLE_H5.parent))
                      + "min_sqnr = 200.0\n")  # fmt: skip
    files = {k: tmp_path / f"all.{k}" for k in ("xml", "md", "json")}
    result = cli("run", "float16", "dynamic", "int8", strict, "--output-dir", tmp_path / "out",
                 "--set", f"model.path={SAMPLE_H5}", "--set", f"data.path={SAMPLE_NPZ}",
                 "--junit", files["xml"], "--markdown", files["md"], "--report", files["json"])  # fmt: skip
    assert result.exit_code == 3, result.stderr
    # the strict recipe missed a gate: its model is set aside, never at its output path
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "dynamic.tflite", "float16.tflite", "int8.tflite", "strict.failed.tflite"]  # fmt: skip

    doc = json.loads(files["json"].read_text())
    assert (doc["schema"], doc["ok"], doc["exit_code"]) == ("tfopt.run/1", False, 3)
    assert [(r["recipe"], r["exit_code"]) for r in doc["runs"]] == [("float16", 0), ("dynamic", 0), ("int8", 0), ("strict", 3)]
    sizes = {r["recipe"]: r["report"]["sizes"]["output_vs_float32"] for r in doc["runs"]}
    assert 0.45 < sizes["float16"] < 0.55 and sizes["dynamic"] < 0.3 and sizes["int8"] < 0.3
    for run in doc["runs"]:
        (out,) = run["report"]["verification"]["outputs"]
        assert out["metrics"]["accuracy_drop"] <= 0.01 and out["metrics"]["agreement"] >= 0.97

    root = ET.parse(files["xml"]).getroot()
    assert (root.get("tests"), root.get("failures"), root.get("errors")) == ("9", "1", "0")
    (failure,) = root.iter("failure")
    sqnr = doc["runs"][3]["report"]["verification"]["outputs"][0]["metrics"]["sqnr_db"]
    assert failure.get("message") == f"output 'probs' (classification): SQNR {sqnr:.1f} dB < 200 dB (--min-sqnr)"
    assert [s.get("name") for s in root.findall("testsuite")] == ["float16", "dynamic", "int8", "strict"]

    md = files["md"].read_text()
    assert md.startswith("# tfopt run — ❌ 1 of 4 did not pass\n")
    assert "| strict | int8 | FAILED |" in md and "| float16 | float16 | passed |" in md
    summary = result.stderr[result.stderr.index("summary of 4 recipes (exit 3):"):]
    assert [ln.split()[0] for ln in summary.splitlines()[3:7]] == ["float16", "dynamic", "int8", "strict"]
    assert "strict: output 'probs' (classification): SQNR" in summary


def test_an_erroring_recipe_does_not_stop_the_others(cli, tmp_path):
    np.savez(tmp_path / "wrong.npz", x=np.zeros((20, 5), np.float32), y=np.zeros(20, np.int64))
    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps({"model": {"path": str(SAMPLE_H5)}, "data": {"path": "wrong.npz"},
                                  "convert": {"quantize": "dynamic"}}))  # fmt: skip
    result = cli("run", broken, EXAMPLES / "float16.toml", "--output-dir", tmp_path, "--junit", tmp_path / "j.xml")
    assert result.exit_code == 1 and "Traceback" not in result.stderr
    assert (tmp_path / "float16.tflite").stat().st_size > 100_000
    rows = result.stderr[result.stderr.index("summary of 2 recipes (exit 1):"):].splitlines()
    assert rows[3].split()[:3] == ["broken", "-", "ERROR"] and rows[4].split()[:3] == ["float16", "float16", "passed"]
    assert rows[5].startswith("  broken: Error: ") and "wrong.npz" in rows[5]
    root = ET.parse(tmp_path / "j.xml").getroot()
    (error,) = root.iter("error")
    assert error.get("message") == rows[5].removeprefix("  broken: Error: ")
    assert (root.get("tests"), root.get("errors")) == ("3", "1")
    assert not Path(tmp_path / "broken.tflite").exists()


@pytest.mark.slow
def test_shipped_fine_tuning_recipes_run(cli, tmp_path):
    names = ["int8-qat", "prune80-qat-int8", "cluster16-qat-int8", "prune24-int8"]
    result = cli("run", *[EXAMPLES / f"{n}.toml" for n in names], "--set", "train.epochs=1",
                 "--set", "train.min_steps=0", "--output-dir", tmp_path,
                 "--report", tmp_path / "run.json")
    doc = json.loads((tmp_path / "run.json").read_text())
    assert [r["error"] for r in doc["runs"]] == [None] * 4, result.stderr
    by_name = {r["recipe"]: r["report"] for r in doc["runs"]}
    assert [[s["kind"] for s in by_name[n]["stages"]] for n in names] == [
        ["qat"], ["prune", "qat"], ["cluster", "qat"], ["prune"]]  # fmt: skip
    for name, report in by_name.items():
        (out,) = report["verification"]["outputs"]
        assert out["metrics"]["accuracy_drop"] <= 0.02, name
        assert report["io_types"] == {"image": "int8", "probs": "int8"}
    gzip = {n: by_name[n]["sizes"]["output"]["gzip_bytes"] for n in names}
    assert gzip["prune80-qat-int8"] < 0.5 * gzip["int8-qat"]  # 80% zeros compress
    assert gzip["cluster16-qat-int8"] < 0.8 * gzip["int8-qat"]  # 16 distinct values compress


def test_a_recipe_that_cannot_verify_stops_the_run_before_any_work(cli, tmp_path):
    no_data = tmp_path / "no_data.json"
    no_data.write_text(json.dumps({"model": {"path": str(SAMPLE_H5)}, "convert": {"quantize": "dynamic"}}))
    result = cli("run", EXAMPLES / "float16.toml", no_data, "--output-dir", tmp_path / "out")
    assert result.exit_code == 2
    assert result.stderr.strip() == (
        "Error: no_data: verification needs held-out data: pass --data FILE (or --no-verify to skip verification "
        "explicitly)"
    )
    assert list((tmp_path / "out").iterdir()) == []  # float16 did not run either
