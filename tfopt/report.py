"""Typed results of a run — ``Report``, ``StageResult``, ``Sizes`` (``VerifyResult`` lives in verify.py).

They stay objects everywhere inside tfopt; ``to_dict()`` / ``to_json()`` make the JSON document at the
edge.  Renderings (text, Markdown, JUnit) are in ``render/``.

JSON schema ``tfopt.report/2`` (top-level keys; documented in README.md):
``schema, ok, exit_code, recipe, model, data, output, failed_output, mode, io_types, sizes, timings,
verification, stages, layer_sizes, notes, versions``.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from typing import Any

from .files import Size
from .shapes import TensorSpec
from .tflite.sizes import LayerSize
from .verify import VerifyResult

SCHEMA = "tfopt.report/2"


@dataclass(frozen=True)
class ModelInfo:
    path: str
    format: str  # h5 | keras | savedmodel
    keras_version: str | None
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]

    def to_dict(self) -> dict:
        return {"path": self.path, "format": self.format, "keras_version": self.keras_version,
                "inputs": [asdict(s) for s in self.inputs], "outputs": [asdict(s) for s in self.outputs]}


@dataclass(frozen=True)
class DataInfo:
    source: str | None
    calibration_samples: int
    eval_samples: int
    labels: bool

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Sizes:
    input: Size
    output: Size | None = None
    float32_tflite: Size | None = None  # the plain float32 conversion: what "vs float32" compares with
    output_without_sparse_encoding: Size | None = None

    @property
    def output_vs_float32(self) -> float | None:
        if self.output is None or self.float32_tflite is None:
            return None
        return round(self.output.bytes / self.float32_tflite.bytes, 4)

    @property
    def output_vs_input_gzip(self) -> float | None:
        if self.output is None:
            return None
        return round(self.output.gzip_bytes / self.input.gzip_bytes, 4)

    def to_dict(self) -> dict:
        d = {k: v.to_dict() for k, v in (("input", self.input), ("float32_tflite", self.float32_tflite),
                                         ("output", self.output),
                                         ("output_without_sparse_encoding", self.output_without_sparse_encoding)) if v}
        d["output_vs_float32"], d["output_vs_input_gzip"] = self.output_vs_float32, self.output_vs_input_gzip
        return d


@dataclass(frozen=True)
class SkippedLayer:
    name: str
    cls: str
    reason: str = ""

    def to_dict(self) -> dict:
        return {"name": self.name, "class": self.cls, **({"reason": self.reason} if self.reason else {})}


@dataclass(frozen=True)
class LayerChannels:
    """A layer with per-channel weights: its channels before and after slimming."""

    name: str
    cls: str
    before: int
    after: int


@dataclass(frozen=True)
class LeftAlone:
    name: str
    cls: str
    reason: str


@dataclass
class SlimSection:
    """What the slim stage did: parameters and MACs, channels per layer, what was left alone and why; and the
    run's original and final model side by side in the same TFLite mode (bytes, measured latency)."""

    ratio: float
    per_layer: dict[str, float]
    round_to: int
    importance: str
    channels: list[LayerChannels] = field(default_factory=list)  # layers with per-channel weights
    left_alone: list[LeftAlone] = field(default_factory=list)  # producers whose channels stay (frozen groups)
    unsupported: list[LeftAlone] = field(default_factory=list)  # layers the analysis cannot see through
    groups: int = 0
    slimmed_groups: int = 0
    params_before: int = 0
    params_after: int = 0
    macs_before: int = 0
    macs_after: int = 0
    tflite: dict[str, dict] = field(default_factory=dict)  # "original" / "final" -> bytes, latency_us (same mode)
    latency_note: str = ""

    @property
    def params_ratio(self) -> float:
        return self.params_after / max(1, self.params_before)

    @property
    def macs_ratio(self) -> float:
        return self.macs_after / max(1, self.macs_before)

    def to_dict(self) -> dict:
        out = asdict(self)
        out.update(params_ratio=round(self.params_ratio, 4), macs_ratio=round(self.macs_ratio, 4))
        return out


@dataclass
class StageMeasure:
    """A stage's result measured in a TFLite export of it (not in the Keras wrappers)."""

    measured_in: str  # "int8 TFLite export" (the last stage) / "stripped Keras weights (float32)"
    size: Size | None  # of the export (None for a stage measured in its Keras weights)
    kernel_sparsity: float
    layers: dict[str, dict]  # layer -> sparsity, unique_values, max_unique_per_channel, dtype
    accuracy: float | None = None
    accuracy_reference: float | None = None
    accuracy_drop: float | None = None
    agreement: float | None = None

    def to_dict(self) -> dict:
        d = asdict(self)
        d.pop("size")
        size = {"bytes": self.size.bytes, "gzip_bytes": self.size.gzip_bytes} if self.size else {}
        return {"measured_in": self.measured_in, **size, **{k: v for k, v in d.items() if k != "measured_in"}}


RESTORED_EPOCH = "restored_epoch"  # history key: the epoch (from 1) whose weights a stage kept


@dataclass
class StageResult:
    kind: str
    settings: dict[str, Any]  # the stage's own description (target sparsity, clusters, scheme, ...)
    target: str  # what it trained on: labels, or the original model's outputs
    loss_function: str | list[str]
    train_samples: int
    batch_size: int
    learning_rate: float
    epochs: int
    steps: int
    history: dict[str, list[float]] = field(default_factory=dict)  # loss / val_loss / accuracy per epoch
    skipped_layers: list[SkippedLayer] = field(default_factory=list)
    own_configs: list[SkippedLayer] = field(default_factory=list)  # layers given tfopt's own QuantizeConfig
    notes: list[str] = field(default_factory=list)
    train_seconds: float = 0.0
    validation_samples: int = 0
    bridge: dict[str, Any] = field(default_factory=dict)
    measured: StageMeasure | None = None
    exported_output: StageMeasure | None = None  # the last stage: the written .tflite, measured the same way
    slim: SlimSection | None = None  # the slim stage's section

    @property
    def label(self) -> str:
        """``prune 80% (block 8x1)`` — what the stage did, in a few words."""
        s = self.settings
        if self.kind == "prune":
            how = f"block {s['block']}" if s.get("block") else s.get("pattern", "unstructured")
            return f"prune {s.get('target_sparsity', 0) * 100:g}% ({how})"
        if self.kind == "cluster":
            return f"cluster {s.get('clusters')} ({s.get('init')})"
        if self.kind == "qat":
            return s.get("scheme", "QAT")
        if self.kind == "slim":
            return f"slim {s.get('ratio', 0) * 100:g}%"
        if self.kind == "distill":
            return f"distill T={s.get('temperature')} α={s.get('alpha')}"
        return self.kind

    def to_dict(self) -> dict:
        d = {"kind": self.kind, **self.settings, "target": self.target, "loss_function": self.loss_function,
             "train_samples": self.train_samples, "validation_samples": self.validation_samples,
             "batch_size": self.batch_size, "learning_rate": self.learning_rate, "epochs": self.epochs,
             "steps": self.steps, "history": self.history, "train_seconds": round(self.train_seconds, 3),
             "skipped_layers": [s.to_dict() for s in self.skipped_layers],
             "own_quantize_configs": [s.to_dict() for s in self.own_configs], "notes": self.notes, **self.bridge}
        if self.measured is not None:
            d.update(self.measured.to_dict())
        if self.exported_output is not None:
            d["exported_output"] = self.exported_output.to_dict()
        if self.slim is not None:
            d["slim"] = self.slim.to_dict()
        return d


@dataclass
class Report:
    recipe: Any  # the Recipe that ran (None for `tfopt verify`)
    model: ModelInfo
    mode: str
    output: str | None
    data: DataInfo | None = None
    io_types: dict[str, str] = field(default_factory=dict)
    sizes: Sizes | None = None
    timings: dict[str, float] = field(default_factory=dict)
    verification: VerifyResult | None = None
    stages: list[StageResult] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    versions: dict[str, str] = field(default_factory=dict)
    failed_output: str | None = None  # a model that missed a gate is written here, never at `output`
    extra: dict[str, Any] = field(default_factory=dict)  # sections other stages add (analysis, auto, slim)
    layer_sizes: list[LayerSize] = field(default_factory=list)  # bytes per Keras layer in the output .tflite

    @property
    def failures(self) -> list[str]:
        return self.verification.failures if self.verification else []

    @property
    def ok(self) -> bool:
        return not self.failures

    @property
    def exit_code(self) -> int:
        return 0 if self.ok else 3

    @property
    def verified(self) -> bool:
        return self.verification is not None

    def to_dict(self) -> dict:
        recipe = self.recipe.to_dict() if hasattr(self.recipe, "to_dict") else (self.recipe or {})
        return {
            "schema": SCHEMA, "ok": self.ok, "exit_code": self.exit_code, "recipe": recipe,
            "model": self.model.to_dict(), "data": self.data.to_dict() if self.data else None, "output": self.output,
            "failed_output": self.failed_output, "mode": self.mode, "io_types": self.io_types,
            "sizes": self.sizes.to_dict() if self.sizes else {}, "timings": self.timings,
            "verification": self.verification.to_dict() if self.verification else None,
            "stages": [s.to_dict() for s in self.stages], "layer_sizes": [x.to_dict() for x in self.layer_sizes],
            "notes": self.notes, "versions": self.versions,
            **{k: (v.to_dict() if hasattr(v, "to_dict") else v) for k, v in self.extra.items()},
        }

    def to_json(self) -> str:
        return dumps(self.to_dict())


def dumps(doc: Any) -> str:
    """Strict JSON (no Infinity/NaN: they become null) with a trailing newline."""
    return json.dumps(finite(doc), indent=2, allow_nan=False, default=_json_default) + "\n"


def reports_json(reports: list[Report]) -> str:
    """One JSON document for one report, a JSON list for several."""
    if len(reports) == 1:
        return reports[0].to_json()
    return dumps([r.to_dict() for r in reports])


def finite(value: Any) -> Any:
    """JSON has no Infinity/NaN: they become null (an SQNR of null means identical outputs)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite(v) for v in value]
    return value


def _json_default(o: Any) -> Any:
    if hasattr(o, "to_dict"):
        return o.to_dict()
    if hasattr(o, "item"):
        return o.item()
    return str(o)
