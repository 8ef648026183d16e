"""Verification: run a .tflite against the original model's outputs and gate every output by its kind.

Outputs are matched by name (TFLite reorders the outputs of multi-output models); the original's
outputs are computed once per run (``Reference``); every output gets the metrics of its kind
(``kinds.py``) and at least one gate — an output with no evaluated gate is an error, never a pass.

    reference = Reference.compute(model, plan.evaluation)
    result = verify(tflite_model, reference, kinds, GateSettings(mode=MODES["int8"]))
    result.passed, result.failures, result.outputs[0].gates
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np

from .data import Subset
from .errors import MismatchError, VerificationError
from .kinds import GATES, LABEL_METRICS, METRICS_OF, Kind, OutputKind, class_ids, default_gates
from .models import LoadedModel
from .modes import Mode
from .progress import Progress, counter, noop
from .tflite import Runner, TFLiteModel

SMALL_SAMPLE = 100  # below this many evaluation samples the report states the resolution
# float noise of metrics computed from counts: 0.948 - 0.938 = 0.010000000000000009 meets a 0.01 limit
GATE_TOLERANCE = 1e-9
METRIC_LABELS = {"agreement": "agreement", "accuracy_drop": "accuracy drop", "f1_drop": "F1 drop",
                 "sqnr_db": "SQNR", "cosine": "cosine"}


@dataclass(frozen=True)
class GateSettings:
    """What the gates are: the mode's defaults per kind, or the user's limits (global or per output)."""

    mode: Mode
    finetuned: bool = False
    limits: dict[str, dict[str, float]] = field(default_factory=dict)  # metric -> {"*" or output name: limit}
    threshold: float = 0.5  # binary / multilabel decision threshold

    def for_output(self, name: str, kind: Kind, labels: bool) -> list[tuple[str, float, str]]:
        """(metric, limit, source) of every gate on one output."""
        gates = {m: (v, f"default for {self.mode.name}{', fine-tuned' if self.finetuned else ''}")
                 for m, v in default_gates(kind, self.mode, self.finetuned, labels).items()}
        for metric, table in self.limits.items():
            flag = GATES[metric][1]
            if name in table:
                gates[metric] = (table[name], f"{flag} {name}=")
            elif "*" in table and metric in METRICS_OF[kind]:
                gates[metric] = (table["*"], flag)
        return [(m, v, src) for m, (v, src) in gates.items()]


@dataclass(frozen=True)
class Gate:
    metric: str
    limit: float
    value: float | None  # None: could not be evaluated (e.g. no labels)
    source: str  # "default for int8" or the flag that set it

    @property
    def op(self) -> str:
        return GATES[self.metric][0]

    @property
    def evaluated(self) -> bool:
        return self.value is not None

    @property
    def passed(self) -> bool:
        if self.value is None:
            return True  # not evaluated: counted separately (an output needs at least one evaluated gate)
        if math.isnan(self.value):
            return False
        if self.op == ">=":
            return self.value >= self.limit - GATE_TOLERANCE
        return self.value <= self.limit + GATE_TOLERANCE

    def to_dict(self) -> dict:
        return {"metric": self.metric, "op": self.op, "limit": self.limit, "value": self.value,
                "passed": self.passed, "evaluated": self.evaluated, "source": self.source}


@dataclass
class OutputResult:
    name: str
    kind: OutputKind
    labels: bool
    metrics: dict[str, float | None]
    gates: list[Gate]

    @property
    def evaluated(self) -> list[Gate]:
        return [g for g in self.gates if g.evaluated]

    def failures(self) -> list[str]:
        return [gate_message(self, g) for g in self.evaluated if not g.passed]

    def to_dict(self) -> dict:
        return {"name": self.name, **self.kind.to_dict(), "labels": self.labels, "metrics": dict(self.metrics),
                "gates": [g.to_dict() for g in self.gates], "gates_evaluated": len(self.evaluated)}


@dataclass
class VerifyResult:
    samples: int
    outputs: list[OutputResult]
    threshold: float = 0.5
    seconds: float = 0.0
    reference_seconds: float = 0.0
    tflite_seconds: float = 0.0
    notes: list[str] = field(default_factory=list)

    @property
    def failures(self) -> list[str]:
        return [f for o in self.outputs for f in o.failures()]

    @property
    def passed(self) -> bool:
        return not self.failures

    @property
    def gates_evaluated(self) -> int:
        return sum(len(o.evaluated) for o in self.outputs)

    def output(self, name: str) -> OutputResult:
        return next(o for o in self.outputs if o.name == name)

    def to_dict(self) -> dict:
        return {"samples": self.samples, "passed": self.passed, "failures": self.failures,
                "gates_evaluated": self.gates_evaluated, "threshold": self.threshold,
                "outputs": [o.to_dict() for o in self.outputs], "seconds": round(self.seconds, 4),
                "reference_seconds": round(self.reference_seconds, 4), "tflite_seconds": round(self.tflite_seconds, 4),
                "notes": list(self.notes)}


@dataclass
class Reference:
    """The original model's outputs (and the labels) on the evaluation samples, computed once per run."""

    inputs: list[str]
    outputs: dict[str, np.ndarray]
    labels: dict[str, np.ndarray]
    subset: Subset
    seconds: float = 0.0

    @classmethod
    def compute(cls, model: LoadedModel, evaluation: Subset, batch_size: int = 250) -> Reference:
        start = time.perf_counter()
        chunks: dict[str, list] = {o.name: [] for o in model.outputs}
        labels: dict[str, list] = {}
        for x, y in evaluation.batches(batch_size):
            for name, value in model.predict(x, batch_size=batch_size).items():
                chunks[name].append(value)
            for k, v in y.items():
                labels.setdefault(k, []).append(v)
        return cls([s.name for s in model.inputs], {k: np.concatenate(v) for k, v in chunks.items() if v},
                   {k: np.concatenate(v) for k, v in labels.items()}, evaluation, time.perf_counter() - start)

    def __len__(self) -> int:
        return len(self.subset)


def match_names(runner: Runner, reference: Reference) -> dict[str, str]:
    """TFLite output name → reference output name; a structural mismatch is an error (exit 1)."""
    ref_out, tfl_out = list(reference.outputs), list(runner.outputs)
    if sorted(ref_out) == sorted(tfl_out):
        mapping = {n: n for n in tfl_out}
    elif sorted(tfl_out) == [f"output_{i}" for i in range(len(ref_out))]:  # Keras 3 model.export() names by position
        mapping = {f"output_{i}": n for i, n in enumerate(ref_out)}
    else:
        raise MismatchError(f"the .tflite outputs {tfl_out} do not match the reference model outputs {ref_out}: "
                            "is it a conversion of this model?")
    missing = sorted(set(runner.input_names) - set(reference.inputs))
    if missing or len(runner.input_names) != len(reference.inputs):
        raise MismatchError(f"the .tflite inputs {runner.input_names} do not match the reference model inputs "
                            f"{reference.inputs}: is it a conversion of this model?")
    for tfl, ref in mapping.items():
        want = tuple(d for d in reference.outputs[ref].shape[1:])
        got = tuple(int(d) for d in runner.outputs[tfl]["shape_signature"][1:])
        if len(want) != len(got) or any(g != -1 and w != g for w, g in zip(want, got)):
            raise MismatchError(f"output '{ref}': the .tflite gives per-sample shape {got}, the reference {want}: "
                                "is it a conversion of this model?")
    return mapping


def verify(
    tflite: TFLiteModel | Runner,
    reference: Reference,
    kinds: dict[str, OutputKind],
    settings: GateSettings,
    batch_size: int = 250,
    progress: Progress = noop,
) -> VerifyResult:
    """Score the .tflite against the reference outputs; every output gets its kind's metrics and gates."""
    start = time.perf_counter()
    runner = tflite if isinstance(tflite, Runner) else Runner(tflite)
    names = match_names(runner, reference)
    chunks: dict[str, list] = {n: [] for n in names.values()}
    tick, done = counter(progress, "verifying", len(reference), "samples"), 0
    for x, _ in reference.subset.batches(batch_size):
        for tfl_name, value in runner(x).items():
            chunks[names[tfl_name]].append(value)
        done += len(next(iter(x.values())))
        tick(done)
    tflite_seconds = time.perf_counter() - start
    outputs = []
    for name, ref in reference.outputs.items():
        out = np.concatenate(chunks[name]).reshape(ref.shape)
        labels = reference.labels.get(name)
        metrics = output_metrics(ref, out, labels, kinds[name], settings.threshold)
        gates = [Gate(m, limit, _gate_value(metrics, m), src)
                 for m, limit, src in settings.for_output(name, kinds[name].kind, labels is not None)]
        outputs.append(OutputResult(name, kinds[name], labels is not None, metrics, gates))
    require_gates(outputs)
    result = VerifyResult(len(reference), outputs, settings.threshold, time.perf_counter() - start + reference.seconds,
                          reference.seconds, tflite_seconds)
    result.notes = resolution_notes(len(reference))
    return result


def require_gates(outputs: list[OutputResult]) -> None:
    """An output for which no gate could be evaluated is an error: never a pass."""
    for o in outputs:
        if not o.evaluated:
            asked = ", ".join(f"{GATES[g.metric][1]} (needs labels)" if g.metric in LABEL_METRICS else GATES[g.metric][1]
                              for g in o.gates) or "none"
            raise VerificationError(
                f"output '{o.name}' ({o.kind.kind}): no verification gate could be evaluated (gates: {asked}); "
                f"give it labels (y_{o.name} in the data) or a gate its kind supports "
                f"({', '.join(GATES[m][1] for m in METRICS_OF[o.kind.kind] if m not in LABEL_METRICS)})"
            )


def _gate_value(metrics: dict, metric: str) -> float | None:
    value = metrics.get(metric)
    return None if value is None else float(value)


def resolution_notes(samples: int) -> list[str]:
    if samples >= SMALL_SAMPLE:
        return []
    return [f"only {samples} evaluation samples: one sample is {100 / max(samples, 1):.2f} points of accuracy or "
            "agreement, so small differences are noise"]


def gate_message(output: OutputResult, gate: Gate) -> str:
    name = "top-1 agreement" if gate.metric == "agreement" and output.kind.kind is Kind.CLASSIFICATION else (
        "decision agreement" if gate.metric == "agreement" else METRIC_LABELS[gate.metric])
    if gate.metric in ("accuracy_drop", "f1_drop"):
        base = "accuracy" if gate.metric == "accuracy_drop" else "f1"
        ref, got = output.metrics.get(f"{base}_reference"), output.metrics.get(base)
        value = f"{gate.value * 100:.2f} points (reference {_pct(ref)}, tflite {_pct(got)})"
        limit = f"{gate.limit * 100:g} points"
    elif gate.metric == "sqnr_db":
        value, limit = f"{gate.value:.1f} dB", f"{gate.limit:g} dB"
    else:
        value, limit = f"{gate.value:.4f}", f"{gate.limit:g}"
    return f"output '{output.name}' ({output.kind.kind}): {name} {value} {'<' if gate.op == '>=' else '>'} {limit} ({gate.source})"


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{x * 100:.2f}%"


# ------------------------------------------------------------------ metrics


def output_metrics(ref: np.ndarray, out: np.ndarray, labels: np.ndarray | None, kind: OutputKind,
                   threshold: float = 0.5) -> dict[str, float | None]:
    """Every kind keeps max/mean abs error, cosine and SQNR; then the metrics of its kind."""
    metrics = fidelity(ref, out)
    if kind.kind is Kind.CLASSIFICATION:
        metrics.update(classification_metrics(ref, out, labels))
    elif kind.kind in (Kind.BINARY, Kind.MULTILABEL):
        metrics.update(decision_metrics(ref, out, labels, threshold, kind.from_logits))
    else:
        metrics.update(regression_metrics(ref, out))
    return metrics


def fidelity(ref: np.ndarray, out: np.ndarray) -> dict[str, float]:
    ref = ref.astype(np.float64).reshape(len(ref), -1)
    out = out.astype(np.float64).reshape(len(out), -1)
    diff = np.abs(ref - out)
    noise, signal = float(np.sum((ref - out) ** 2)), float(np.sum(ref**2))
    sqnr = math.inf if noise == 0 else (10 * math.log10(signal / noise) if signal > 0 else -math.inf)
    if not math.isfinite(noise):
        sqnr = math.nan
    denom = float(np.linalg.norm(ref) * np.linalg.norm(out))
    cosine = float(np.clip(np.sum(ref * out) / denom, -1.0, 1.0)) if denom else (1.0 if noise == 0 else 0.0)
    return {"max_abs_error": float(diff.max()) if diff.size else 0.0,
            "mean_abs_error": float(diff.mean()) if diff.size else 0.0, "cosine": cosine, "sqnr_db": sqnr}


def classification_metrics(ref: np.ndarray, out: np.ndarray, labels: np.ndarray | None) -> dict[str, float | None]:
    classes = ref.shape[-1]
    ref2, out2 = ref.reshape(-1, classes), out.reshape(-1, classes)
    top_ref, top_out = ref2.argmax(1), out2.argmax(1)
    m: dict[str, float | None] = {"classes": float(classes), "agreement": float(np.mean(top_ref == top_out))}
    if classes >= 10:
        top5 = np.argsort(-out2, axis=1)[:, :5]
        m["top5_agreement"] = float(np.mean(np.any(top5 == top_ref[:, None], axis=1)))
    truth = _truth_ids(labels, classes, len(top_ref)) if labels is not None else None
    if truth is not None:
        m.update(_label_scores(truth, top_ref, top_out, classes))
    return m


def _truth_ids(labels: np.ndarray, classes: int, n: int) -> np.ndarray | None:
    labels = np.asarray(labels)
    if labels.shape[-1] == classes and labels.size == n * classes and np.all((labels == 0) | (labels == 1)):
        return labels.reshape(n, classes).argmax(1)  # one-hot
    ids = class_ids(labels.reshape(-1, 1)) if labels.size == n else None
    return ids


def _label_scores(truth: np.ndarray, pred_ref: np.ndarray, pred_out: np.ndarray, classes: int) -> dict[str, float]:
    acc_ref, acc = float(np.mean(pred_ref == truth)), float(np.mean(pred_out == truth))
    f1_ref, _, _ = macro_f1(truth, pred_ref, classes)
    f1, precision, recall = macro_f1(truth, pred_out, classes)
    return {"accuracy_reference": acc_ref, "accuracy": acc, "accuracy_drop": acc_ref - acc, "precision": precision,
            "recall": recall, "f1_reference": f1_ref, "f1": f1, "f1_drop": f1_ref - f1}


def macro_f1(truth: np.ndarray, pred: np.ndarray, classes: int) -> tuple[float, float, float]:
    """(F1, precision, recall), macro-averaged over the classes present in the truth or the predictions."""
    size = max(classes, int(truth.max(initial=0)) + 1, int(pred.max(initial=0)) + 1)
    confusion = np.bincount(truth * size + pred, minlength=size * size).reshape(size, size)
    tp = np.diag(confusion).astype(np.float64)
    predicted, actual = confusion.sum(0), confusion.sum(1)
    present = (predicted + actual) > 0
    precision = np.divide(tp, predicted, out=np.zeros_like(tp), where=predicted > 0)
    recall = np.divide(tp, actual, out=np.zeros_like(tp), where=actual > 0)
    f1 = np.divide(2 * precision * recall, precision + recall, out=np.zeros_like(tp), where=(precision + recall) > 0)
    return float(f1[present].mean()), float(precision[present].mean()), float(recall[present].mean())


def decision_metrics(ref: np.ndarray, out: np.ndarray, labels: np.ndarray | None, threshold: float,
                     from_logits: bool) -> dict[str, float | None]:
    """Binary / multilabel: decisions per element at ``threshold`` (on probabilities)."""
    p_ref, p_out = (_sigmoid(ref), _sigmoid(out)) if from_logits else (ref, out)
    d_ref, d_out = p_ref.reshape(-1) >= threshold, p_out.reshape(-1) >= threshold
    m: dict[str, float | None] = {"agreement": float(np.mean(d_ref == d_out)), "positives": float(np.mean(d_ref))}
    if labels is not None and np.asarray(labels).size == d_ref.size:
        truth = np.asarray(labels).reshape(-1) >= 0.5
        f1_ref, _, _ = _positive_f1(truth, d_ref)
        f1, precision, recall = _positive_f1(truth, d_out)
        acc_ref, acc = float(np.mean(d_ref == truth)), float(np.mean(d_out == truth))
        m.update({"accuracy_reference": acc_ref, "accuracy": acc, "accuracy_drop": acc_ref - acc,
                  "precision": precision, "recall": recall, "f1_reference": f1_ref, "f1": f1, "f1_drop": f1_ref - f1})
    return m


def _positive_f1(truth: np.ndarray, pred: np.ndarray) -> tuple[float, float, float]:
    tp = float(np.sum(truth & pred))
    precision = tp / max(float(np.sum(pred)), 1.0)
    recall = tp / max(float(np.sum(truth)), 1.0)
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return f1, precision, recall


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(x.astype(np.float64), -60, 60)))


def regression_metrics(ref: np.ndarray, out: np.ndarray) -> dict[str, float]:
    ref64, out64 = ref.astype(np.float64), out.astype(np.float64)
    norm = float(np.linalg.norm(ref64))
    error = float(np.linalg.norm(ref64 - out64))
    std = float(np.std(ref64))
    max_abs = float(np.max(np.abs(ref64 - out64))) if ref64.size else 0.0
    return {"rel_l2_error": error / norm if norm else (0.0 if error == 0 else math.inf),
            "max_abs_error_std": max_abs / std if std else (0.0 if max_abs == 0 else math.inf)}
