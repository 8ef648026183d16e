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
            _fail(state, TfoptError(internal_error(e), "run with --debug for the traceback and please report it"))

    return wrapper


def internal_error(e: BaseException) -> str:
    """One line for an exception tfopt did not expect (a bug here or in a library)."""
    first = str(e).strip().splitlines()[0] if str(e).strip() else ""
    return f"internal error: {type(e).__name__}: {first}"


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
    # flag parameter -> recipe field path; every recipe field has a flag and vice versa (tests/test_recipe.py
    # checks it). Stage settings are `stages[KIND].FIELD`; `stages[KIND]` for a flag that only adds a stage.
    "model": "model.path",
    "custom_objects": "model.custom_objects",
    "input_shape": "model.input_shapes",
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
    "prune": "stages[prune].sparsity",
    "prune_schedule": "stages[prune].schedule",
    "prune_pattern": "stages[prune].pattern",
    "prune_block": "stages[prune].block",
    "cluster": "stages[cluster].clusters",
    "cluster_init": "stages[cluster].init",
    "qat": "stages[qat]",
    "epochs": "train.epochs",
    "batch_size": "train.batch_size",
    "learning_rate": "train.learning_rate",
    "loss": "train.loss",
    "strategy": "train.strategy",
    "skip_unsupported": "train.skip_unsupported",
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
    """Flags → the same nested dict a recipe file holds (absolute paths).

    Stage flags map to ``stages[KIND].FIELD`` (or ``stages[KIND]`` for a flag that only adds the
    stage): the flag named like the kind (``--prune``, ``--cluster``, ``--qat``) adds the stage, the
    others set its fields and need it.  Stages are emitted in the fixed order prune → cluster → qat.
    """
    from .recipe import PATH_FIELDS, STAGE_ORDER

    raw: dict = {}
    stages: dict[str, dict] = {}
    for param, path in CONVERT_FLAGS.items():
        value = params.get(param)
        if value is None or value is False and path.startswith("stages["):
            continue
        if path in PATH_FIELDS and (path != "model.custom_objects" or str(value).endswith(".py")):
            value = str(Path(value).resolve())
        if path.startswith("stages["):
            kind, _, leaf = path.removeprefix("stages[").partition("]")
            stage = stages.setdefault(kind, {"kind": kind})
            if leaf:
                stage[leaf.lstrip(".")] = value
            continue
        node = raw
        *parents, leaf = path.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    for kind, stage in stages.items():
        if params.get(kind) in (None, False):
            flags = [f"--{k.replace('_', '-')}" for k, v in CONVERT_FLAGS.items() if v.startswith(f"stages[{kind}]")]
            raise UsageError(f"{', '.join(f for f in flags if params.get(f[2:].replace('-', '_')) is not None)} "
                             f"needs --{kind}")
    if stages:
        raw["stages"] = [stages[k] for k in STAGE_ORDER if k in stages]
    return raw


def _input_shapes(ctx, param, value):
    from .shapes import parse_flags

    try:
        return parse_flags(value)
    except UsageError as e:
        raise click.BadParameter(e.message.removeprefix("--input-shape ")) from None


def _block(ctx, param, value):
    if value is None:
        return None
    rows, sep, cols = value.lower().partition("x")
    if not (sep and rows.isdigit() and cols.isdigit() and int(rows) > 0 and int(cols) > 0):
        raise click.BadParameter(f"got {value!r}, expected RxC with positive integers, e.g. 1x4")
    return [int(rows), int(cols)]


def stage_options(fn):
    """Fine-tuning stages (TF-MOT), applied in the fixed order prune → cluster → qat."""
    options = [
        click.option("--prune", type=float, metavar="SPARSITY",
                     help="Magnitude pruning to this fraction of zero weights (0 <= s < 1), e.g. 0.8."),
        click.option("--prune-schedule", type=click.Choice(["polynomial", "constant"]),
                     help="Pruning schedule: polynomial ramp to the target (default) or constant."),
        click.option("--prune-pattern", type=click.Choice(["unstructured", "2:4"]),
                     help="unstructured (default) or 2:4 (2 zeros in every 4 weights; sparsity 0.5)."),
        click.option("--prune-block", callback=_block, metavar="RxC", help="Prune in blocks of RxC weights, e.g. 1x4."),
        click.option("--cluster", type=int, metavar="N", help="Weight clustering: at most N distinct values per kernel."),
        click.option("--cluster-init", type=click.Choice(["kmeans++", "linear", "random", "density-based"]),
                     help="Centroid initialisation (default kmeans++)."),
        click.option("--qat", is_flag=True, default=None,
                     help="Quantization-aware training, then full int8 (needs --quantize int8)."),
        click.option("--epochs", type=int, help="Fine-tuning epochs per stage.  [default: 2]"),
        click.option("--batch-size", type=int, help="Fine-tuning batch size.  [default: 64]"),
        click.option("--learning-rate", type=float, help="Fine-tuning learning rate (Adam).  [default: 0.0001]"),
        click.option("--loss", help="Fine-tuning loss (tf_keras name); default: the saved compile config, "
                                    "else from the output activation and labels; without labels: distillation."),
        click.option("--strategy", type=click.Choice(["none", "mirrored", "multiworker"]),
                     help="tf.distribute strategy for fine-tuning (multiworker reads TF_CONFIG).  [default: none]"),
        click.option("--skip-unsupported", is_flag=True, default=None,
                     help="Apply stages to the layers TF-MOT supports only (the report lists the others)."),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def threshold_options(fn):
    fn = click.option("--min-sqnr", type=float, help="Fail (exit 3) if any output's SQNR (dB) is below this.")(fn)
    fn = click.option(
        "--min-agreement",
        type=float,
        help="Fail if top-1 agreement with the original is below this (default per mode: 0.97 dynamic/int8/int16x8, "
        "0.99 float16, 0.995 none; tfopt verify: 0.97).",
    )(fn)
    fn = click.option(
        "--max-accuracy-drop",
        type=float,
        help="Fail if accuracy drops more than this fraction (0.01 = 1 point; default per mode: 0.01 dynamic/int8/"
        "int16x8, 0.005 float16, 0.002 none; tfopt verify: 0.01).",
    )(fn)
    return fn


@main.command()
@click.argument("model", type=click.Path(path_type=Path))
@click.option("--quantize", type=click.Choice(MODES),
              help="none = float32; dynamic = int8 weights; float16; int8 = full integer; int16x8.  "
                   "[default: none; int8 with --qat]")
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
@click.option("--input-shape", multiple=True, callback=_input_shapes, metavar="[NAME=]d0,d1,...",
              help="Static shape (batch first, -1 = dynamic batch) for an input with dynamic dimensions, "
                   "e.g. seq=1,20,8 for an RNN; repeat per input.")
@click.option("--allow-float-fallback", is_flag=True, default=None, help="int8: keep ops without integer kernels in float.")
@click.option("--sparse-encoding", is_flag=True, default=None, help="Store sparse weights with TFLite sparsity encoding.")
@stage_options
@click.option("--verify/--no-verify", default=None, help="Verify the .tflite against the original (default: verify).")
@threshold_options
@click.option("-o", "--output", type=click.Path(path_type=Path), help="Output .tflite (default beside the model: <model>.<mode>.tflite, with stage tags "
              "such as <model>.prune80.qat.int8.tflite).")
@click.option("--report", type=click.Path(path_type=Path), help="Also write the JSON report to FILE.")
@click.option("--markdown", type=click.Path(path_type=Path), help="Also write a Markdown summary to FILE.")
@click.option("--junit", type=click.Path(path_type=Path), help="Also write JUnit XML (one case per threshold) to FILE.")
@click.option("--seed", type=int, help="Seed for calibration sampling and fine-tuning.  [default: 0]")
@click.option("--dump-recipe", type=click.Path(path_type=Path), help="Write the recipe for this command line to FILE (TOML; JSON for .json; paths relative to its folder) "
                   "and exit; `tfopt run FILE` then writes the same bytes.")
@output_options
def convert(state: State, model: Path, dump_recipe: Path | None, **params):
    """Convert MODEL (.h5, .keras or SavedModel dir) to TFLite and verify it.

    \b
    Examples:
      tfopt convert model.h5 --quantize int8 --data calib.npz
      tfopt convert model.keras --quantize float16 --data test.npz -o model.f16.tflite
      tfopt convert model.h5 --quantize dynamic --no-verify
      tfopt convert model.keras --prune 0.8 --qat --quantize int8 --data train.npz --epochs 4

    Fine-tuning stages (TF-MOT) run in the fixed order prune → cluster → qat; together they
    preserve each other (PQAT, CQAT, sparsity-preserving clustering, PCQAT).  Without labels in
    the training data they distill from the original model's outputs.
    """
    from .recipe import from_dict

    if params.get("qat") and params.get("quantize") is None:
        params["quantize"] = "int8"  # QAT trains for full-integer int8
    recipe = from_dict(recipe_from_flags({"model": model, **params}), source="command line")
    if dump_recipe:
        _dump_recipe(state, recipe, dump_recipe)
        return
    _run_one(state, recipe)


def _dump_recipe(state: State, recipe, path: Path) -> None:
    """Write the recipe with paths relative to its folder (absolute when they share only the root)."""
    from .files import refuse_inputs, write_atomic
    from .recipe_io import dumps_recipe, relative_paths

    inputs = {"input model": recipe.model.path, "data file": recipe.data.path, "training data": recipe.data.train,
              "custom objects file": recipe.model.custom_objects}
    refuse_inputs({"recipe": str(path)}, inputs)
    fmt = "json" if path.suffix.lower() == ".json" else "toml"
    header = f"written by `tfopt convert --dump-recipe`; run it with: tfopt run {path.name}"
    write_atomic(path, dumps_recipe(relative_paths(recipe, path.parent), fmt, header))
    state.say(f"wrote recipe {path}")


def _run_one(state: State, recipe) -> None:
    """``tfopt convert``: one recipe; errors propagate (exit 1/2), a missed threshold exits 3."""
    from .pipeline import preflight
    from .report import reports_json, summary
    from .worker import run_isolated

    preflight(recipe)
    report = run_isolated("tfopt.pipeline:run", (recipe,), _progress(state), state.debug)
    state.say(summary(report))
    if state.json:
        click.echo(reports_json([report]), nl=False)
    if not report.ok:
        click.echo("Error: " + "; ".join(report.failures), err=True)
    sys.exit(report.exit_code)


def _run_many(state: State, named: list, combined: dict[str, Path | None]) -> None:
    """``tfopt run``: each recipe in its own worker, in order; a recipe that errors does not stop the others."""
    from .pipeline import preflight
    from .report import summary
    from .runs import Outcome, run_json, summary as run_summary, worst_exit_code, write_run_reports
    from .worker import run_isolated

    outcomes = []
    for i, (name, recipe) in enumerate(named, 1):
        state.say(f"=== [{i}/{len(named)}] {name}")
        try:
            preflight(recipe)
            report = run_isolated("tfopt.pipeline:run", (recipe,), _progress(state), state.debug)
        except TfoptError as e:
            state.say(f"Error: {e}")
            outcomes.append(Outcome(name, error=str(e), error_code=e.exit_code))
            continue
        except Exception as e:  # noqa: BLE001 - a bug in one recipe's run must not hide the others' results
            if state.debug:
                raise
            outcomes.append(Outcome(name, error=internal_error(e)))
            state.say(f"Error: {outcomes[-1].error}")
            continue
        outcomes.append(Outcome(name, report))
        state.say(summary(report))
    write_run_reports(outcomes, combined.get("report"), combined.get("markdown"), combined.get("junit"))
    state.say(run_summary(outcomes))
    if state.json:
        click.echo(run_json(outcomes), nl=False)
    sys.exit(worst_exit_code([o.exit_code for o in outcomes]))


# ------------------------------------------------------------------ verify


@main.command()
@click.argument("tflite", type=click.Path(path_type=Path))
@click.option("--reference", required=True, type=click.Path(path_type=Path), help="The original Keras model.")
@click.option("--data", required=True, type=click.Path(path_type=Path), help="Held-out data (see convert --data).")
@click.option("--eval-samples", type=click.IntRange(min=1), help="Evaluate on at most N samples.")
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
    accuracy = result["test_accuracy"]
    shown = "n/a (no x_test/y_test in the data)" if accuracy is None else f"{accuracy:.4f}"
    state.say(f"wrote {output}: test accuracy {shown} after {epochs} epochs")
    if state.json:
        click.echo(json.dumps(result, indent=2))


# ------------------------------------------------------------------ run / recipes


@main.command()
@click.argument("recipes", nargs=-1, required=True)
@click.option("--set", "overrides", multiple=True, metavar="FIELD=VALUE",
              help="Override a field in every recipe, e.g. convert.quantize=int8 or stages[0].sparsity=0.9 "
                   "(a TOML value; a bare word is a string; relative paths are relative to the current folder).")
@click.option("--report", type=click.Path(path_type=Path), help="Write one JSON document (tfopt.run/1) covering every recipe.")
@click.option("--markdown", type=click.Path(path_type=Path), help="Write one Markdown summary of every recipe (CI job summary).")
@click.option("--junit", type=click.Path(path_type=Path), help="Write JUnit XML: a suite per recipe, a case per threshold.")
@click.option("--output-dir", type=click.Path(path_type=Path, file_okay=False),
              help="Write each recipe's .tflite to DIR/<recipe name>.tflite (created if missing; overrides output.tflite).")
@output_options
def run(state: State, recipes: tuple[str, ...], overrides: tuple[str, ...], output_dir: Path | None, **combined):
    """Run recipe files (or shipped recipe names) in order; print one summary table; exit with the worst code.

    Every recipe is validated first: any recipe error stops the run before work starts (exit 2).
    A recipe that then errors does not stop the others. Exit code: 2 usage > 1 error > 3 missed
    threshold > 0 ok. See recipes/README.md for the format.

    \b
    Examples:
      tfopt run recipes/int8.toml
      tfopt run int8 float16 --set verify.max_accuracy_drop=0.005
      tfopt run ci/*.toml --junit junit.xml --markdown summary.md
    """
    from .runs import load_all, recipe_label, refuse_clashes

    named = [(recipe_label(name), recipe) for name, recipe in zip(recipes, load_all(recipes, list(overrides)))]
    if output_dir is not None:
        output_dir.mkdir(parents=True, exist_ok=True)
        named = [(name, recipe.with_output_dir(output_dir, name)) for name, recipe in named]
    refuse_clashes(named, combined)
    _refuse_unusable(named)
    _run_many(state, named, combined)


def _refuse_unusable(named: list) -> None:
    """Usage problems the recipe schema alone cannot see (verification without data, output clashes), up front."""
    from .pipeline import preflight

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


from . import cli_tools  # noqa: E402,F401 - registers inspect / bench / export-c on `main`

if __name__ == "__main__":  # pragma: no cover
    main()
