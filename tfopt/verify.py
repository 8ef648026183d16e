"""Run a .tflite with the LiteRT interpreter against the original model and score it.

Outputs are matched by name (TFLite reorders the outputs of multi-output models), the
interpreter runs in batches, integer I/O is (de)quantized with each tensor's own scale and
zero point, and every metric that misses its threshold is collected, not just the first.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import asdict, dataclass, field

import numpy as np

from . import _tf, tflite_ops
from .data import Subset
from .errors import ConversionError, DataError, VerificationFailed
from .models import LoadedModel


@dataclass(frozen=True)
class Thresholds:
    max_accuracy_drop: float | None = None  # fraction: 0.01 = one point
    min_agreement: float | None = None  # top-1 agreement with the original, 0..1
    min_sqnr: float | None = None  # dB, every output


@dataclass
class OutputMetrics:
    name: str
    kind: str  # "classification" | "regression"
    agreement: float | None
    accuracy_reference: float | None
    accuracy_tflite: float | None
    accuracy_drop: float | None
    max_abs_error: float
    mean_abs_error: float
    cosine: float
    sqnr_db: float


@dataclass
class VerifyResult:
    samples: int
    batch_size: int
    outputs: list[OutputMetrics]
    thresholds: Thresholds
    failures: list[str] = field(default_factory=list)
    seconds: float = 0.0
    reference_seconds: float = 0.0
    tflite_seconds: float = 0.0

    @property
    def passed(self) -> bool:
        return not self.failures

    def to_dict(self) -> dict:
        d = asdict(self)
        d["passed"] = self.passed
        return d

    def raise_for_status(self) -> None:
        if self.failures:
            raise VerificationFailed("verification failed: " + "; ".join(self.failures), self.failures)


class TFLiteRunner:
    """A LiteRT interpreter called by signature, with named (de)quantized I/O."""

    def __init__(self, tflite: bytes, num_threads: int | None = None):
        Interpreter = _tf.interpreter_class()
        threads = num_threads or os.cpu_count() or 1
        try:
            self.interpreter = Interpreter(model_content=tflite, num_threads=threads)
        except ValueError as e:  # not a flatbuffer, or a schema LiteRT cannot read
            raise DataError(f"not a valid TFLite model: {' '.join(str(e).split())[:200]}") from e
        try:
            self.interpreter.allocate_tensors()
        except RuntimeError as e:  # XNNPACK cannot prepare some models (sparse-encoded int8): run without it
            if "delegate" not in str(e).lower():
                raise
            OpResolverType = _tf.litert().OpResolverType
            self.interpreter = Interpreter(model_content=tflite, num_threads=threads,
                                           experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
        signatures = self.interpreter.get_signature_list()
        self.runner = self.interpreter.get_signature_runner(next(iter(signatures))) if signatures else None
        if self.runner is None:
            raise DataError("the .tflite has no signature: cannot match inputs and outputs by name")
        self.inputs = self.runner.get_input_details()
        self.outputs = self.runner.get_output_details()
        self.resizable = all(-1 in d["shape_signature"][:1] for d in self.inputs.values())
        # fused RNN ops keep their state in variable tensors across invocations: reset per sample
        self.stateful = bool(tflite_ops.stateful_ops(tflite))

    @property
    def input_names(self) -> list[str]:
        return list(self.inputs)

    def io_types(self) -> dict[str, str]:
        both = {**self.inputs, **self.outputs}
        return {k: np.dtype(d["dtype"]).name for k, d in both.items()}

    def __call__(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        n = len(next(iter(feeds.values())))
        if self.resizable:
            return self._run(feeds)
        parts = [self._run({k: v[i : i + 1] for k, v in feeds.items()}) for i in range(n)]
        return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}

    def _run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        if self.stateful:
            self.interpreter.reset_all_variables()
        args = {name: quantize_input(feeds[name], d) for name, d in self.inputs.items()}
        try:
            out = self.runner(**args)
        except RuntimeError as e:  # a kernel that cannot run this model: an error, not a missed threshold
            text = " ".join(str(e).split())
            raise ConversionError(f"the LiteRT interpreter cannot run the .tflite: {text[:300]}") from e
        return {name: dequantize_output(value, self.outputs[name]) for name, value in out.items()}


def quantize_input(x: np.ndarray, detail: dict) -> np.ndarray:
    dtype = np.dtype(detail["dtype"])
    scale, zero = detail["quantization"]
    if dtype.kind in "iu" and scale:
        info = np.iinfo(dtype)
        return np.clip(np.round(x / scale + zero), info.min, info.max).astype(dtype)
    return x.astype(dtype)


def dequantize_output(y: np.ndarray, detail: dict) -> np.ndarray:
    scale, zero = detail["quantization"]
    if y.dtype.kind in "iu" and scale:
        return (y.astype(np.float32) - zero) * scale
    return y.astype(np.float32) if y.dtype.kind == "f" else y


def match_names(runner: TFLiteRunner, reference: LoadedModel) -> dict[str, str]:
    """TFLite input/output name → reference name; raise when they do not correspond."""
    ref_out = [o.name for o in reference.outputs]
    tfl_out = list(runner.outputs)
    if sorted(ref_out) == sorted(tfl_out):
        return {n: n for n in tfl_out}
    positional = [f"output_{i}" for i in range(len(ref_out))]
    if sorted(tfl_out) == positional:  # Keras 3 model.export() names outputs by position
        return {f"output_{i}": n for i, n in enumerate(ref_out)}
    raise VerificationFailed(
        f"the .tflite outputs {tfl_out} do not match the reference model outputs {ref_out}: "
        "is it a conversion of this model?"
    )


def verify(
    tflite: bytes,
    reference: LoadedModel,
    evaluation: Subset,
    thresholds: Thresholds,
    batch_size: int = 250,
) -> VerifyResult:
    """Score ``tflite`` against ``reference`` on the evaluation samples."""
    start = time.perf_counter()
    runner = TFLiteRunner(tflite)
    names = match_names(runner, reference)
    missing = sorted(set(runner.input_names) - {i.name for i in reference.inputs})
    if missing:
        raise VerificationFailed(f"the .tflite expects inputs {missing} that the reference model does not have")
    ref_chunks: dict[str, list] = {n: [] for n in names.values()}
    tfl_chunks: dict[str, list] = {n: [] for n in names.values()}
    labels: dict[str, list] = {}
    t_ref = t_tfl = 0.0
    for x, y in evaluation.batches(batch_size):
        t0 = time.perf_counter()
        ref = reference.predict(x, batch_size=batch_size)
        t1 = time.perf_counter()
        out = runner(x)
        t_tfl += time.perf_counter() - t1
        t_ref += t1 - t0
        for tfl_name, ref_name in names.items():
            ref_chunks[ref_name].append(ref[ref_name])
            tfl_chunks[ref_name].append(out[tfl_name])
        for k, v in y.items():
            labels.setdefault(k, []).append(v)
    metrics = [
        output_metrics(
            name,
            np.concatenate(ref_chunks[name]),
            np.concatenate(tfl_chunks[name]),
            np.concatenate(labels[name]) if name in labels else None,
        )
        for name in (o.name for o in reference.outputs)
    ]
    result = VerifyResult(len(evaluation), batch_size, metrics, thresholds)
    result.failures = check(metrics, thresholds)
    result.reference_seconds, result.tflite_seconds = t_ref, t_tfl
    result.seconds = time.perf_counter() - start
    return result


def output_metrics(name: str, ref: np.ndarray, out: np.ndarray, labels: np.ndarray | None) -> OutputMetrics:
    ref = ref.astype(np.float64).reshape(len(ref), -1)
    out = out.astype(np.float64).reshape(len(out), -1)
    diff = np.abs(ref - out)
    noise = float(np.sum((ref - out) ** 2))
    signal = float(np.sum(ref**2))
    sqnr = math.inf if noise == 0 else (10 * math.log10(signal / noise) if signal > 0 else -math.inf)
    denom = float(np.linalg.norm(ref) * np.linalg.norm(out))
    cosine = float(np.clip(np.sum(ref * out) / denom, -1.0, 1.0)) if denom else (1.0 if noise == 0 else 0.0)
    m = OutputMetrics(name, "regression", None, None, None, None, float(diff.max()), float(diff.mean()), cosine, sqnr)
    if ref.shape[1] > 1:
        m.kind = "classification"
        top_ref, top_out = ref.argmax(1), out.argmax(1)
        m.agreement = float(np.mean(top_ref == top_out))
        if labels is not None:
            truth = _class_labels(labels, ref.shape[1])
            if truth is not None:
                m.accuracy_reference = float(np.mean(top_ref == truth))
                m.accuracy_tflite = float(np.mean(top_out == truth))
                m.accuracy_drop = m.accuracy_reference - m.accuracy_tflite
    return m


def _class_labels(labels: np.ndarray, classes: int) -> np.ndarray | None:
    labels = np.asarray(labels)
    if labels.ndim == 2 and labels.shape[1] == classes:
        return labels.argmax(1)  # one-hot
    flat = labels.reshape(len(labels), -1)
    if flat.shape[1] == 1:
        return flat[:, 0].astype(np.int64)
    return None


def check(metrics: list[OutputMetrics], t: Thresholds) -> list[str]:
    failures = []
    for m in metrics:
        if t.max_accuracy_drop is not None and m.accuracy_drop is not None and m.accuracy_drop > t.max_accuracy_drop:
            failures.append(
                f"output '{m.name}': accuracy drop {m.accuracy_drop * 100:.2f} points "
                f"(reference {m.accuracy_reference:.4f}, tflite {m.accuracy_tflite:.4f}) "
                f"exceeds --max-accuracy-drop {t.max_accuracy_drop * 100:g} points"
            )
        if t.min_agreement is not None and m.agreement is not None and m.agreement < t.min_agreement:
            failures.append(
                f"output '{m.name}': top-1 agreement {m.agreement:.4f} is below --min-agreement {t.min_agreement:g}"
            )
        if t.min_sqnr is not None and m.sqnr_db < t.min_sqnr:
            failures.append(f"output '{m.name}': SQNR {m.sqnr_db:.1f} dB is below --min-sqnr {t.min_sqnr:g} dB")
    return failures
