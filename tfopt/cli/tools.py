"""``tfopt inspect``, ``bench``, ``export-c``, ``train`` and ``analyze``: thin commands over the library modules.

Like every command they print one JSON document with --json, say one ``Error: ...`` line on failure,
and never import TensorFlow in this process: Keras work runs in the worker.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from .. import modes
from .options import State, output_options, progress


@click.command()
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--int8-check/--no-int8-check", default=True, show_default=True,
              help="Keras models: convert once to int8 (float fallback, synthetic calibration) and list the ops "
                   "without an int8 kernel.")
@click.option("--tensors", is_flag=True, help="Also list every tensor with its dtype and quantization (.tflite).")
@output_options
def inspect(state: State, path: Path, int8_check: bool, tensors: bool):
    """Show what is inside a Keras model or a .tflite file.

    Layers/ops with parameter counts, weight sparsity and unique values, the input/output
    signature with dtypes and quantization, file and gzip size; for Keras models which
    layers TF-MOT can prune / quantize (QAT) / cluster; for integer models the ops that
    have no int8 kernel.

    \b
    Examples:
      tfopt inspect sample_models/mnist_cnn.h5
      tfopt inspect out/mnist_cnn.int8.tflite --tensors
      tfopt inspect sample_models/mnist_cnn.keras --json --no-int8-check
    """
    from ..inspection import inspect_path, inspect_tflite, is_tflite, render_text, tensor_lines
    from ..worker import run_isolated

    if path.is_file() and is_tflite(path):
        result = inspect_tflite(path.read_bytes(), str(path))  # no TensorFlow needed: stay in this process
    else:
        with progress(state) as show:
            result = run_isolated(inspect_path, (str(path), int8_check), {}, show, state.debug)
    if state.json:
        click.echo(json.dumps(result.to_dict(), indent=2))
        return
    click.echo(render_text(result))
    if tensors:
        click.echo("")
        for line in tensor_lines(result):
            click.echo(line)


@click.command()
@click.argument("tflite", type=click.Path(path_type=Path))
@click.option("--threads", type=int, default=1, show_default=True, help="Interpreter threads (XNNPACK).")
@click.option("--runs", type=int, default=100, show_default=True, help="Timed invocations.")
@click.option("--warmup", type=int, default=10, show_default=True, help="Untimed invocations first.")
@click.option("--batch", type=int, default=1, show_default=True, help="Batch size (dynamic-batch models).")
@click.option("--compare", "compare", multiple=True, type=click.Path(path_type=Path),
              help="Another .tflite to run on the same inputs (repeatable); ratios are vs TFLITE.")
@click.option("--keras", type=click.Path(path_type=Path), help="Also time the original Keras model on the same inputs.")
@output_options
def bench(state: State, tflite: Path, threads: int, runs: int, warmup: int, batch: int,
          compare: tuple[Path, ...], keras: Path | None):
    """Measure latency (p50/p90/p99), throughput and peak RSS of TFLITE.

    Runs in a fresh worker process, so peak RSS is that of the process that ran the models.

    \b
    Examples:
      tfopt bench out/mnist_cnn.int8.tflite --threads 2 --runs 200
      tfopt bench out/mnist_cnn.int8.tflite --compare out/mnist_cnn.float32.tflite --keras sample_models/mnist_cnn.h5
    """
    from ..bench import BenchConfig, bench as run_bench, render_text
    from ..errors import DataError
    from ..worker import run_isolated

    config = BenchConfig(threads, runs, warmup, batch)
    for p in (tflite, *compare, *([keras] if keras else [])):
        if not p.exists():
            raise DataError(f"model not found: {p}")
    args = (str(tflite.resolve()), config, [str(c.resolve()) for c in compare], str(keras.resolve()) if keras else None)
    with progress(state) as show:
        result = run_isolated(run_bench, args, {}, show, state.debug)
    if state.json:
        click.echo(json.dumps(result.to_dict(), indent=2))
    else:
        click.echo(render_text(result))


@click.command("export-c")
@click.argument("tflite", type=click.Path(path_type=Path))
@click.option("-o", "--output", required=True, type=click.Path(path_type=Path),
              help="C/C++ source to write (e.g. model_data.cc); the header goes beside it (model_data.h).")
@click.option("--name", default="g_model", show_default=True, help="C identifier of the array (NAME and NAME_len).")
@output_options
def export_c(state: State, tflite: Path, output: Path, name: str):
    """Write TFLITE as a C/C++ array for TensorFlow Lite Micro (16-byte aligned, with a header).

    \b
    Example:
      tfopt export-c out/mnist_cnn.int8.tflite -o out/model_data.cc --name g_model
    """
    from ..export_c import export_c as run_export

    result = run_export(tflite, output, name)
    state.say(f"wrote {result.source} and {result.header}: {result.name}[{result.bytes}]")
    if state.json:
        click.echo(json.dumps({"schema": "tfopt.export-c/1", "ok": True, "source": result.source,
                               "header": result.header, "name": result.name, "bytes": result.bytes}))


@click.command()
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
      tfopt train --arch small-cnn --data sample_models/mnist.npz -o out/model.h5 --epochs 3
    """
    from ..files import check_outputs
    from ..train import train_cli
    from ..worker import run_isolated

    check_outputs({"-o": str(output)}, {"data file": str(data)})
    args = (arch, str(data.resolve()), str(output.resolve()), epochs, seed)
    with progress(state) as show:
        result = run_isolated(train_cli, args, {}, show, state.debug)
    accuracy = result["test_accuracy"]
    shown = "n/a (no x_test/y_test in the data)" if accuracy is None else f"{accuracy:.4f}"
    state.say(f"wrote {output}: test accuracy {shown} after {epochs} epochs")
    if state.json:
        click.echo(json.dumps(result, indent=2))


@click.command()
@click.argument("model", type=click.Path(path_type=Path))
@click.option("--data", required=True, type=click.Path(path_type=Path),
              help="Held-out data (as for convert): calibration and the samples every layer is measured on.")
@click.option("--quantize", type=click.Choice([modes.INT8.name]), default=modes.INT8.name, show_default=True,
              help="The mode whose per-layer error is analysed (the converter's selective quantizer is int8 only).")
@click.option("--io-type", type=click.Choice(modes.INT8.io_types), help="int8 input/output type (ids stay exact).")
@click.option("--calibration-samples", type=int, default=200, show_default=True, help="Seeded calibration subset size.")
@click.option("--eval-samples", type=int, help="Measure on at most N held-out samples (default: all).")
@click.option("--debug-samples", type=int, default=32, show_default=True,
              help="Samples the debugger's per-op statistics are averaged over (0 skips them).")
@click.option("--custom-objects", help="FILE.py or module:attr registering custom layers for loading.")
@click.option("--top", type=int, help="Show only the N most sensitive layers in the table.")
@click.option("--report", type=click.Path(path_type=Path), help="Also write the JSON to FILE.")
@click.option("--seed", type=int, default=0, show_default=True)
@output_options
def analyze(state: State, model: Path, data: Path, report: Path | None, top: int | None, **params):
    """Per-layer int8 quantization error of MODEL, ranked by its effect on the outputs.

    For every quantized op, by Keras layer: the TFLite quantization debugger's statistics (rmse/scale,
    mean error, range) and the model's outputs when only that layer is kept in float (agreement, SQNR
    and their gain over full int8).  `--quantize auto` keeps the top layers in float when int8 misses.

    \b
    Example:
      tfopt analyze sample_models/mnist_cnn.h5 --data sample_models/mnist.npz --eval-samples 200
    """
    from ..analyze_job import AnalyzeJob, analyze_model
    from ..errors import DataError
    from ..worker import run_isolated

    for label, p in (("model", model), ("data", data)):
        if not p.exists():
            raise DataError(f"{label} not found: {p}")
    job = AnalyzeJob(str(model.resolve()), str(data.resolve()), report=str(report.resolve()) if report else None,
                     **params)
    with progress(state) as show:
        result = run_isolated(analyze_model, (job,), {}, show, state.debug)
    if state.json:
        click.echo(json.dumps(result.to_dict(), indent=2, default=str))
    else:
        click.echo(result.table(top))
