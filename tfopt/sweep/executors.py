"""Where candidates run: local worker processes (``--jobs N``) or tasks on a Ray cluster (``--executor ray``).

Both run each candidate in its own fresh process (``worker``: a converter crash is that candidate's
``WorkerCrashed``) and give one outcome per candidate, in order: a ``CandidateRun`` or the ``TfoptError`` it
ended with.  Ray is optional (``pip install 'tfopt[ray]'``) and imported only here, only when asked for.
On Ray, each task starts the candidate's worker process on its node; the shared preparation is put in
the object store once; per-step progress stays on the node (the driver reports each candidate's end).
"""

from __future__ import annotations

from typing import Any, Callable

from ..errors import Interrupted, TfoptError, UsageError
from ..pipeline import Shared
from ..progress import Event, Progress, scoped
from ..recipe import Recipe
from ..worker import run_isolated, run_parallel
from .jobs import run_candidate

EXECUTORS = ("local", "ray")
RAY_INSTALL = "pip install 'tfopt[ray]'"
Done = Callable[[int, Any], None]  # (candidate index, outcome)


def run_local(recipes: list[tuple[str, Recipe]], shared: Shared, jobs: int, progress: Progress, done: Done,
              debug: bool = False) -> list[Any]:
    """Each candidate in its own local worker process, ``jobs`` at a time."""
    calls = [(run_candidate, (recipe, shared), {}) for _, recipe in recipes]

    def forward(i: int, event: Event) -> None:
        scoped(progress, recipes[i][0])(event)

    return run_parallel(calls, jobs, forward, debug, done)


def import_ray():
    try:
        import ray
    except ImportError:
        raise UsageError(f"--executor ray needs Ray, which is not installed: {RAY_INSTALL}") from None
    return ray


def ray_candidate(recipe: Recipe, shared: Shared, debug: bool) -> Any:
    """A Ray task: the candidate in its own worker process on this node; its error is its outcome."""
    try:
        return run_isolated(run_candidate, (recipe, shared), {}, None, debug)
    except TfoptError as e:
        return e
    except RuntimeError as e:  # a bug in the worker (its traceback is in the message)
        return TfoptError(f"internal error: {str(e).splitlines()[0]}", "run with --debug for the traceback")


def run_ray(recipes: list[tuple[str, Recipe]], shared: Shared, address: str | None, jobs: int, done: Done,
            debug: bool = False) -> list[Any]:
    """Each candidate as a Ray task (1 CPU each) on the cluster at ``address``; without one, on a local Ray
    instance started for this sweep with ``jobs`` CPUs (and stopped after it)."""
    ray = import_ray()
    import logging

    options: dict[str, Any] = {"include_dashboard": False, "log_to_driver": debug, "logging_level": logging.ERROR}
    if address is None:
        options["num_cpus"] = jobs
    try:
        ray.init(address=address, **options)
    except (ConnectionError, ValueError, RuntimeError) as e:
        raise TfoptError(f"cannot start or reach Ray{f' at {address}' if address else ''}: "
                         f"{' '.join(str(e).split())[:200]}") from e
    outcomes: list[Any] = [None] * len(recipes)
    try:
        task = ray.remote(num_cpus=1, max_retries=0)(ray_candidate)
        shared_ref = ray.put(shared)  # the shared preparation is sent to the cluster once
        pending = {task.remote(recipe, shared_ref, debug): i for i, (_, recipe) in enumerate(recipes)}
        try:
            while pending:
                ready, _ = ray.wait(list(pending), num_returns=1)
                i = pending.pop(ready[0])
                outcomes[i] = _get(ray, ready[0])
                done(i, outcomes[i])
        except KeyboardInterrupt:
            for ref in pending:
                ray.cancel(ref)  # raises KeyboardInterrupt in the task: its worker is stopped
            raise Interrupted("interrupted: nothing written") from None
    finally:
        ray.shutdown()
    return outcomes


def _get(ray, ref) -> Any:
    try:
        return ray.get(ref)
    except Exception as e:  # noqa: BLE001 - a Ray worker that died, a task error: that candidate's failure
        return TfoptError(f"the Ray task failed: {type(e).__name__}: {' '.join(str(e).split())[:200]}")
