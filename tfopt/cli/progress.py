"""Render the library's progress events (``tfopt.progress``) on stderr — the only progress output code.

* an interactive stderr: rich bars (calibration samples, fine-tuning steps with the loss, verification
  samples, sweep candidates) and a spinner naming each running step; they vanish when the work ends;
* stderr not a terminal (CI logs, pipes): one plain line per step and per milestone (an epoch ended,
  a candidate finished), no control characters;
* ``--quiet`` / ``--json``: nothing.

    with progress(state) as show:
        report = run_isolated(pipeline.run, (recipe,), {}, show)
"""

from __future__ import annotations

import os
import sys
from typing import TextIO

from ..progress import Count, Ended, Event, Step
from ..worker import describe_stage


def describe(event: str | Step) -> str:
    name = event if isinstance(event, str) else event.name
    scope = "" if isinstance(event, str) else event.scope
    return f"{scope}: {describe_stage(name)}" if scope else describe_stage(name)


def count_line(event: Count) -> str:
    where = f"{event.scope}: " if event.scope else ""
    if event.info:
        return f"{where}{event.task}: {event.info}"
    total = f"/{event.total}" if event.total is not None else ""
    return f"{where}{event.task}: {event.done}{total} {event.unit}".rstrip()


class PlainView:
    """One line per step and per milestone (what a CI log wants)."""

    def __init__(self, stream: TextIO):
        self.stream = stream

    def __call__(self, event: Event) -> None:
        if isinstance(event, (str, Step)):
            self._line(describe(event))
        elif isinstance(event, Count) and event.milestone:
            self._line(count_line(event))

    def _line(self, text: str) -> None:
        self.stream.write(f"… {text}\n")
        self.stream.flush()

    def close(self) -> None:
        pass


class RichView:
    """Bars and spinners on an interactive terminal (rich), cleared when the work ends."""

    def __init__(self, stream: TextIO):
        from rich.console import Console
        from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

        self.bars = Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(bar_width=30),
                             TextColumn("{task.fields[count]}"), TextColumn("{task.fields[info]}"), TimeElapsedColumn(),
                             console=Console(file=stream, force_terminal=True), transient=True)
        self.steps: dict[str, int] = {}  # scope -> its spinner row (the running step)
        self.counts: dict[tuple[str, str], int] = {}  # (scope, task) -> its bar
        self.started = False

    def __call__(self, event: Event) -> None:
        if not self.started:
            self.bars.start()
            self.started = True
        if isinstance(event, (str, Step)):
            self._step(event if isinstance(event, Step) else Step(event))
        elif isinstance(event, Count):
            self._count(event)
        elif isinstance(event, Ended):
            self._end(event.scope)

    def _step(self, event: Step) -> None:
        self._end(event.scope)  # the scope's previous step and its bars are done
        self.steps[event.scope] = self.bars.add_task(describe(event), total=None, count="", info="")

    def _count(self, event: Count) -> None:
        key = (event.scope, event.task)
        label = f"{event.scope}: {event.task}" if event.scope else event.task
        count = f"{event.done}/{event.total} {event.unit}" if event.total is not None else f"{event.done} {event.unit}"
        if key not in self.counts:
            self.counts[key] = self.bars.add_task(label, total=event.total, count=count, info=event.info)
        self.bars.update(self.counts[key], completed=event.done, total=event.total, count=count, info=event.info)

    def _end(self, scope: str) -> None:
        for key in [k for k in self.counts if k[0] == scope]:
            self.bars.remove_task(self.counts.pop(key))
        if scope in self.steps:
            self.bars.remove_task(self.steps.pop(scope))

    def close(self) -> None:
        if self.started:
            self.bars.stop()


class Silent:
    def __call__(self, event: Event) -> None:
        pass

    def close(self) -> None:
        pass


def interactive(stream: TextIO) -> bool:
    return stream.isatty() and os.environ.get("TERM", "") != "dumb"


class ProgressView:
    """The view for a command: silent, plain lines or rich bars; a context manager that clears its bars."""

    def __init__(self, quiet: bool, stream: TextIO | None = None):
        stream = stream or sys.stderr
        self.view = Silent() if quiet else (RichView(stream) if interactive(stream) else PlainView(stream))

    def __enter__(self) -> ProgressView:
        return self

    def __exit__(self, *exc) -> None:
        self.view.close()

    def __call__(self, event: Event) -> None:
        self.view(event)
