"""`--strategy multiworker` for real: two local worker processes with TF_CONFIG on localhost ports run prune + QAT
together; the chief writes a model that verifies like a single-worker run's."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from multiworker import free_ports, launch

TFOPT = str(Path(sys.executable).parent / "tfopt")


@pytest.mark.slow
def test_two_workers_fine_tune_together_and_the_chief_writes_a_verified_model(tiny, tmp_path, cli):
    out = tmp_path / "mw.tflite"
    argv = [TFOPT, "convert", str(tiny["h5"]), "--prune", "0.5", "--qat", "--strategy", "multiworker",
            "--data", str(tiny["npz"]), "--epochs", "1", "--min-steps", "20", "-o", str(out), "--json"]
    results = launch(argv, free_ports(2), timeout=300)
    assert [r.returncode for r in results] == [0, 0], [r.stderr[-1500:] for r in results]
    chief, worker = (json.loads(r.stdout) for r in results)
    assert chief["ok"] and chief["output"] == str(out) and out.is_file()
    assert "multi-worker strategy, 2 replica(s); this process is the chief" in chief["stages"][0]["notes"]
    assert worker["output"] is None and "worker 1 of a multi-worker run" in worker["notes"][0]
    assert [s["kind"] for s in chief["stages"]] == ["prune", "qat"]
    assert abs(chief["stages"][-1]["exported_output"]["kernel_sparsity"] - 0.5) <= 0.03
    again = cli("verify", out, "--reference", tiny["h5"], "--data", tiny["npz"], "--fine-tuned")
    assert again.exit_code == 0, again.stderr
