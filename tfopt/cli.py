"""The ``tfopt`` command line: parse, call the library, format.  Nothing else lives here.

TensorFlow is never imported in this process: the work runs in a worker process
(``tfopt.worker``), which also turns native converter crashes into clear errors.
"""

from __future__ import annotations

import functools
import json
import sys
from pathlib import Path

import click

from .errors import RecipeError, TfoptError, UsageError

MODES = ("none", "dynamic", "float16", "int8", "int16x8")
IO_TYPES = ("int8", "uint8", "int16", "float32")


class State:
    def __init__(self, quiet: bool = False, json_out: bool = False, debug: bool = False):
        self.quiet, self.json, self.debug = quiet, json_out, debug

    def say(self, message: str) -> None:
        if not self.quiet:
            click.echo(message, err=True)


def output_options(fn):
    """--json / --quiet / --debug, shared by every command that does work."""

    @click.option("--json", "json_out", is_flag=True, help="Print one JSON document on stdout.")
    @click.option("--quiet", "-q", is_flag=True, help="No progress or summary on stderr.")
    @click.option("--debug", is_flag=True, help="Show tracebacks and TensorFlow's native log.")
    @functools.wraps(fn)
    def wrapper(*args, json_out: bool, quiet: bool, debug: bool, **kwargs):
        state = State(quiet or json_out, json_out, debug)
        try:
            return fn(state, *args, **kwargs)
        except TfoptError as e:
            _fail(state, e)
        except Exception as e:  # a bug in tfopt or a library: still one line unless --debug
            if state.debug:
                raise
            _fail(state, TfoptError(f"internal error: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}",
                                    "run with --debug for the traceback and please report it"))

    return wrapper


def _fail(state: State, e: TfoptError):
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


def _progress(state: State):
    from .worker import describe_stage

    return lambda stage: state.say(f"… {describe_stage(stage)}")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="tfopt")
def main():
    """tfopt: turn a trained Keras model into a small, fast TFLite model and prove it still works.

    \b
      tfopt convert model.h5 --quantize int8 --data calib.npz
      tfopt verify model.int8.tflite --reference model.h5 --data test.npz
      tfopt run recipes/int8.toml

    Exit codes: 0 ok, 1 error, 2 usage or recipe error, 3 verification missed a threshold.
    """


# ------------------------------------------------------------------ convert

CONVERT_FLAGS = {
    # flag parameter -> recipe field path
    "model": "model.path",
    "custom_objects": "model.custom_objects",
    "data": "data.path",
    "train_data": "data.train",
    "calibration": "data.calibration",
    "calibration_samples": "data.calibration_samples",
    "eval_samples": "data.eval_samples",
    "scale": "data.scale",
    "offset": "data.offset",
    "quantize": "convert.quantize",
    "io_type": "convert.io_type",
    "allow_float_fallback": "convert.allow_float_fallback",
    "sparse_encoding": "convert.sparse_encoding",
    "verify": "verify.enabled",
    "max_accuracy_drop": "verify.max_accuracy_drop",
    "min_agreement": "verify.min_agreement",
    "min_sqnr": "verify.min_sqnr",
    "output": "output.tflite",
    "report": "output.report",
    "markdown": "output.markdown",
    "junit": "output.junit",
    "seed": "seed",
}


def recipe_from_flags(params: dict) -> dict:
    """Flags → the same nested dict a recipe file holds (absolute paths)."""
    raw: dict = {}
    for param, path in CONVERT_FLAGS.items():
        value = params.get(param)
        if value is None:
            continue
        if path.endswith(("path", ".train", ".tflite", ".report", ".markdown", ".junit")):
            value = str(Path(value).resolve())
        if path == "model.custom_objects" and str(value).endswith(".py"):
            value = str(Path(value).resolve())
        node = raw
        *parents, leaf = path.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    return raw


def threshold_options(fn):
    fn = click.option("--min-sqnr", type=float, help="Fail (exit 3) if any output's SQNR (dB) is below this.")(fn)
    fn = click.option(
        "--min-agreement",
        type=float,
        help="Fail if top-1 agreement with the original is below this (default: 0.97 quantized, 0.99 float16).",
    )(fn)
    fn = click.option(
        "--max-accuracy-drop",
        type=float,
        help="Fail if accuracy drops more than this fraction (0.01 = 1 point; default 0.01, 0.005 float16).",
    )(fn)
    return fn


@main.command()
@click.argument("model", type=click.Path(path_type=Path))
@click.option("--quantize", type=click.Choice(MODES), default="none", show_default=True,
              help="none = float32; dynamic = int8 weights; float16; int8 = full integer; int16x8.")
@click.option("--io-type", type=click.Choice(IO_TYPES),
              help="int8/int16x8 input and output type (default int8 / int16: full-integer deployment).")
@click.option("--data", type=click.Path(path_type=Path),
              help=".npz (x/y or x_train/y_train/x_test/y_test or one key per input), .npy, or an image folder.")
@click.option("--train-data", type=click.Path(path_type=Path), help="Fine-tuning data (default: the train part of --data).")
@click.option("--calibration", type=click.Choice(["data", "random"]), help="random = synthetic calibration (warned).")
@click.option("--calibration-samples", type=int, help="Seeded calibration subset size.  [default: 200]")
@click.option("--eval-samples", type=int, help="Evaluate on at most N held-out samples (default: all).")
@click.option("--scale", type=float, help="Image folders: pixel * scale + offset (default 1/255).")
@click.option("--offset", type=float, help="Image folders: added after --scale (default 0).")
@click.option("--custom-objects", help="FILE.py or module:attr registering custom layers for loading.")
@click.option("--allow-float-fallback", is_flag=True, default=None, help="int8: keep ops without integer kernels in float.")
@click.option("--sparse-encoding", is_flag=True, default=None, help="Store sparse weights with TFLite sparsity encoding.")
@click.option("--verify/--no-verify", default=None, help="Verify the .tflite against the original (default: verify).")
@threshold_options
@click.option("-o", "--output", type=click.Path(path_type=Path), help="Output .tflite (default: <model>.<mode>.tflite beside it).")
@click.option("--report", type=click.Path(path_type=Path), help="Also write the JSON report to FILE.")
@click.option("--markdown", type=click.Path(path_type=Path), help="Also write a Markdown summary to FILE.")
@click.option("--junit", type=click.Path(path_type=Path), help="Also write JUnit XML (one case per threshold) to FILE.")
@click.option("--seed", type=int, help="Seed for calibration sampling and fine-tuning.  [default: 0]")
@click.option("--dump-recipe", type=click.Path(path_type=Path), help="Write the recipe for this command line to FILE and exit.")
@output_options
def convert(state: State, model: Path, dump_recipe: Path | None, **params):
    """Convert MODEL (.h5, .keras or SavedModel dir) to TFLite and verify it.

    \b
    Examples:
      tfopt convert model.h5 --quantize int8 --data calib.npz
      tfopt convert model.keras --quantize float16 --data test.npz -o model.f16.tflite
      tfopt convert model.h5 --quantize dynamic --no-verify
    """
    from .recipe import dumps_toml, from_dict

    recipe = from_dict(recipe_from_flags({"model": model, **params}), source="command line")
    if dump_recipe:
        from .files import write_atomic

        text = json.dumps(recipe.to_dict(), indent=2) + "\n" if dump_recipe.suffix == ".json" else dumps_toml(recipe)
        write_atomic(dump_recipe, text)
        state.say(f"wrote recipe {dump_recipe}")
        return
    _run_recipes(state, [recipe])


def _run_recipes(state: State, recipes: list) -> None:
    from .pipeline import preflight
    from .report import summary
    from .worker import run_isolated

    reports, worst = [], 0
    for recipe in recipes:
        try:
            preflight(recipe)
            report = run_isolated("tfopt.pipeline:run", (recipe,), _progress(state), state.debug)
        except TfoptError as e:
            if len(recipes) == 1:
                raise
            state.say(f"Error: {e}")
            worst = max(worst, e.exit_code)
            continue
        reports.append(report)
        state.say(summary(report))
        worst = max(worst, report.exit_code)
    if state.json:
        from .report import reports_json

        click.echo(reports_json(reports), nl=False)
    if len(recipes) == 1 and reports and not reports[0].ok:
        click.echo("Error: " + "; ".join(reports[0].failures), err=True)
    if len(recipes) > 1:
        state.say(_multi_summary(recipes, reports))
    sys.exit(worst)


def _multi_summary(recipes, reports) -> str:
    lines = ["", "summary:"]
    for r in reports:
        status = "ok" if r.ok else "FAILED"
        lines.append(f"  {status:7s} {r.mode:8s} {r.output}")
    failed = len(recipes) - len(reports)
    if failed:
        lines.append(f"  {failed} recipe(s) stopped with an error (see above)")
    return "\n".join(lines)


# ------------------------------------------------------------------ verify


@main.command()
@click.argument("tflite", type=click.Path(path_type=Path))
@click.option("--reference", required=True, type=click.Path(path_type=Path), help="The original Keras model.")
@click.option("--data", required=True, type=click.Path(path_type=Path), help="Held-out data (see convert --data).")
@click.option("--eval-samples", type=int, help="Evaluate on at most N samples.")
@click.option("--custom-objects", help="FILE.py or module:attr for loading the reference.")
@threshold_options
@click.option("--report", type=click.Path(path_type=Path), help="Also write the JSON report to FILE.")
@output_options
def verify(state: State, tflite: Path, **params):
    """Verify an existing TFLITE model against its --reference model on --data.

    \b
    Example:
      tfopt verify model.int8.tflite --reference model.h5 --data test.npz --max-accuracy-drop 0.01
    """
    from .report import summary
    from .worker import run_isolated

    params = {k: (str(v.resolve()) if isinstance(v, Path) else v) for k, v in params.items()}
    report = run_isolated("tfopt.pipeline:verify_file", (str(tflite.resolve()), params), _progress(state), state.debug)
    state.say(summary(report))
    if state.json:
        click.echo(report.to_json(), nl=False)
    if not report.ok:
        click.echo("Error: " + "; ".join(report.failures), err=True)
    sys.exit(report.exit_code)


# ------------------------------------------------------------------ train


@main.command()
@click.option("--arch", type=click.Choice(["small-cnn", "mlp"]), default="small-cnn", show_default=True)
@click.option("--data", required=True, type=click.Path(path_type=Path), help=".npz with x_train/y_train (and x_test/y_test).")
@click.option("-o", "--output", required=True, type=click.Path(path_type=Path), help="Model file to write (.h5 or .keras).")
@click.option("--epochs", type=int, default=3, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@output_options
def train(state: State, arch: str, data: Path, output: Path, epochs: int, seed: int):
    """Train a small reference Keras model (tf_keras) on labelled data.

    \b
    Example:
      tfopt train --arch small-cnn --data sample_models/mnist.npz -o model.h5 --epochs 3
    """
    from .worker import run_isolated

    args = (arch, str(data.resolve()), str(output.resolve()), epochs, seed)
    result = run_isolated("tfopt.train:train_cli", args, _progress(state), state.debug)
    state.say(f"wrote {output}: test accuracy {result['test_accuracy']:.4f} after {epochs} epochs")
    if state.json:
        click.echo(json.dumps(result, indent=2))


# ------------------------------------------------------------------ run / recipes


@main.command()
@click.argument("recipes", nargs=-1, required=True)
@click.option("--set", "overrides", multiple=True, metavar="FIELD=VALUE", help="Override a recipe field, e.g. convert.quantize=int8.")
@output_options
def run(state: State, recipes: tuple[str, ...], overrides: tuple[str, ...]):
    """Run one or more recipe files (or shipped recipe names) in order; exit with the worst code.

    \b
    Examples:
      tfopt run recipes/int8.toml
      tfopt run int8 float16 --set verify.max_accuracy_drop=0.005
    """
    from .recipe import load_recipe
    from .recipes import find

    loaded, problems = [], []
    for name in recipes:
        try:
            loaded.append(load_recipe(find(name), list(overrides)))
        except RecipeError as e:
            problems.extend(e.problems or [str(e)])
    if problems:
        raise RecipeError(f"{len(problems)} problem(s) in the recipes", problems)
    _run_recipes(state, loaded)


@main.group()
def recipes():
    """List, show and validate recipes (shipped ones are addressable by name)."""


@recipes.command("list")
def recipes_list():
    """List the shipped recipes."""
    from .recipes import shipped

    for name, path in shipped().items():
        first = next((ln[1:].strip() for ln in path.read_text().splitlines() if ln.startswith("#")), "")
        click.echo(f"{name:24s} {first}")


@recipes.command("show")
@click.argument("name")
def recipes_show(name: str):
    """Print a shipped recipe (or a recipe file)."""
    from .recipes import find

    try:
        click.echo(find(name).read_text(), nl=False)
    except TfoptError as e:
        _fail(State(), e)


@recipes.command("validate")
@click.argument("files", nargs=-1, required=True)
def recipes_validate(files: tuple[str, ...]):
    """Validate recipe files; list every problem in each (exit 2 if any)."""
    from .recipe import load_recipe
    from .recipes import find

    problems = []
    for f in files:
        try:
            load_recipe(find(f))
            click.echo(f"ok: {f}", err=True)
        except RecipeError as e:
            problems.extend(e.problems or [str(e)])
    if problems:
        _fail(State(), RecipeError(f"{len(problems)} problem(s)", problems))


if __name__ == "__main__":  # pragma: no cover
    main()
