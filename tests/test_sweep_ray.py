"""`tfopt sweep --executor ray`: against a local Ray instance this test starts (and stops), the same table as
`--jobs 2` (sizes, gates, fronts and the choice identical; latency is measured, so it may differ)."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

HEAD = ("import sys, ray; ray.init(num_cpus=2, include_dashboard=False, logging_level='ERROR'); "
        "print(ray.get_runtime_context().gcs_address, flush=True); sys.stdin.read(); ray.shutdown()")

CLI = "import sys; from tfopt.cli import main; sys.argv[0] = 'tfopt'; main()"


def test_without_ray_installed_the_executor_is_a_usage_error_naming_the_extra(cli, tiny, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    result = cli("sweep", tiny["h5"], "--data", tiny["npz"], "--candidates", "int8", "--executor", "ray",
                 "-o", tmp_path / "best.tflite")
    assert (result.exit_code, result.stderr) == (
        2, "Error: --executor ray needs Ray, which is not installed: pip install 'tfopt[ray]'\n")
    assert not list(tmp_path.iterdir())


@pytest.fixture(scope="module")
def ray_head():
    """A local Ray instance (2 CPUs) in a process of its own, with token authentication (Ray's default) by a
    token of this test, so nothing is written to ~/.ray; ended by closing its stdin."""
    try:
        import ray  # noqa: F401
    except ImportError:
        pytest.skip("Ray is not installed: pip install 'tfopt[ray]' (make test installs it)")
    env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32)}
    head = subprocess.Popen([sys.executable, "-c", HEAD], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, env=env, text=True)
    address = head.stdout.readline().strip()
    try:
        assert address, "the Ray head did not start"
        yield address, env
    finally:
        head.stdin.close()
        try:
            head.wait(timeout=60)
        except subprocess.TimeoutExpired:
            head.kill()
            head.wait()


def _sweep(args: list, env: dict) -> tuple[subprocess.CompletedProcess, dict]:
    proc = subprocess.run([sys.executable, "-c", CLI, "sweep", *map(str, args)], capture_output=True, text=True,
                          env=env, timeout=600)
    report = Path(args[args.index("--report") + 1])
    return proc, json.loads(report.read_text()) if report.exists() else {}


def _table(doc: dict) -> dict:
    """What must not depend on where the candidates ran: everything but the measured times."""
    rows = [(c["name"], c["status"], c["bytes"], c["gzip_bytes"], c["quality"], c["miss"], c["pareto"],
             [(o["name"], g["metric"], g["value"], g["passed"]) for o in c["report"]["verification"]["outputs"]
              for g in o["gates"]]) for c in doc["candidates"]]
    return {"rows": rows, "chosen": doc["chosen"], "closest": doc["closest"], "size": doc["fronts"]["size"],
            "gzip": doc["fronts"]["gzip"], "baseline": doc["baseline"]["bytes"]}


@pytest.mark.slow
def test_ray_executor_gives_the_same_table_as_local_jobs(ray_head, tiny, tmp_path):
    address, env = ray_head
    common = [tiny["h5"], "--data", tiny["npz"], "--candidates", "float16,dynamic,int8", "--quiet"]
    ray_run, on_ray = _sweep(common + ["--executor", "ray", "--address", address, "-o", tmp_path / "ray.tflite",
                                       "--report", tmp_path / "ray.json"], env)
    assert ray_run.returncode == 0, ray_run.stderr
    local_run, local = _sweep(common + ["--jobs", "2", "-o", tmp_path / "local.tflite",
                                        "--report", tmp_path / "local.json"], env)
    assert local_run.returncode == 0, local_run.stderr
    assert on_ray["executor"] == {"kind": "ray", "address": address}
    assert local["executor"] == {"kind": "local", "jobs": 2}
    assert _table(on_ray) == _table(local)
    assert [c["status"] for c in local["candidates"]] == ["passed"] * 3
    assert (tmp_path / "ray.tflite").read_bytes() == (tmp_path / "local.tflite").read_bytes()
    assert ray_run.stderr == "" and local_run.stderr == ""  # --quiet: nothing, Ray's own logging included
