"""``tfopt sweep``: flags → ``SweepConfig`` → ``tfopt.sweep.run.sweep`` (which starts the workers) → summary, exit code."""

from __future__ import annotations

import functools
import sys
from pathlib import Path

import click

from .convert import input_shapes_option, training_options
from .options import State, limit_options, output_options, progress

OBJECTIVE_HELP = ("What 'best' minimises among the candidates that pass every gate: size (.tflite bytes), gzip "
                  "(gzip bytes: what a download costs) or latency (p50 of one invoke(), LiteRT/XNNPACK).")


def _candidate_help() -> str:
    from ..sweep.candidates import CANDIDATES, DEFAULT

    return ("Comma-separated candidates: " + ", ".join(CANDIDATES) + f".  [default: {','.join(DEFAULT)}; "
            "with --recipes: none]")


@click.command()
@click.argument("model", type=click.Path(path_type=Path))
@click.option("--data", type=click.Path(path_type=Path), required=True,
              help="Held-out data: calibration, evaluation and (fine-tuning candidates) training; see convert --data.")
@click.option("--candidates", metavar="LIST", help=_candidate_help())
@click.option("--recipes", "recipes_dir", type=click.Path(path_type=Path),
              help="Also try every *.toml recipe in DIR (its stages, training, conversion and gates; the sweep's "
                   "model, data and seed).")
@click.option("--objective", type=click.Choice(["size", "gzip", "latency"]), default="size", show_default=True,
              help=OBJECTIVE_HELP)
@click.option("--threads", type=click.IntRange(min=1), default=1, show_default=True,
              help="Interpreter threads for the latency measurement.")
@click.option("--latency-runs", type=click.IntRange(min=1), default=50, show_default=True,
              help="Timed invoke() calls per model (after 5 warm-up calls).")
@click.option("--jobs", "-j", type=click.IntRange(min=1), default=1, show_default=True,
              help="Candidates run at the same time (each in its own process, ~1 GB for a small model).")
@click.option("--executor", type=click.Choice(["local", "ray"]), default="local", show_default=True,
              help="local worker processes, or tasks on a Ray cluster (pip install 'tfopt[ray]').")
@click.option("--address", help="Ray cluster address (e.g. 10.0.0.5:6379); default: a local Ray instance with --jobs CPUs.")
@click.option("--train-data", type=click.Path(path_type=Path), help="Fine-tuning data (default: the train part of --data).")
@click.option("--calibration-samples", type=int, help="Seeded calibration subset size.  [default: 200]")
@click.option("--eval-samples", type=int, help="Evaluate on at most N held-out samples (default: all).")
@click.option("--scale", type=float, help="Image folders: pixel * scale + offset (default 1/255).")
@click.option("--offset", type=float, help="Image folders: added after --scale (default 0).")
@click.option("--custom-objects", help="FILE.py or module:attr registering custom layers for loading.")
@click.option("--input-shape", multiple=True, callback=input_shapes_option, metavar="[NAME=]d0,d1,...",
              help="Static shape for an input with dynamic dimensions (see convert --input-shape).")
@click.option("--allow-float-fallback", is_flag=True, default=None, help="int8 candidates: keep ops without integer kernels in float.")
@functools.partial(training_options, strategy=False)  # candidates run in local workers or Ray tasks
@limit_options
@click.option("-o", "--output", type=click.Path(path_type=Path),
              help="Where the chosen model goes (default beside the model: <model>.best.tflite). None passed: the "
                   "closest goes to <stem>.failed.tflite.")
@click.option("--output-dir", type=click.Path(path_type=Path),
              help="Also keep every candidate's model: DIR/<name>.tflite (DIR/<name>.failed.tflite if it missed a gate).")
@click.option("--report", type=click.Path(path_type=Path), help="Also write the JSON document (tfopt.sweep/1) to FILE.")
@click.option("--markdown", type=click.Path(path_type=Path), help="Also write a Markdown summary to FILE.")
@click.option("--junit", type=click.Path(path_type=Path), help="Also write JUnit XML (a suite per candidate, a case per gate).")
@click.option("--html", type=click.Path(path_type=Path),
              help="Also write a self-contained HTML report (Pareto plots, the chosen model's details) to FILE.")
@click.option("--seed", type=int, help="Seed for calibration sampling and fine-tuning.  [default: 0]")
@output_options
def sweep(state: State, model: Path, candidates: str | None, recipes_dir: Path | None, objective: str, threads: int,
          latency_runs: int, jobs: int, executor: str, address: str | None, output: Path | None,
          output_dir: Path | None, report: Path | None, markdown: Path | None, junit: Path | None,
          html: Path | None, **params):
    """Find the best deployable model: run every candidate the same way, mark the Pareto front of size,
    latency and quality, and write the best one that meets every gate.

    Each candidate runs in its own worker process (a crash or an error is one failed row) and is measured the
    same way: size, gzip size, latency (LiteRT/XNNPACK, one model at a time after all ran) and every
    verification gate per output. The model's data, reference outputs and output kinds are computed once and
    shared. Exit 0 with a chosen model; 3 if none passes (the closest is named and written as
    <stem>.failed.tflite); 1 if none ran.

    \b
    Examples:
      tfopt sweep sample_models/mnist_cnn.h5 --data sample_models/mnist.npz -o out/best.tflite
      tfopt sweep model.h5 --data d.npz --candidates float16,dynamic,int8 --objective gzip --html sweep.html
      tfopt sweep model.h5 --data d.npz --objective latency --threads 4 --max-accuracy-drop 0.005
      tfopt sweep model.h5 --data d.npz --recipes ci/candidates --jobs 2 --junit sweep.xml
      tfopt sweep model.h5 --data d.npz --executor ray --address 10.0.0.5:6379
    """
    from ..bench import BenchConfig
    from ..recipe.flags import recipe_from_flags
    from ..render.sweep import summary
    from ..sweep.candidates import parse_names, resolve
    from ..sweep.run import SweepConfig
    from ..sweep.run import sweep as run_sweep

    names = parse_names(candidates) if candidates is not None else None
    base = recipe_from_flags({"model": model, **params})
    absolute = lambda p: str(p.resolve()) if p is not None else None  # noqa: E731
    config = SweepConfig(
        base, tuple(resolve(base, names, recipes_dir)), objective, jobs, executor, address,
        BenchConfig(threads=threads, runs=latency_runs, warmup=5), absolute(output), absolute(output_dir),
        absolute(report), absolute(markdown), absolute(junit), absolute(html), state.debug,
    )
    with progress(state) as show:
        result = run_sweep(config, show)
    state.say(summary(result))
    if state.json:
        click.echo(result.to_json(), nl=False)
    if not result.ok:
        click.echo("Error: " + "; ".join(result.failures), err=True)
    sys.exit(result.exit_code)
