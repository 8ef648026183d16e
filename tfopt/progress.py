"""Progress events: what the library reports while it works (only ``cli/progress.py`` turns them into output).

A plain string (or a ``Step``) says a step begins (``"load"``, ``"convert int8"``, ``"verify"``); a
``Count`` says how far a counted task is (calibration samples, fine-tuning steps, verification samples,
sweep candidates).  Events are small frozen dataclasses: they cross the worker pipe (pickled) and
Ray unchanged.  ``scope`` names the sweep candidate an event belongs to ("" = the run itself).

    progress(Step("convert int8"))
    tick = counter(progress, "calibrating int8", total=200, unit="samples")
    for i in range(200): tick(i + 1)
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable, Union


@dataclass(frozen=True)
class Step:
    """A step begins (the pipeline's step names: ``load``, ``convert int8``, ``verify``, ...)."""

    name: str
    scope: str = ""


@dataclass(frozen=True)
class Count:
    """``done`` of ``total`` ``unit`` of a task; ``milestone``: worth a line in a log (an epoch ended)."""

    task: str
    done: int
    total: int | None
    unit: str = ""
    info: str = ""  # "epoch 1/2, loss 0.1234", "int8: passed"
    milestone: bool = False
    scope: str = ""


@dataclass(frozen=True)
class Ended:
    """Everything of ``scope`` is over (a sweep candidate finished): its bars can go."""

    scope: str


Event = Union[str, Step, Count, Ended]
Progress = Callable[[Event], None]


def noop(_event: Event) -> None:
    pass


def step_name(event: Event) -> str | None:
    """The step an event starts (None for counts): plain strings are steps."""
    if isinstance(event, str):
        return event
    return event.name if isinstance(event, Step) else None


def scoped(progress: Progress, scope: str) -> Progress:
    """A progress callback that tags every event with ``scope`` (a sweep candidate's name)."""

    def tagged(event: Event) -> None:
        if isinstance(event, str):
            event = Step(event)
        progress(replace(event, scope=scope))

    return tagged


def counter(progress: Progress, task: str, total: int | None, unit: str, updates: int = 40) -> Callable[..., None]:
    """``tick(done, info="", milestone=False)`` that sends at most ~``updates`` counts (and always the
    last one and every milestone): a bar needs no more, and the worker pipe stays quiet."""
    every = max(1, (total or 0) // updates)
    last = [-1]

    def tick(done: int, info: str = "", milestone: bool = False) -> None:
        if milestone or done == total or done - last[0] >= every or last[0] < 0:
            last[0] = done
            progress(Count(task, done, total, unit, info, milestone))

    return tick
