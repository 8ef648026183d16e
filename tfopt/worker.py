"""Run work in a child process so that a native crash (the TFLite converter can abort or
segfault on real models) becomes a clear error instead of killing tfopt.

The child is started with ``spawn`` (never ``fork`` a process that has TensorFlow's
threads) and reports progress, the result or a ``TfoptError`` through a pipe.  Its own
stderr — TensorFlow's native log noise — goes to a log file that ``--debug`` shows.

    run_isolated(fn, args, kwargs, progress)          # one call; its error is raised here
    run_parallel([(fn, args, kwargs), ...], jobs=2)   # several (tfopt sweep); each error is its own outcome
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.connection
import os
import re
import shutil
import signal
import tempfile
import traceback
from pathlib import Path
from typing import Any, Callable

from . import _tf
from .errors import ConversionError, Interrupted, TfoptError
from .progress import Progress, noop, step_name

STOP_GRACE_SECONDS = 5  # after an interrupt the worker gets this long to clean up (temp files) before SIGKILL

CONVERTER_CRASH_HINT = (
    "try another mode (e.g. --quantize dynamic) or --allow-float-fallback; run with --debug for the native log"
)


def describe_stage(stage: str | None) -> str:
    if not stage:
        return "starting"
    if stage.startswith("convert float32"):
        return "converting to float32 (the size baseline)"
    if stage.startswith("convert "):
        return f"converting to {stage.split(' ', 1)[1]}"
    return {"load": "loading the model and data", "verify": "verifying", "fine-tune": "fine-tuning",
            "reference outputs": "running the original model on the evaluation data",
            "sweep candidates": "running the candidates", "latency": "measuring latency, one model at a time",
            }.get(stage, stage)


class WorkerCrashed(ConversionError):
    """The child died from a signal (or exited without a result)."""


def _terminate(signum, frame):  # noqa: ARG001 - signal handler signature
    raise KeyboardInterrupt


def _child(conn, fn: Callable, args: tuple, kwargs: dict, log_path: str | None, scratch: str) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides: it sends SIGTERM to stop us
    signal.signal(signal.SIGTERM, _terminate)  # ... which unwinds Python, so atomic writes clean up
    os.environ["TMPDIR"] = tempfile.tempdir = scratch  # the parent removes it even if this process crashes
    os.environ[_tf.WORKER_ENV] = "1"
    if log_path:
        os.environ[_tf.NATIVE_LOG_ENV] = log_path
        fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        os.dup2(fd, 2)
        os.dup2(fd, 1)
        os.close(fd)
    else:
        os.environ[_tf.DEBUG_ENV] = "1"
    try:
        result = fn(*args, **kwargs, progress=lambda message: conn.send(("progress", message)))
        conn.send(("result", result))
    except TfoptError as e:
        conn.send(("error", e))
    except BaseException as e:  # noqa: BLE001 - everything else is a bug: ship the traceback
        conn.send(("bug", f"{type(e).__name__}: {e}", traceback.format_exc()))
    finally:
        conn.close()


class Job:
    """One call of ``fn(*args, **kwargs, progress=...)`` in a fresh spawned process, read message by message.

    ``start()`` launches it; ``next()`` blocks for its next message and returns ``("progress", event)`` or
    ``("result", value)``, or raises its ``TfoptError`` (a crash: ``WorkerCrashed``; a bug: ``RuntimeError``
    with the worker's traceback); ``close()`` stops it if it still runs and removes its scratch folder.
    Several jobs are multiplexed on ``connection`` (``run_parallel``)."""

    def __init__(self, fn: Callable, args: tuple = (), kwargs: dict | None = None, debug: bool = False):
        ctx = multiprocessing.get_context("spawn")
        self.connection, child = ctx.Pipe(duplex=False)
        self.scratch = tempfile.mkdtemp(prefix="tfopt-worker-")  # the worker's TMPDIR: no leftovers after a crash
        self.log_path = None if debug else os.path.join(self.scratch, "native.log")
        self._child_end = child
        self.proc = ctx.Process(target=_child, args=(child, fn, args, kwargs or {}, self.log_path, self.scratch),
                                daemon=True)
        self.stage: str | None = None  # the last step the worker reported: what a crash happened during

    def start(self) -> Job:
        self.proc.start()
        self._child_end.close()
        return self

    def next(self) -> tuple[str, Any]:
        try:
            kind, *payload = self.connection.recv()
        except EOFError:
            self.proc.join()
            raise _crash(self.proc.exitcode, self.stage, self.log_path) from None
        if kind == "progress":
            self.stage = step_name(payload[0]) or self.stage
            return kind, payload[0]
        if kind == "result":
            return kind, payload[0]
        if kind == "error":
            raise payload[0]
        raise RuntimeError(f"{payload[0]}\n--- worker traceback ---\n{payload[1]}")

    def close(self) -> None:
        self.connection.close()
        self._child_end.close()
        if self.proc.is_alive():
            _stop(self.proc)
        if self.proc.pid is not None:
            self.proc.join(timeout=STOP_GRACE_SECONDS)
        shutil.rmtree(self.scratch, ignore_errors=True)


def run_isolated(
    fn: Callable, args: tuple = (), kwargs: dict | None = None, progress: Progress | None = None,
    debug: bool = False,
) -> Any:
    """Call ``fn(*args, **kwargs, progress=...)`` in a fresh process and return its result.

    ``fn`` is a module-level function (spawn pickles it by reference).  Ctrl-C stops the worker
    (SIGTERM, then SIGKILL after a grace period) and raises ``Interrupted`` (exit 130)."""
    progress = progress or noop
    job = Job(fn, args, kwargs, debug)
    try:
        job.start()
        while True:
            kind, payload = job.next()
            if kind == "result":
                return payload
            progress(payload)
    except KeyboardInterrupt:
        raise Interrupted("interrupted: nothing written") from None
    finally:
        job.close()


def run_parallel(
    calls: list[tuple[Callable, tuple, dict]], jobs: int, progress: Callable[[int, Any], None] | None = None,
    debug: bool = False, done: Callable[[int, Any], None] | None = None,
) -> list[Any]:
    """Run each call in its own process, at most ``jobs`` at a time; one outcome per call, in order:
    its result, or the ``TfoptError`` it ended with (a crash is ``WorkerCrashed``, a bug a ``TfoptError``
    naming it) — one call's failure never stops the others.  ``progress(i, event)`` and ``done(i, outcome)``
    report per call.  Ctrl-C stops every worker and raises ``Interrupted``."""
    outcomes: list[Any] = [None] * len(calls)
    pending, running = list(range(len(calls))), {}
    try:
        while pending or running:
            while pending and len(running) < max(1, jobs):
                i = pending.pop(0)
                running[i] = Job(*calls[i], debug=debug).start()
            by_conn = {job.connection: i for i, job in running.items()}
            for conn in multiprocessing.connection.wait(list(by_conn)):
                i = by_conn[conn]
                outcome = _step(running[i], i, progress)
                if outcome is not _RUNNING:
                    running.pop(i).close()
                    outcomes[i] = outcome
                    if done:
                        done(i, outcome)
    except KeyboardInterrupt:
        raise Interrupted("interrupted: nothing written") from None
    finally:
        for job in running.values():
            job.close()
    return outcomes


_RUNNING = object()


def _step(job: Job, i: int, progress: Callable[[int, Any], None] | None) -> Any:
    """Read one message of a parallel job: ``_RUNNING``, or its outcome (result or error)."""
    try:
        kind, payload = job.next()
    except TfoptError as e:
        return e
    except RuntimeError as e:  # a bug in the worker: this call's failure, with the first line of its traceback
        return TfoptError(f"internal error: {str(e).splitlines()[0]}", "run with --debug for the traceback")
    if kind == "result":
        return payload
    if progress:
        progress(i, payload)
    return _RUNNING


def _stop(proc) -> None:
    """SIGTERM (the worker unwinds and cleans up), then SIGKILL if it does not end in time."""
    if proc.pid is None or not proc.is_alive():
        return
    proc.terminate()
    proc.join(timeout=STOP_GRACE_SECONDS)
    if proc.is_alive():
        proc.kill()
        proc.join(timeout=STOP_GRACE_SECONDS)


def _crash(exitcode: int | None, stage: str | None, log_path: str | None) -> WorkerCrashed:
    if exitcode is not None and exitcode < 0:
        try:
            how = signal.Signals(-exitcode).name
        except ValueError:
            how = f"signal {-exitcode}"
    else:
        how = f"exit status {exitcode}"
    doing = describe_stage(stage)
    who = "the TFLite converter" if stage and stage.startswith("convert") else "the tfopt worker"
    last = _relevant_log_line(log_path)
    hint = CONVERTER_CRASH_HINT if who.startswith("the TFLite") else "run with --debug to see the native log"
    message = f"{who} crashed ({how}) while {doing}"
    if last:
        message += f"; native log: {last[:200]}"
    return WorkerCrashed(message, hint)


# Native log lines that explain a crash, best first: fatal glog lines ("F0000 ... Check failed: ..."),
# then error lines; TensorFlow's warnings (W0000, I0000, "WARNING:") are noise.
_CRASH_LINES = (
    re.compile(r"^F\d{4} |Check failed|Fatal Python error|Segmentation fault|terminate called"),
    re.compile(r"^E\d{4} |error:|Error:|Aborted"),
)
_NOISE = re.compile(r"^[WI]\d{4} |^WARNING|cuInit|cuda|oneDNN|TF_ENABLE_ONEDNN_OPTS|rebuild TensorFlow|NodeDef mentions attribute")


def _relevant_log_line(path: str | None) -> str | None:
    """The native log line that best explains a crash (None when no line does)."""
    if not path or not Path(path).exists():
        return None
    lines = [ln.strip() for ln in Path(path).read_text(errors="replace").splitlines() if ln.strip()]
    for pattern in _CRASH_LINES:
        hits = [ln for ln in lines if pattern.search(ln) and not _NOISE.search(ln)]
        if hits:
            return _strip_glog_prefix(hits[-1])
    return None  # the rest is Python warnings and TensorFlow chatter: --debug shows it all


def _strip_glog_prefix(line: str) -> str:
    """``F0000 00:00:17.12  123 file.cc:45] Check failed: x`` → ``file.cc:45] Check failed: x``."""
    m = re.match(r"^[FEWI]\d{4} [\d:.]+\s+\d+ (.*)$", line)
    return m.group(1) if m else line
