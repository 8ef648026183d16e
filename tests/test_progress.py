"""Progress: the library's events, how the CLI renders them (bars on a terminal, plain lines in logs, nothing
with --quiet/--json), and parallel workers (one call's crash is that call's outcome)."""

from __future__ import annotations

import io
import re

import wild_helpers
from tfopt.cli.progress import ProgressView
from tfopt.errors import UsageError
from tfopt.progress import Count, Ended, Step, counter, scoped
from tfopt.worker import WorkerCrashed, run_parallel

ANSI = re.compile(r"\x1b\[")


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_counter_sends_a_bounded_number_of_counts_and_always_the_last_and_milestones():
    seen = []
    tick = counter(seen.append, "calibrating int8", 1000, "samples", updates=10)
    for i in range(1, 1001):
        tick(i, milestone=(i == 555))
    assert [c.done for c in seen] == [1, 101, 201, 301, 401, 501, 555, 655, 755, 855, 955, 1000]
    assert seen[6].milestone and not seen[5].milestone
    assert all(isinstance(c, Count) and c.total == 1000 and c.unit == "samples" for c in seen)


def test_scoped_tags_steps_and_counts_with_the_candidate():
    seen = []
    tagged = scoped(seen.append, "int8")
    tagged("convert int8")
    tagged(Count("verifying", 250, 1000, "samples"))
    assert seen == [Step("convert int8", "int8"), Count("verifying", 250, 1000, "samples", scope="int8")]


EVENTS = ["load", Count("calibrating int8", 100, 200, "samples"), Count("calibrating int8", 200, 200, "samples"),
          Step("convert int8", "int8"), Count("prune", 63, 126, "steps", "epoch 1/2, loss 0.1234", milestone=True),
          Count("sweep", 1, 3, "candidates", "int8: passed", milestone=True), Ended("int8")]


def test_a_log_gets_one_plain_line_per_step_and_milestone_without_control_characters():
    stream = io.StringIO()
    with ProgressView(quiet=False, stream=stream) as show:
        for event in EVENTS:
            show(event)
    assert stream.getvalue().splitlines() == [
        "… loading the model and data", "… int8: converting to int8", "… prune: epoch 1/2, loss 0.1234",
        "… sweep: int8: passed"]
    assert not ANSI.search(stream.getvalue())


def test_a_terminal_gets_bars_that_are_cleared_at_the_end():
    stream = Terminal()
    with ProgressView(quiet=False, stream=stream) as show:
        for event in EVENTS[:5]:
            show(event)
        view = show.view
        assert type(view).__name__ == "RichView"
        assert sorted(view.counts) == [("", "calibrating int8"), ("", "prune")]
        assert sorted(view.steps) == ["", "int8"]
        show(Ended(""))
        show(Ended("int8"))
        assert not view.counts and not view.steps
    assert ANSI.search(stream.getvalue())


def test_quiet_shows_nothing():
    for stream in (io.StringIO(), Terminal()):
        with ProgressView(quiet=True, stream=stream) as show:
            for event in EVENTS:
                show(event)
        assert stream.getvalue() == ""


def test_convert_quiet_and_json_print_no_progress(cli, tiny, tmp_path):
    quiet = cli("convert", tiny["h5"], "--quantize", "int8", "--data", tiny["npz"], "-o", tmp_path / "q.tflite", "--quiet")
    assert quiet.exit_code == 0 and quiet.stderr == ""
    plain = cli("convert", tiny["h5"], "--quantize", "int8", "--data", tiny["npz"], "-o", tmp_path / "p.tflite")
    assert plain.exit_code == 0 and "… converting to int8\n" in plain.stderr and not ANSI.search(plain.stderr)


def test_parallel_calls_each_end_in_their_own_outcome():
    events = []
    calls = [(wild_helpers.echo_progress, (1,), {}), (wild_helpers.crash_in_convert, (), {}),
             (wild_helpers.raise_usage, (), {}), (wild_helpers.echo_progress, (2,), {"scale": 5})]
    outcomes = run_parallel(calls, jobs=2, progress=lambda i, e: events.append((i, e)))
    assert outcomes[0]["value"] == 1 and outcomes[3]["value"] == 10
    assert isinstance(outcomes[1], WorkerCrashed) and "crashed (SIGABRT) while converting to int8" in str(outcomes[1])
    assert isinstance(outcomes[2], UsageError) and str(outcomes[2]) == "bad flag (try another)"
    assert sorted(events) == [(0, "load"), (1, "convert int8"), (1, "load"), (3, "load")]


def test_ctrl_c_stops_every_parallel_worker_exits_130_and_leaves_nothing(tmp_path):
    """SIGINT to the process group while two workers run side by side (a sweep with --jobs 2)."""
    import os
    import signal
    import subprocess
    import sys
    import textwrap
    import time

    from test_worker import ROOT, _alive

    markers = [tmp_path / "a.pid", tmp_path / "b.pid"]
    script = textwrap.dedent(f"""
        import signal, sys
        signal.signal(signal.SIGINT, signal.default_int_handler)  # also when started with SIGINT ignored
        sys.path.insert(0, {str(ROOT / "tests")!r})
        import wild_helpers
        from tfopt.errors import Interrupted
        from tfopt.worker import run_parallel
        calls = [(wild_helpers.wait_forever, (m,), {{}}) for m in {[str(m) for m in markers]!r}]
        try:
            run_parallel(calls, jobs=2)
        except Interrupted as e:
            print(e)
            sys.exit(e.exit_code)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True, cwd=ROOT)
    deadline = time.monotonic() + 90
    while not all(m.exists() for m in markers) and time.monotonic() < deadline:
        time.sleep(0.1)
    workers = [int(m.read_text()) for m in markers]
    os.killpg(proc.pid, signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    assert out.strip() == "interrupted: nothing written"
    assert not any(_alive(pid) for pid in workers)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.pid", "b.pid"]
