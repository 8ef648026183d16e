"""What every command shares: output flags (--json/--quiet/--debug), one error path, gate flags, progress."""

from __future__ import annotations

import functools
import json
import sys
import click

from .. import modes
from ..errors import Interrupted, TfoptError


class State:
    def __init__(self, quiet: bool = False, json_out: bool = False, debug: bool = False):
        self.quiet, self.json, self.debug = quiet, json_out, debug

    def say(self, message: str) -> None:
        if not self.quiet:
            click.echo(message, err=True)


def output_options(fn):
    """--json / --quiet / --debug, and the one error path: a TfoptError is one ``Error:`` line and its exit code."""

    @click.option("--json", "json_out", is_flag=True, help="Print one JSON document on stdout.")
    @click.option("--quiet", "-q", is_flag=True, help="No progress or summary on stderr.")
    @click.option("--debug", is_flag=True, help="Show tracebacks and TensorFlow's native log.")
    @functools.wraps(fn)
    def wrapper(*args, json_out: bool, quiet: bool, debug: bool, **kwargs):
        state = State(quiet or json_out, json_out, debug)
        try:
            return fn(state, *args, **kwargs)
        except TfoptError as e:
            fail(state, e)
        except KeyboardInterrupt:
            fail(state, Interrupted("interrupted: nothing written"))
        except Exception as e:  # a bug in tfopt or a library: still one line unless --debug
            if state.debug:
                raise
            fail(state, TfoptError(internal_error(e), "run with --debug for the traceback and please report it"))

    return wrapper


def internal_error(e: BaseException) -> str:
    """One line for an exception tfopt did not expect (a bug here or in a library)."""
    first = str(e).strip().splitlines()[0] if str(e).strip() else ""
    return f"internal error: {type(e).__name__}: {first}"


def fail(state: State, e: TfoptError):
    if state.debug:
        import traceback

        traceback.print_exception(e, file=sys.stderr)
    problems = getattr(e, "problems", None) or []
    if state.json:
        click.echo(json.dumps({"schema": "tfopt.error/1", "ok": False, "exit_code": e.exit_code, "error": str(e),
                               "problems": problems}))
    if len(problems) > 1:
        click.echo(f"Error: {e.message}:", err=True)
        for p in problems:
            click.echo(f"  {p}", err=True)
    else:
        click.echo(f"Error: {problems[0] if problems else e}", err=True)
    sys.exit(e.exit_code)


def progress(state: State):
    """The progress view of a command (``with progress(state) as show: run_isolated(..., show)``): bars on an
    interactive stderr, plain lines otherwise, nothing with --quiet / --json."""
    from .progress import ProgressView

    return ProgressView(state.quiet)


def limit_options(fn):
    """The verification gates: global (``--min-agreement 0.97``) or per output (``--min-agreement probs=0.99``)."""
    each = " Repeat with NAME=VALUE for one output (e.g. boxes=25)."
    options = [
        click.option("--max-accuracy-drop", multiple=True, metavar="[NAME=]X",
                     help="Fail (exit 3) if accuracy drops more than X (0.01 = 1 point); classification, binary and "
                          f"multilabel outputs with labels. Default: {modes.gates_help('max_accuracy_drop')}; "
                          "fine-tuned models at least 0.01." + each),
        click.option("--min-agreement", multiple=True, metavar="[NAME=]X",
                     help="Fail if top-1 (classification) or decision (binary/multilabel) agreement with the original "
                          f"is below X. Default: {modes.gates_help('min_agreement')}; fine-tuned models with labels "
                          "report it ungated." + each),
        click.option("--max-f1-drop", multiple=True, metavar="[NAME=]X",
                     help="Fail if macro F1 (classification) or the positives' F1 (binary/multilabel) drops more "
                          "than X; needs labels. Default: fine-tuned models 0.01, binary/multilabel twice the "
                          "accuracy drop." + each),
        click.option("--min-sqnr", multiple=True, metavar="[NAME=]DB",
                     help=f"Fail if an output's SQNR is below DB. Default for regression outputs: "
                          f"{modes.gates_help('min_sqnr', ' dB')}." + each),
        click.option("--min-cosine", multiple=True, metavar="[NAME=]X",
                     help=f"Fail if an output's cosine similarity is below X. Default for regression outputs: "
                          f"{modes.gates_help('min_cosine')}." + each),
        click.option("--threshold", type=float, help="Binary/multilabel decision threshold.  [default: 0.5]"),
        click.option("--output-kind", multiple=True, metavar="NAME=KIND",
                     help="Say what an output is: classification, binary, multilabel or regression "
                          "(default: from the graph, the saved loss, the labels, then the values). "
                          "E.g. --output-kind boxes=regression."),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn
