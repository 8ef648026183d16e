"""tfopt bench: latency percentiles, throughput, peak RSS, --compare ratios, --keras, errors."""

from __future__ import annotations

import json

import pytest

from tfopt.bench import BenchConfig, bench, percentiles, sample_inputs
from tfopt.errors import DataError, UsageError


def test_percentiles_and_throughput_from_known_times():
    p = percentiles([0.001] * 50 + [0.002] * 49 + [0.010], batch=4)
    assert p["p50_ms"] == pytest.approx(1.5) and p["p90_ms"] == pytest.approx(2.0)
    assert 2.0 < p["p99_ms"] <= 10.0 and p["min_ms"] == pytest.approx(1.0)
    assert p["throughput"] == pytest.approx(4 * 1000 / 1.5, rel=1e-3)


def test_sample_inputs_are_seeded_and_batched():
    a = sample_inputs({"x": (-1, 8)}, batch=3, seed=0)["x"]
    assert a.shape == (3, 8) and (a == sample_inputs({"x": (1, 8)}, 3, 0)["x"]).all()


def test_compare_and_keras_on_the_same_inputs(odd_model):
    config = BenchConfig(threads=1, runs=30, warmup=3, batch=4)
    result = bench(str(odd_model["int8"]), config, compare=[str(odd_model["float32"])], keras=str(odd_model["h5"]))
    first, other, keras = result.runs
    assert (first.kind, other.kind, keras.kind) == ("tflite", "tflite", "keras")
    for r in result.runs:
        assert 0 < r.min_ms <= r.p50_ms <= r.p90_ms <= r.p99_ms
        assert r.throughput == pytest.approx(4 * 1000 / r.p50_ms, rel=1e-2)
        assert r.peak_rss_mb > 10
    assert keras.peak_rss_mb >= other.peak_rss_mb >= first.peak_rss_mb  # peak is monotonic in one process
    ratio = result.ratios[str(odd_model["float32"])]
    assert ratio["p50"] == pytest.approx(other.p50_ms / first.p50_ms, rel=1e-3)
    assert ratio["bytes"] == pytest.approx(other.bytes / first.bytes, rel=1e-3)
    assert first.bytes == odd_model["int8"].stat().st_size


def test_config_validation_and_missing_model(tmp_path):
    with pytest.raises(UsageError, match=r"--runs: got 0, expected an integer >= 1"):
        BenchConfig(runs=0)
    with pytest.raises(UsageError, match=r"--threads: got 0, expected an integer >= 1"):
        BenchConfig(threads=0)
    with pytest.raises(DataError, match="TFLite model not found"):
        bench(str(tmp_path / "none.tflite"))


def test_cli_bench_json_in_worker(cli, odd_model):
    r = cli("bench", odd_model["int8"], "--compare", odd_model["float32"], "--runs", "20", "--threads", "2", "--json")
    assert r.exit_code == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["schema"] == "tfopt.bench/1" and doc["config"]["threads"] == 2 and doc["config"]["runs"] == 20
    assert [x["kind"] for x in doc["runs"]] == ["tflite", "tflite"]
    assert set(doc["ratios"][str(odd_model["float32"].resolve())]) == {"p50", "throughput", "bytes"}


def test_cli_bench_errors(cli, odd_model, tmp_path):
    r = cli("bench", odd_model["int8"], "--runs", "0")
    assert r.exit_code == 2 and r.stderr.strip() == "Error: --runs: got 0, expected an integer >= 1"
    r = cli("bench", odd_model["int8"], "--compare", tmp_path / "x.tflite")
    assert r.exit_code == 1 and r.stderr.strip() == f"Error: model not found: {tmp_path / 'x.tflite'}"
    r = cli("bench", odd_model["h5"])
    assert r.exit_code == 1 and "is not a TFLite model" in r.stderr and "Traceback" not in r.stderr
