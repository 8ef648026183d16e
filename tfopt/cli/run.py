"""``tfopt run`` (recipe files and shipped templates, CI gating) and ``tfopt recipes``."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from ..errors import RecipeError, TfoptError, UsageError
from .options import State, fail, internal_error, output_options, progress


@click.command()
@click.argument("recipes", nargs=-1, required=True)
@click.option("--set", "overrides", multiple=True, metavar="FIELD=VALUE",
              help="Override a field in every recipe, e.g. model.path=m.h5, convert.quantize=int8 or "
                   "stages[0].sparsity=0.9 (a TOML value; a bare word is a string; relative paths are relative "
                   "to the current folder).")
@click.option("--report", type=click.Path(path_type=Path), help="Write one JSON document (tfopt.run/1) covering every recipe.")
@click.option("--markdown", type=click.Path(path_type=Path), help="Write one Markdown summary of every recipe (CI job summary).")
@click.option("--junit", type=click.Path(path_type=Path), help="Write JUnit XML: a suite per recipe, a case per gate.")
@click.option("--html", type=click.Path(path_type=Path),
              help="Write one self-contained HTML report (with plots) of every recipe (works offline).")
@click.option("--output-dir", type=click.Path(path_type=Path),
              help="Write each recipe's .tflite to DIR/<recipe name>.tflite (created if missing; overrides output.tflite).")
@output_options
def run(state: State, recipes: tuple[str, ...], overrides: tuple[str, ...], output_dir: Path | None, **combined):
    """Run recipe files or shipped templates in order; print one summary table; exit with the worst code.

    Every recipe is validated first: any recipe error stops the run before work starts (exit 2).
    A recipe that then errors does not stop the others. Exit code: 2 usage > 130 interrupted >
    1 error > 3 missed gate > 0 ok. See recipes/README.md for the format.

    \b
    Examples:
      tfopt run examples/int8.toml
      tfopt run int8 --set model.path=model.h5 --set data.path=data.npz
      tfopt run examples/int8.toml examples/float16.toml --set verify.max_accuracy_drop=0.005
      tfopt run ci/*.toml --junit junit.xml --markdown summary.md --html report.html --output-dir build
    """
    from ..errors import OutputError
    from ..files import check_outputs
    from ..runs import load_all, recipe_label, refuse_clashes

    named = [(recipe_label(name), recipe) for name, recipe in zip(recipes, load_all(recipes, list(overrides)))]
    if output_dir is not None:
        if output_dir.exists() and not output_dir.is_dir():
            raise OutputError(f"--output-dir {output_dir}: it is a file, expected a folder")
        output_dir.mkdir(parents=True, exist_ok=True)
        named = [(name, recipe.with_output_dir(output_dir, name)) for name, recipe in named]
    refuse_clashes(named, combined)
    check_outputs({f"--{k}": v for k, v in combined.items() if v}, {})
    _refuse_unusable(named)
    _run_many(state, named, combined)


def _refuse_unusable(named: list) -> None:
    """Usage problems the recipe schema alone cannot see (verification without data, output paths), up front."""
    from ..pipeline import preflight

    problems = []
    for name, recipe in named:
        try:
            preflight(recipe)
        except UsageError as e:
            problems.append(f"{name}: {e}")
        except TfoptError:  # a missing model or data file: reported by that recipe's run, the others go on
            pass
    if problems:
        raise UsageError(problems[0]) if len(problems) == 1 else RecipeError(f"{len(problems)} problems", problems)


def _run_many(state: State, named: list, combined: dict[str, Path | None]) -> None:
    """Each recipe in its own worker, in order; a recipe that errors does not stop the others."""
    from .. import pipeline
    from ..render.text import summary
    from ..runs import Outcome, run_json, summary as run_summary, worst_exit_code, write_run_reports
    from ..worker import run_isolated

    outcomes = []
    for i, (name, recipe) in enumerate(named, 1):
        state.say(f"=== [{i}/{len(named)}] {name}")
        try:
            pipeline.preflight(recipe)
            with progress(state) as show:
                report = run_isolated(pipeline.run, (recipe,), {"checked": True}, show, state.debug)
        except TfoptError as e:
            state.say(f"Error: {e}")
            outcomes.append(Outcome(name, error=str(e), error_code=e.exit_code))
            if e.exit_code == 130:
                break  # interrupted: stop the run, still write what ran
            continue
        except Exception as e:  # noqa: BLE001 - a bug in one recipe's run must not hide the others' results
            if state.debug:
                raise
            outcomes.append(Outcome(name, error=internal_error(e)))
            state.say(f"Error: {outcomes[-1].error}")
            continue
        outcomes.append(Outcome(name, report))
        state.say(summary(report))
    write_run_reports(outcomes, combined.get("report"), combined.get("markdown"), combined.get("junit"),
                      combined.get("html"))
    state.say(run_summary(outcomes))
    if state.json:
        click.echo(run_json(outcomes), nl=False)
    sys.exit(worst_exit_code([o.exit_code for o in outcomes]))


@click.group()
def recipes():
    """List, show and validate recipes (shipped templates are addressable by name).

    \b
    Examples:
      tfopt recipes list
      tfopt recipes show prune80-qat-int8
      tfopt recipes validate examples/*.toml
    """


@recipes.command("list")
def recipes_list():
    """List the shipped recipe templates (run one with --set model.path=... --set data.path=...).

    \b
    Example:
      tfopt recipes list
    """
    from ..recipe.templates import shipped

    for name, path in shipped().items():
        first = next((ln[1:].strip() for ln in path.read_text().splitlines() if ln.startswith("#")), "")
        click.echo(f"{name:24s} {first}")


@recipes.command("show")
@click.argument("name")
def recipes_show(name: str):
    """Print a shipped template (or a recipe file).

    \b
    Example:
      tfopt recipes show int8 > my-int8.toml
    """
    from ..recipe.templates import find

    try:
        click.echo(find(name).read_text(), nl=False)
    except TfoptError as e:
        fail(State(), e)


@recipes.command("validate")
@click.argument("files", nargs=-1, required=True)
@click.option("--set", "overrides", multiple=True, metavar="FIELD=VALUE", help="Apply overrides before validating.")
def recipes_validate(files: tuple[str, ...], overrides: tuple[str, ...]):
    """Validate recipe files; list every problem in each (exit 2 if any).

    \b
    Examples:
      tfopt recipes validate examples/*.toml
      tfopt recipes validate int8 --set model.path=m.h5 --set data.path=d.npz
    """
    from ..recipe.templates import load

    problems = []
    for f in files:
        try:
            load(f, list(overrides))
            click.echo(f"ok: {f}", err=True)
        except RecipeError as e:
            problems.extend(e.problems or [str(e)])
    if problems:
        fail(State(), RecipeError(f"{len(problems)} problem(s)", problems))
