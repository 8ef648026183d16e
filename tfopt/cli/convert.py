"""``tfopt convert`` and ``tfopt verify``: flags → the library (in a worker process) → summary and exit code."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from .. import modes
from .options import State, limit_options, output_options, progress


def _block(ctx, param, value):
    if value is None:
        return None
    rows, sep, cols = value.lower().partition("x")
    if not (sep and rows.isdigit() and cols.isdigit() and int(rows) > 0 and int(cols) > 0):
        raise click.BadParameter(f"got {value!r}, expected RxC with positive integers, e.g. 1x4")
    return [int(rows), int(cols)]


def input_shapes_option(ctx, param, value):
    from ..errors import UsageError
    from ..shapes import parse_flags

    try:
        return parse_flags(value)
    except UsageError as e:
        raise click.BadParameter(e.message.removeprefix("--input-shape ")) from None


def stage_options(fn):
    """Fine-tuning stages, applied in the fixed order slim → distill → prune → cluster → qat, and their training."""
    options = [
        click.option("--slim", type=float, metavar="R",
                     help="Structured channel pruning: remove this fraction of the channels/units of every "
                          "slimmable layer group (0 < R < 1) and rebuild a narrower model; runs distill after "
                          "it unless --no-distill."),
        click.option("--slim-layer", multiple=True, metavar="NAME=R",
                     help="Per-layer slim ratio (0 <= R < 1; repeatable), e.g. conv1=0.25."),
        click.option("--slim-round", type=int, metavar="N",
                     help="Keep a multiple of N channels per group.  [default: 1]"),
        click.option("--slim-importance", type=click.Choice(["auto", "l1"]),
                     help="Channel ranking: auto = |gamma| of a following BatchNormalization, else the kernel's "
                          "L1 norm; l1 = always the L1 norm.  [default: auto]"),
        click.option("--distill/--no-distill", default=None,
                     help="Knowledge distillation from the original model (default: on with --slim or --student)."),
        click.option("--student", type=click.Path(path_type=Path), metavar="FILE",
                     help="Distill into this smaller model (same input and output names and shapes) instead "
                          "of a slimmed copy."),
        click.option("--temperature", type=float,
                     help="Distillation temperature (softens both outputs before the KL term).  [default: 1.0]"),
        click.option("--alpha", type=float,
                     help="Weight of the hard-label loss in distillation (with labels).  [default: 0.5]"),
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
                     help="Quantization-aware training, then full int8 (implies --quantize int8, in recipes too)."),
    ]
    for option in reversed(options):
        fn = option(fn)
    return training_options(fn)


def training_options(fn, strategy: bool = True):
    """How fine-tuning trains (convert's stages, sweep's fine-tuning candidates)."""
    options = [
        click.option("--epochs", type=int, help="Fine-tuning epochs per stage, at least (see --min-steps).  [default: 2]"),
        click.option("--min-steps", type=int,
                     help="Optimizer steps per stage, at least: small data sets get more epochs.  [default: 300]"),
        click.option("--validation-split", type=float,
                     help="Fraction of the training samples held out; the best validation epoch's weights are "
                          "kept (0 = none; no split under 50 samples).  [default: 0.1]"),
        click.option("--batch-size", type=int, help="Fine-tuning batch size.  [default: 64]"),
        click.option("--learning-rate", type=float,
                     help="Fine-tuning learning rate (Adam).  [default: the model file's optimizer's, else 0.001]"),
        click.option("--loss", help="Fine-tuning loss (tf_keras name); default: the saved compile config, "
                                    "else from the output kind and labels; without labels: distillation."),
        click.option("--skip-unsupported", is_flag=True, default=None,
                     help="Apply stages to the layers TF-MOT supports only (the report lists the others)."),
    ]
    if strategy:
        options.append(click.option("--strategy", type=click.Choice(["none", "mirrored", "multiworker"]),
                                    help="tf.distribute strategy for fine-tuning (multiworker reads TF_CONFIG).  "
                                         "[default: none]"))
    for option in reversed(options):
        fn = option(fn)
    return fn


@click.command()
@click.argument("model", type=click.Path(path_type=Path))
@click.option("--quantize", type=click.Choice(modes.NAMES),
              help=f"{modes.quantize_help()}.  [default: none; int8 with --qat]")
@click.option("--io-type", type=click.Choice(modes.IO_TYPES),
              help=f"Input and output type of calibrated modes: {modes.io_type_help()}.")
@click.option("--data", type=click.Path(path_type=Path),
              help=".npz (x/y or x_train/y_train/x_test/y_test or one key per input), .npy, or an image folder.")
@click.option("--train-data", type=click.Path(path_type=Path), help="Fine-tuning data (default: the train part of --data).")
@click.option("--calibration", type=click.Choice(["data", "random"]), help="random = synthetic calibration (warned).")
@click.option("--calibration-samples", type=int, help="Seeded calibration subset size.  [default: 200]")
@click.option("--eval-samples", type=int, help="Evaluate on at most N held-out samples (default: all).")
@click.option("--scale", type=float, help="Image folders: pixel * scale + offset (default 1/255).")
@click.option("--offset", type=float, help="Image folders: added after --scale (default 0).")
@click.option("--custom-objects", help="FILE.py or module:attr registering custom layers for loading.")
@click.option("--input-shape", multiple=True, callback=input_shapes_option, metavar="[NAME=]d0,d1,...",
              help="Static shape (batch first, -1 = dynamic batch) for an input with dynamic dimensions, "
                   "e.g. seq=1,20,8 for an RNN; repeat per input.")
@click.option("--allow-float-fallback", is_flag=True, default=None, help="int8: keep ops without integer kernels in float.")
@click.option("--sparse-encoding", is_flag=True, default=None, help="Store sparse weights with TFLite sparsity encoding.")
@click.option("--objective", type=click.Choice(modes.OBJECTIVES),
              help="--quantize auto: among the candidates that meet every gate take the smallest or the fastest.  "
                   "[default: size]")
@click.option("--allow-slower", is_flag=True, default=None,
              help="--quantize auto: a candidate slower than the float32 model may be chosen.")
@stage_options
@click.option("--verify/--no-verify", default=None, help="Verify the .tflite against the original (default: verify).")
@limit_options
@click.option("-o", "--output", type=click.Path(path_type=Path),
              help="Output .tflite (default beside the model: <model>.<mode>.tflite, with stage tags such as "
                   "<model>.prune80.qat.int8.tflite). A model that misses a gate is written as <stem>.failed.tflite.")
@click.option("--report", type=click.Path(path_type=Path), help="Also write the JSON report to FILE.")
@click.option("--markdown", type=click.Path(path_type=Path), help="Also write a Markdown summary to FILE.")
@click.option("--junit", type=click.Path(path_type=Path), help="Also write JUnit XML (one case per gate) to FILE.")
@click.option("--html", type=click.Path(path_type=Path),
              help="Also write a self-contained HTML report with plots to FILE (works offline).")
@click.option("--seed", type=int, help="Seed for calibration sampling and fine-tuning.  [default: 0]")
@click.option("--dump-recipe", type=click.Path(path_type=Path),
              help="Write the recipe for this command line to FILE (TOML; JSON for .json; paths relative to its "
                   "folder) and exit; `tfopt run FILE` then writes the same bytes.")
@output_options
def convert(state: State, model: Path, dump_recipe: Path | None, **params):
    """Convert MODEL (.h5, .keras or SavedModel dir) to TFLite and verify it.

    \b
    Examples:
      tfopt convert sample_models/mnist_cnn.h5 --quantize int8 --data sample_models/mnist.npz -o out/m.int8.tflite
      tfopt convert model.keras --quantize float16 --data test.npz -o model.f16.tflite
      tfopt convert model.h5 --quantize dynamic --no-verify
      tfopt convert model.keras --prune 0.8 --qat --data train.npz
      tfopt convert model.keras --slim 0.5 --quantize int8 --data train.npz
      tfopt convert face.h5 --quantize int8 --data faces.npz --output-kind boxes=regression --min-sqnr boxes=25

    Every output is verified by its kind (classification, binary, multilabel, regression) with at least one
    gate; a missed gate exits 3 and the model goes to <stem>.failed.tflite, never to the output path.
    Fine-tuning stages run in the fixed order slim → distill → prune → cluster → qat; the TF-MOT ones
    preserve each other (PQAT, CQAT, sparsity-preserving clustering, PCQAT).
    """
    from ..recipe.flags import recipe_from_flags

    recipe = recipe_from_flags({"model": model, **params})
    if dump_recipe:
        _dump_recipe(state, recipe, dump_recipe)
        return
    run_one(state, recipe)


def _dump_recipe(state: State, recipe, path: Path) -> None:
    """Write the recipe with paths relative to its folder (absolute when they share only the root)."""
    from ..files import check_outputs, write_atomic
    from ..recipe.files import dumps_recipe, relative_paths

    check_outputs({"--dump-recipe": str(path)}, recipe.input_paths())
    fmt = "json" if path.suffix.lower() == ".json" else "toml"
    header = f"written by `tfopt convert --dump-recipe`; run it with: tfopt run {path.name}"
    write_atomic(path, dumps_recipe(relative_paths(recipe, path.parent), fmt, header))
    state.say(f"wrote recipe {path}")


def run_one(state: State, recipe) -> None:
    """One recipe in a worker; errors propagate (exit 1/2), a missed gate exits 3."""
    from .. import pipeline
    from ..render.text import summary
    from ..report import reports_json
    from ..worker import run_isolated

    pipeline.preflight(recipe)
    with progress(state) as show:
        report = run_isolated(pipeline.run, (recipe,), {"checked": True}, show, state.debug)
    state.say(summary(report))
    if state.json:
        click.echo(reports_json([report]), nl=False)
    if not report.ok:
        click.echo("Error: " + "; ".join(report.failures), err=True)
    sys.exit(report.exit_code)


@click.command()
@click.argument("tflite", type=click.Path(path_type=Path))
@click.option("--reference", required=True, type=click.Path(path_type=Path), help="The original Keras model.")
@click.option("--data", required=True, type=click.Path(path_type=Path), help="Held-out data (see convert --data).")
@click.option("--eval-samples", type=click.IntRange(min=1), help="Evaluate on at most N samples.")
@click.option("--custom-objects", help="FILE.py or module:attr for loading the reference.")
@click.option("--fine-tuned", is_flag=True,
              help="The .tflite comes from a fine-tuned model: gate accuracy/F1 drops, report agreement.")
@limit_options
@click.option("--report", type=click.Path(path_type=Path), help="Also write the JSON report to FILE.")
@click.option("--markdown", type=click.Path(path_type=Path), help="Also write a Markdown summary to FILE.")
@click.option("--junit", type=click.Path(path_type=Path), help="Also write JUnit XML (one case per gate) to FILE.")
@click.option("--html", type=click.Path(path_type=Path),
              help="Also write a self-contained HTML report with plots to FILE (works offline).")
@output_options
def verify(state: State, tflite: Path, reference: Path, data: Path, eval_samples, custom_objects, fine_tuned,
           threshold, output_kind, report, markdown, junit, html, **limits):
    """Verify an existing TFLITE model against its --reference model on --data.

    The gates are the defaults of the mode the file was converted with (read from its tensor types),
    per output kind; the flags override them. Nothing is converted or written except the reports.

    \b
    Example:
      tfopt verify out/mnist_cnn.int8.tflite --reference sample_models/mnist_cnn.h5 \\
          --data sample_models/mnist.npz --max-accuracy-drop 0.01
    """
    from .. import verify_job as check
    from ..kinds import parse_overrides
    from ..recipe.flags import flag_name, parse_limit
    from ..recipe.schema import VerifySection
    from ..render.text import summary
    from ..worker import run_isolated

    gates = {k: parse_limit(v, flag_name(k)) for k, v in limits.items()}
    section = VerifySection(**gates)
    absolute = lambda p: str(p.resolve()) if p is not None else None  # noqa: E731
    custom = absolute(Path(custom_objects)) if custom_objects and custom_objects.endswith(".py") else custom_objects
    job = check.VerifyJob(
        absolute(tflite), absolute(reference), absolute(data), custom, eval_samples, section.limits(),
        parse_overrides(output_kind), 0.5 if threshold is None else threshold, fine_tuned,
        absolute(report), absolute(markdown), absolute(junit), absolute(html),
    )
    check.check_verify_job(job)
    with progress(state) as show:
        result = run_isolated(check.verify_file, (job,), {"checked": True}, show, state.debug)
    state.say(summary(result))
    if state.json:
        click.echo(result.to_json(), nl=False)
    if not result.ok:
        click.echo("Error: " + "; ".join(result.failures), err=True)
    sys.exit(result.exit_code)
