"""The one LiteRT interpreter runner: named, (de)quantized I/O, batched when the model allows it.

Used by verification, ``tfopt bench`` and layer analysis alike.

    runner = Runner(model)                      # a TFLiteModel from reader.read (or raw bytes)
    outputs = runner({"image": x})              # float arrays by output name, any number of samples
    runner.set_inputs({"image": x[:1]}); runner.invoke()       # bench: time invoke() alone
"""

from __future__ import annotations

import functools
import os

import numpy as np

from .. import _tf
from ..errors import ConversionError, ModelLoadError
from .reader import TFLiteModel, read


class Runner:
    """A LiteRT interpreter called through its first signature."""

    def __init__(self, model: TFLiteModel | bytes, threads: int | None = None, batch: int | None = None):
        self.model = model if isinstance(model, TFLiteModel) else read(model)
        self.threads = threads or os.cpu_count() or 1
        self.interpreter = self._interpreter(default_delegates=True)
        signatures = self.interpreter.get_signature_list()
        if not signatures:
            raise ModelLoadError("the .tflite has no signature: cannot match inputs and outputs by name")
        self.key = next(iter(signatures))
        if batch is not None:
            self._resize(batch)
        self._allocate()
        self.stateful = bool(self.model.stateful_ops())  # fused RNN ops keep state: reset per sequence

    @functools.cached_property
    def runner(self):
        """The signature runner (created on first use: benchmarks invoke the interpreter directly)."""
        return self.interpreter.get_signature_runner(self.key)

    @property
    def inputs(self) -> dict[str, dict]:
        return self.runner.get_input_details()

    @property
    def outputs(self) -> dict[str, dict]:
        return self.runner.get_output_details()

    @functools.cached_property
    def resizable(self) -> bool:
        return all(-1 in d["shape_signature"][:1] for d in self.inputs.values())

    def _interpreter(self, default_delegates: bool):
        litert = _tf.litert()
        kwargs = {} if default_delegates else {
            "experimental_op_resolver_type": litert.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES}
        try:
            return litert.Interpreter(model_content=self.model.raw, num_threads=self.threads, **kwargs)
        except ValueError as e:  # a schema LiteRT cannot read
            raise ModelLoadError(f"not a valid TFLite model: {' '.join(str(e).split())[:200]}") from e

    def _allocate(self) -> None:
        try:
            with _tf.quiet_native():  # "INFO: Created TensorFlow Lite XNNPACK delegate for CPU."
                self.interpreter.allocate_tensors()
        except RuntimeError as e:  # XNNPACK cannot prepare some models (sparse-encoded int8): run without it
            if "delegate" not in str(e).lower():
                raise ConversionError(f"the LiteRT interpreter cannot prepare the .tflite: {_one_line(e)}") from e
            self.interpreter = self._interpreter(default_delegates=False)
            self.interpreter.allocate_tensors()

    def _resize(self, batch: int) -> None:
        for d in self.interpreter.get_input_details():
            if d["shape"][0] != batch:
                self.interpreter.resize_tensor_input(d["index"], [batch, *d["shape"][1:]], strict=False)

    @property
    def input_names(self) -> list[str]:
        return list(self.inputs)

    @property
    def output_names(self) -> list[str]:
        return list(self.outputs)

    def __call__(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Outputs (dequantized to float) for any number of samples: one call when the batch is dynamic,
        else sample by sample (and with RNN state reset before each sample)."""
        n = len(next(iter(feeds.values())))
        if self.resizable and not self.stateful:
            return self._run(feeds)
        parts = [self._run({k: v[i : i + 1] for k, v in feeds.items()}) for i in range(n)]
        return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}

    def _run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        if self.stateful:
            self.interpreter.reset_all_variables()
        inputs, outputs = self._details
        args = {name: quantize_input(feeds[name], d) for name, d in inputs.items()}
        try:
            out = self.runner(**args)
        except (RuntimeError, ValueError) as e:  # a kernel that cannot run this model: an error, not a missed gate
            raise ConversionError(f"the LiteRT interpreter cannot run the .tflite: {_one_line(e)[:300]}") from e
        return {name: dequantize_output(value, outputs[name]) for name, value in out.items()}

    @functools.cached_property
    def _details(self) -> tuple[dict, dict]:
        return self.inputs, self.outputs

    # ---------------------------------------------------------------- benchmarking

    def set_inputs(self, feeds: dict[str, np.ndarray]) -> None:
        """Set the inputs once (quantized for integer inputs), by name; then time ``invoke()`` alone."""
        details = self.interpreter.get_input_details()
        by_name = {_short(d["name"]): d for d in details}
        values = list(feeds.values())
        for i, d in enumerate(details):
            value = feeds.get(_short(d["name"]))
            value = values[i] if value is None and len(values) == len(details) else value
            if value is None:
                raise ModelLoadError(f"no value for input {_short(d['name'])!r}; inputs are {sorted(by_name)}")
            self.interpreter.set_tensor(d["index"], quantize_input(value, d))

    def invoke(self) -> None:
        self.interpreter.invoke()

    def raw_input_shapes(self) -> dict[str, tuple[int, ...]]:
        return {_short(d["name"]): tuple(int(s) for s in d["shape"]) for d in self.interpreter.get_input_details()}


def quantize_input(x: np.ndarray, detail: dict) -> np.ndarray:
    """Float values → the input tensor's type, with its scale and zero point (saturating)."""
    dtype = np.dtype(detail["dtype"])
    scale, zero = detail["quantization"]
    if dtype.kind in "iu" and scale:
        info = np.iinfo(dtype)
        return np.clip(np.round(x / scale + zero), info.min, info.max).astype(dtype)
    return np.asarray(x).astype(dtype)


def dequantize_output(y: np.ndarray, detail: dict) -> np.ndarray:
    scale, zero = detail["quantization"]
    if y.dtype.kind in "iu" and scale:
        return (y.astype(np.float32) - zero) * scale
    return y.astype(np.float32) if y.dtype.kind == "f" else y


def _short(name: str) -> str:
    return name.split(":")[0].removeprefix("serving_default_")


def _one_line(e: BaseException) -> str:
    return " ".join(str(e).split())
