"""The ``tfopt`` command line: parse, call the library by reference (in a worker process), format.

TensorFlow is never imported in this process: the work runs in a worker (``tfopt.worker``), which
also turns native converter crashes into clear errors.  One module per command group.
"""

from __future__ import annotations

import signal

import click

from .convert import convert, verify
from .run import recipes, run
from .sweep import sweep
from .tools import analyze, bench, export_c, inspect, train


def _sigterm(signum, frame):  # noqa: ARG001 - a CI job cancelled: behave like Ctrl-C (exit 130, nothing written)
    raise KeyboardInterrupt


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="tfopt")
def main():
    """tfopt: turn a trained Keras model into a small, fast TFLite model and prove it still works.

    \b
      tfopt convert sample_models/mnist_cnn.h5 --quantize int8 --data sample_models/mnist.npz -o out/m.tflite
      tfopt verify out/m.tflite --reference sample_models/mnist_cnn.h5 --data sample_models/mnist.npz
      tfopt run int8 --set model.path=model.h5 --set data.path=data.npz
      tfopt sweep sample_models/mnist_cnn.h5 --data sample_models/mnist.npz -o out/best.tflite

    Exit codes: 0 ok, 1 error, 2 usage or recipe error, 3 verification missed a threshold, 130 interrupted.
    """
    signal.signal(signal.SIGTERM, _sigterm)
    # Ctrl-C means "stop, write nothing" even when a shell started tfopt with SIGINT ignored (a background
    # job of a script): Python then keeps it ignored, and a CI runner's SIGINT would be lost
    signal.signal(signal.SIGINT, signal.default_int_handler)


for command in (convert, verify, run, sweep, recipes, analyze, inspect, bench, export_c, train):
    main.add_command(command)

if __name__ == "__main__":  # pragma: no cover
    main()
