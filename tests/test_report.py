"""Report renderings: strict JSON (no Infinity), text summary and Markdown."""

from __future__ import annotations

import json
import math

from tfopt.report import Report, markdown, size_of, summary


def make_report(sqnr=math.inf, drop=0.002, failures=()):
    verification = {
        "samples": 100, "batch_size": 250, "passed": not failures, "failures": list(failures),
        "thresholds": {"max_accuracy_drop": 0.01, "min_agreement": 0.97, "min_sqnr": None},
        "outputs": [{"name": "probs", "kind": "classification", "agreement": 0.99, "accuracy_reference": 0.95,
                     "accuracy_tflite": 0.95 - drop, "accuracy_drop": drop, "max_abs_error": 0.01,
                     "mean_abs_error": 0.001, "cosine": 0.9999, "sqnr_db": sqnr}],
        "seconds": 0.1, "reference_seconds": 0.05, "tflite_seconds": 0.05,
    }
    return Report(
        recipe={}, model={"path": "m.h5"}, mode="int8", output="/x/m.int8.tflite",
        sizes={"input": {"bytes": 4000, "gzip_bytes": 3000}, "float32_tflite": {"bytes": 4000, "gzip_bytes": 3600},
               "output": {"bytes": 1000, "gzip_bytes": 900}},
        timings={"load": 1.0}, verification=verification,
    )


def test_json_is_strict_and_infinite_sqnr_becomes_null():
    doc = json.loads(make_report().to_json())
    assert doc["schema"] == "tfopt.report/1" and doc["ok"] is True and doc["exit_code"] == 0
    assert doc["verification"]["outputs"][0]["sqnr_db"] is None
    assert list(doc)[:3] == ["schema", "ok", "exit_code"]


def test_failed_report_exits_3_and_summary_lists_failures():
    r = make_report(failures=["output 'probs': accuracy drop 5.00 points"])
    assert r.exit_code == 3 and not r.ok
    text = summary(r)
    assert "verification: FAILED\n  - output 'probs': accuracy drop 5.00 points" in text
    assert "output          1,000 B" not in text and "0.250x" in text


def test_markdown_tables():
    md = markdown([make_report(sqnr=41.5)])
    assert "## `m.int8.tflite` — int8 — ✅ passed" in md
    assert "| model | size | gzip | vs float32 |" in md
    assert "| probs | 95.00% | 94.80% | +0.20 | 99.00% | 0.0100 | 0.99990 | 41.5 |" in md


def test_size_of_bytes_is_deterministic():
    a, b = size_of(b"x" * 1000), size_of(b"x" * 1000)
    assert a == b and a["bytes"] == 1000 and a["gzip_bytes"] < 100
