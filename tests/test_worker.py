"""The worker process: functions called by reference, progress, errors, crashes and interrupts."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

import wild_helpers
from tfopt.errors import TfoptError, UsageError
from tfopt.worker import WorkerCrashed, run_isolated

ROOT = Path(__file__).resolve().parent.parent


def test_a_function_runs_in_another_process_with_args_kwargs_and_progress():
    seen = []
    result = run_isolated(wild_helpers.echo_progress, (21,), {"scale": 2}, progress=seen.append)
    assert result["value"] == 42 and result["pid"] != os.getpid()
    assert seen == ["load"]


def test_a_tfopt_error_comes_back_as_itself():
    with pytest.raises(UsageError) as e:
        run_isolated(wild_helpers.raise_usage)
    assert str(e.value) == "bad flag (try another)" and e.value.exit_code == 2


def test_a_bug_in_the_worker_carries_its_traceback():
    with pytest.raises(RuntimeError, match=r"^KeyError: 'oops'\n--- worker traceback ---\n"):
        run_isolated(wild_helpers.raise_bug)


def test_a_native_crash_is_an_error_naming_the_stage_and_the_log_line():
    with pytest.raises(WorkerCrashed) as e:
        run_isolated(wild_helpers.crash_in_convert)
    assert "the TFLite converter crashed (SIGABRT) while converting to int8" in str(e.value)
    assert isinstance(e.value, TfoptError) and e.value.exit_code == 1


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_ctrl_c_stops_the_worker_exits_130_and_leaves_nothing(tmp_path):
    """SIGINT to the whole process group (what a terminal sends): the parent stops the worker."""
    marker = tmp_path / "worker.pid"
    script = textwrap.dedent(f"""
        import signal, sys
        signal.signal(signal.SIGINT, signal.default_int_handler)  # also when started with SIGINT ignored
        sys.path.insert(0, {str(ROOT / "tests")!r})
        import wild_helpers
        from tfopt.errors import Interrupted
        from tfopt.worker import run_isolated
        try:
            run_isolated(wild_helpers.wait_forever, ({str(marker)!r},))
        except Interrupted as e:
            print(e)
            sys.exit(e.exit_code)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True, cwd=ROOT)
    deadline = time.monotonic() + 60
    while not marker.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    worker = int(marker.read_text())
    os.killpg(proc.pid, signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    assert out.strip() == "interrupted: nothing written"
    assert not _alive(worker)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["worker.pid"]  # no temp files left behind
