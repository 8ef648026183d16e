"""Output kinds — classification, binary, multilabel, regression — how each is decided, and its default gates.

A kind is decided from the model graph first (the activation that produces the output, also through
a trailing ``Activation``/``Softmax`` layer), then from the saved loss (``from_logits``), then from the
labels (class ids for a linear output = logits), and only when the graph says nothing (SavedModel
signatures, custom layers) from the reference outputs' values.  The user overrides any of it
(``--output-kind NAME=KIND``).  Every decision carries the reason the report shows.

    decided = decide(model, reference_outputs, labels, overrides={"boxes": "regression"})
    decided["probs"].kind, decided["probs"].source
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

import numpy as np

from .data import UNNAMED
from .errors import DataError, UsageError
from .models import LoadedModel
from .modes import Mode


class Kind(StrEnum):
    CLASSIFICATION = "classification"
    BINARY = "binary"
    MULTILABEL = "multilabel"
    REGRESSION = "regression"


LABELLED = (Kind.CLASSIFICATION, Kind.BINARY, Kind.MULTILABEL)  # kinds with decisions and label metrics


@dataclass(frozen=True)
class OutputKind:
    kind: Kind
    source: str  # how it was decided, for the report
    from_logits: bool = False  # classification/binary outputs that are logits (no softmax/sigmoid in the graph)

    def to_dict(self) -> dict:
        return {"kind": str(self.kind), "source": self.source, "from_logits": self.from_logits}


# ------------------------------------------------------------------ default gates

FINETUNED_MIN_DROP = 0.01  # a fine-tuned model may move: gate its accuracy/F1 at least this loosely
FINETUNED_MIN_AGREEMENT = 0.95  # fine-tuned without labels: agreement is all there is to gate
FINETUNED_MIN_SQNR = 10.0  # regression heads of a fine-tuned model still follow the original
FINETUNED_MIN_COSINE = 0.95

# metric -> (comparison, flag)
GATES = {
    "agreement": (">=", "--min-agreement"),
    "accuracy_drop": ("<=", "--max-accuracy-drop"),
    "f1_drop": ("<=", "--max-f1-drop"),
    "sqnr_db": (">=", "--min-sqnr"),
    "cosine": (">=", "--min-cosine"),
}
METRICS_OF = {  # gate metrics each kind can evaluate (label metrics need labels)
    Kind.CLASSIFICATION: ("agreement", "accuracy_drop", "f1_drop", "sqnr_db", "cosine"),
    Kind.BINARY: ("agreement", "accuracy_drop", "f1_drop", "sqnr_db", "cosine"),
    Kind.MULTILABEL: ("agreement", "accuracy_drop", "f1_drop", "sqnr_db", "cosine"),
    Kind.REGRESSION: ("sqnr_db", "cosine"),
}
LABEL_METRICS = frozenset({"accuracy_drop", "f1_drop"})


def default_gates(kind: Kind, mode: Mode, finetuned: bool, labels: bool) -> dict[str, float]:
    """metric -> limit: the documented default gates of one output (README's kinds × gates table)."""
    if kind is Kind.REGRESSION:
        if finetuned:
            return {"sqnr_db": min(mode.min_sqnr, FINETUNED_MIN_SQNR), "cosine": min(mode.min_cosine, FINETUNED_MIN_COSINE)}
        return {"sqnr_db": mode.min_sqnr, "cosine": mode.min_cosine}
    if finetuned and labels:  # it changed on purpose: gate what it is for, report agreement
        drop = max(mode.max_accuracy_drop, FINETUNED_MIN_DROP)
        return {"accuracy_drop": drop, "f1_drop": drop}
    if finetuned:
        return {"agreement": min(mode.min_agreement, FINETUNED_MIN_AGREEMENT)}
    gates = {"agreement": mode.min_agreement}
    if labels:
        gates["accuracy_drop"] = mode.max_accuracy_drop
        if kind is not Kind.CLASSIFICATION:  # positives of a binary/multilabel output: their F1 too
            gates["f1_drop"] = 2 * mode.max_accuracy_drop
    return gates


# ------------------------------------------------------------------ deciding kinds


def decide(
    model: LoadedModel,
    reference: dict[str, np.ndarray],
    labels: dict[str, np.ndarray],
    overrides: dict[str, str] | None = None,
) -> dict[str, OutputKind]:
    """The kind of every output, by name (graph → saved loss → labels → values; the user overrides)."""
    overrides = dict(overrides or {})
    unknown = sorted(set(overrides) - {o.name for o in model.outputs})
    if unknown:
        raise UsageError(f"--output-kind {unknown[0]}=...: the model has no output {unknown[0]!r}; "
                         f"its outputs are {[o.name for o in model.outputs]}")
    out = {}
    for index, spec in enumerate(model.outputs):
        if spec.name in overrides:
            out[spec.name] = _override(spec.name, overrides[spec.name], reference.get(spec.name))
            continue
        decided = _from_graph(model, index)
        if decided is None or decided.source.startswith("graph: linear"):  # logits? the loss or the labels say
            decided = _from_loss(model, index, spec.shape) or _from_labels(labels.get(spec.name), spec.shape) or decided
        out[spec.name] = decided or _from_values(reference.get(spec.name))
    return out


def parse_overrides(values: list[str] | tuple[str, ...] | dict | None) -> dict[str, str]:
    """``["boxes=regression", ...]`` (flags) or a table (recipe) → {output name: kind}, validated."""
    if not values:
        return {}
    items = values.items() if isinstance(values, dict) else (_split(v) for v in values)
    table = {}
    for name, kind in items:
        if kind not in {k.value for k in Kind}:
            raise UsageError(f"--output-kind {name}={kind}: expected one of {', '.join(k.value for k in Kind)}")
        table[name] = kind
    return table


def _split(text: str) -> tuple[str, str]:
    name, sep, kind = text.rpartition("=")
    if not sep or not name:
        raise UsageError(f"--output-kind {text!r}: expected NAME=KIND, e.g. boxes=regression")
    return name.strip(), kind.strip()


def _override(name: str, kind: str, values: np.ndarray | None) -> OutputKind:
    k = Kind(kind)
    logits = k in (Kind.CLASSIFICATION, Kind.BINARY, Kind.MULTILABEL) and values is not None and not _in_unit(values)
    return OutputKind(k, f"user: --output-kind {name}={kind}", logits)


def _activation_of(layer) -> str | None:
    """The activation a layer applies last, by name (None when the layer says nothing)."""
    cls = type(layer).__name__
    if cls == "Softmax":
        return "softmax"
    if cls == "ReLU":
        return "relu"
    if cls in ("TFOpLambda", "SlicingOpLambda"):
        fn = str(getattr(layer, "get_config", lambda: {})().get("function", ""))
        return next((a for a in ("softmax", "sigmoid") if a in fn), None)
    act = getattr(layer, "activation", None)
    if act is None:
        return None
    return getattr(act, "__name__", None) or str(act)


def _from_graph(model: LoadedModel, index: int) -> OutputKind | None:
    if model.flavour == "saved_model":
        return None
    layer = _output_layer(model, index)
    if layer is None:
        return None
    act = _activation_of(layer)
    shape = model.outputs[index].shape
    where = f"layer '{layer.name}'"
    if act == "softmax":
        return OutputKind(Kind.CLASSIFICATION, f"graph: softmax ({where})") if (shape[-1] or 2) > 1 else None
    if act in ("sigmoid", "hard_sigmoid"):
        kind = Kind.BINARY if _is_single_unit(shape) else Kind.MULTILABEL
        return OutputKind(kind, f"graph: {act} ({where})")
    if act in ("linear", None) and type(layer).__name__ in ("Dense", "Conv2D", "Conv1D", "EinsumDense", "Activation"):
        return OutputKind(Kind.REGRESSION, f"graph: linear ({where})")
    if act is not None:
        return OutputKind(Kind.REGRESSION, f"graph: {act} ({where})")
    return None  # a custom or op layer: the values decide


def _output_layer(model: LoadedModel, index: int):
    keras_model = model.model
    tensor = keras_model.outputs[index] if getattr(keras_model, "outputs", None) else None
    history = getattr(tensor, "_keras_history", None)
    layer = getattr(history, "operation", None) or getattr(history, "layer", None)
    if layer is None:
        try:
            layer = keras_model.get_layer(model.outputs[index].name)
        except (ValueError, AttributeError):
            return None
    return layer


def _is_single_unit(shape: tuple) -> bool:
    return len(shape) <= 1 or (len(shape) == 2 and shape[-1] == 1)


LOGIT_LOSSES = {"sparsecategoricalcrossentropy": Kind.CLASSIFICATION, "categoricalcrossentropy": Kind.CLASSIFICATION,
                "binarycrossentropy": Kind.BINARY, "binaryfocalcrossentropy": Kind.BINARY}


def _from_loss(model: LoadedModel, index: int, shape: tuple) -> OutputKind | None:
    """A saved loss with ``from_logits=True``: the output holds logits of that kind."""
    loss = _saved_loss(model, index)
    if not isinstance(loss, dict):
        return None
    name = str(loss.get("class_name", "")).lower().replace("_", "")
    kind = LOGIT_LOSSES.get(name)
    if kind is None or not loss.get("config", {}).get("from_logits"):
        return None
    if kind is Kind.BINARY and not _is_single_unit(shape):
        kind = Kind.MULTILABEL
    return OutputKind(kind, f"saved loss: {loss.get('class_name')}(from_logits=True)", from_logits=True)


def _saved_loss(model: LoadedModel, index: int):
    config = model.training_config or {}
    loss = config.get("loss")
    if isinstance(loss, dict) and "class_name" not in loss:  # per output name
        loss = loss.get(model.outputs[index].name)
    if isinstance(loss, list):
        loss = loss[index] if index < len(loss) else None
    return loss


def _from_labels(labels: np.ndarray | None, shape: tuple) -> OutputKind | None:
    """Class ids for a linear output over several units: the output holds logits."""
    if labels is None or (shape[-1] or 0) < 2:
        return None
    ids = class_ids(labels)
    if ids is None or ids.max() >= shape[-1]:
        return None
    return OutputKind(Kind.CLASSIFICATION, f"labels: class ids 0..{int(ids.max())} for a linear output "
                      f"over {shape[-1]} units (logits)", from_logits=True)


def _from_values(values: np.ndarray | None) -> OutputKind:
    if values is None or values.size == 0:
        return OutputKind(Kind.REGRESSION, "values: none seen")
    flat = values.reshape(len(values), -1)
    if flat.shape[1] > 1 and values.ndim == 2 and _in_unit(values) and np.allclose(values.sum(-1), 1.0, atol=1e-3):
        return OutputKind(Kind.CLASSIFICATION, "values: rows in [0, 1] summing to 1")
    if _in_unit(values):
        kind = Kind.BINARY if flat.shape[1] == 1 else Kind.MULTILABEL
        return OutputKind(kind, "values: all in [0, 1]")
    return OutputKind(Kind.REGRESSION, "values: outside [0, 1]")


def _in_unit(values: np.ndarray) -> bool:
    return bool(np.all(values >= 0) and np.all(values <= 1))


# ------------------------------------------------------------------ labels → outputs


def class_ids(labels: np.ndarray) -> np.ndarray | None:
    """Integer class ids (N,) from ids shaped (N,) or (N, 1); None for anything else."""
    labels = np.asarray(labels)
    flat = labels.reshape(len(labels), -1) if labels.ndim else labels
    if labels.ndim == 0 or flat.shape[1] != 1:
        return None
    values = flat[:, 0]
    if np.issubdtype(values.dtype, np.floating) and not np.all(values == np.round(values)):
        return None
    if not (np.issubdtype(values.dtype, np.number) or values.dtype == np.bool_) or np.any(values < 0):
        return None
    return values.astype(np.int64)


def describe_labels(labels: np.ndarray) -> str:
    ids = class_ids(labels)
    if ids is not None:
        return f"class ids {int(ids.min())}..{int(ids.max())}"
    if labels.ndim == 2 and np.all((labels == 0) | (labels == 1)):
        return f"0/1 rows of width {labels.shape[1]}"
    return f"values of shape {labels.shape[1:]}"


def fits(labels: np.ndarray, kind: OutputKind, shape: tuple) -> bool:
    """Whether ``labels`` can score an output of this kind and (per-sample) shape."""
    width = shape[-1] if len(shape) > 1 else 1
    ids = class_ids(labels)
    if kind.kind is Kind.CLASSIFICATION:
        if ids is not None:
            return width is None or int(ids.max()) < width
        return labels.ndim == 2 and labels.shape[1] == width and bool(np.all((labels == 0) | (labels == 1)))
    if kind.kind in (Kind.BINARY, Kind.MULTILABEL):
        binary = bool(np.all((labels == 0) | (labels == 1)))
        return binary and _same_per_sample(labels, shape)
    return np.issubdtype(labels.dtype, np.number) and _same_per_sample(labels, shape)


def _same_per_sample(labels: np.ndarray, shape: tuple) -> bool:
    want = tuple(d for d in shape[1:] if d != 1)
    got = tuple(d for d in labels.shape[1:] if d != 1)
    return len(want) == len(got) and all(w is None or w == g for w, g in zip(want, got))


def resolve(
    model: LoadedModel,
    reference: dict[str, np.ndarray],
    labels: dict[str, np.ndarray],
    overrides: dict[str, str] | None = None,
    source: str = "data",
) -> tuple[dict[str, OutputKind], dict[str, np.ndarray]]:
    """Kinds of every output and labels by output name; unnamed labels (key ``y``) go to the one output
    they fit (an output the graph calls linear fits class ids as logits when nothing else does)."""
    named = {k: v for k, v in labels.items() if k != UNNAMED}
    kinds = decide(model, reference, named, overrides)
    if UNNAMED not in labels:
        return kinds, named
    y = labels[UNNAMED]
    shapes = {o.name: o.shape for o in model.outputs}
    open_outputs = {n: k for n, k in kinds.items() if n not in named}
    fitting = [n for n, k in open_outputs.items() if fits(y, k, shapes[n])]
    if not fitting and all(k.kind is Kind.REGRESSION for k in kinds.values()):  # no decision output: logits?
        logits = {n: _from_labels(y, shapes[n]) for n, k in open_outputs.items() if not k.source.startswith("user:")}
        fitting = [n for n, k in logits.items() if k is not None]
        if len(fitting) == 1:
            kinds[fitting[0]] = logits[fitting[0]]
    if len(fitting) != 1:
        raise DataError(_assign_error(y, fitting, open_outputs or kinds, shapes, source))
    return kinds, {**named, fitting[0]: y}


def _assign_error(y: np.ndarray, fitting: list[str], kinds: dict[str, OutputKind], shapes: dict, source: str) -> str:
    what = describe_labels(y)
    if fitting:
        named = ", ".join(f"y_{n}" for n in fitting)
        return (f"{source}: y ({what}) fits several outputs: {', '.join(repr(n) for n in fitting)}; "
                f"name the labels after their output ({named}) in the data file")
    if len(kinds) == 1:
        (name,) = kinds
        return (f"{source}: y holds {what} but output '{name}' is {_describe_output(kinds[name], shapes[name])}; "
                "expected labels that fit it (or --output-kind to say what the output is)")
    outputs = ", ".join(f"'{n}' ({_describe_output(kinds[n], shapes[n])})" for n in kinds)
    return (f"{source}: y holds {what} and fits no output: {outputs}; name the labels y_<output> "
            "for the output they belong to")


def _describe_output(kind: OutputKind, shape: tuple) -> str:
    width = shape[-1] if len(shape) > 1 else 1
    if kind.kind is Kind.CLASSIFICATION:
        return f"classification, {width} classes"
    if kind.kind is Kind.REGRESSION:
        return f"regression ({int(np.prod([d or 1 for d in shape[1:]]))} values)"
    return f"{kind.kind}, shape {tuple(shape[1:])}"
