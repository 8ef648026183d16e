"""The typed ``Recipe``: what flags and recipe files both become (frozen dataclasses, strict rules).

Validation is strict and complete: every unknown key, wrong type, out-of-range value and
contradiction is reported at once as ``field.path: got X, expected Y``.  Mode names and io types
come from the mode table (``modes.py``), stage kinds from ``StageKind``.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal

from .. import modes
from ..errors import RecipeError
from ..kinds import GATES, Kind
from ..modes import IoTypeName, QuantizeName
from .parse import Builder, parse

SCHEMA_VERSION = 1
KindName = Literal[tuple(k.value for k in Kind)]  # type: ignore[valid-type]


def _range(lo: float | None = None, hi: float | None = None, hi_open: bool = False, lo_open: bool = False) -> dict:
    return {"range": (lo, hi, hi_open, lo_open)}


class StageKind(StrEnum):
    """The fine-tuning stages, in the one order they run."""

    SLIM = "slim"
    DISTILL = "distill"
    PRUNE = "prune"
    CLUSTER = "cluster"
    QAT = "qat"


STAGE_ORDER = tuple(k.value for k in StageKind)


@dataclass(frozen=True)
class ModelSection:
    path: str
    custom_objects: str | None = None
    input_shapes: dict[str, tuple[int, ...]] = field(default_factory=dict)


@dataclass(frozen=True)
class DataSection:
    path: str | None = None  # calibration + evaluation (and training unless `train` is set)
    train: str | None = None  # fine-tuning data, default: the train part of `path`
    calibration: Literal["data", "random"] = "data"
    calibration_samples: int = field(default=200, metadata=_range(1))
    eval_samples: int | None = field(default=None, metadata=_range(1))
    scale: float | None = None  # image folders: pixel * scale + offset
    offset: float | None = None


@dataclass(frozen=True)
class SlimStage:
    kind: Literal["slim"] = "slim"
    ratio: float = field(default=0.5, metadata=_range(0.0, 1.0, hi_open=True, lo_open=True))  # channels removed
    layers: dict[str, float] = field(default_factory=dict, metadata=_range(0.0, 1.0, hi_open=True))  # per layer
    round_to: int = field(default=1, metadata=_range(1))  # keep a multiple of this many channels per group
    importance: Literal["auto", "l1"] = "auto"  # auto: |gamma| of a following BatchNormalization, else kernel L1


DEFAULT_TEMPERATURE = 1.0  # measured best on the sample (T=2: -0.3..-0.8 points, T=4: -1..-2; bench/RESULTS.md)
DEFAULT_ALPHA = 0.5


@dataclass(frozen=True)
class DistillStage:
    kind: Literal["distill"] = "distill"
    temperature: float = field(default=DEFAULT_TEMPERATURE, metadata=_range(0.0, lo_open=True))
    alpha: float = field(default=DEFAULT_ALPHA, metadata=_range(0.0))  # weight of the hard-label loss
    student: str | None = None  # a model file; None: the model the stages before made (the slimmed one)


@dataclass(frozen=True)
class PruneStage:
    kind: Literal["prune"] = "prune"
    sparsity: float = field(default=0.5, metadata=_range(0.0, 1.0, hi_open=True))
    schedule: Literal["polynomial", "constant"] = "polynomial"
    pattern: Literal["unstructured", "2:4"] = "unstructured"
    block: tuple[int, ...] | None = None


@dataclass(frozen=True)
class ClusterStage:
    kind: Literal["cluster"] = "cluster"
    clusters: int = field(default=16, metadata=_range(2, 256))
    init: Literal["kmeans++", "linear", "random", "density-based"] = "kmeans++"


@dataclass(frozen=True)
class QatStage:
    kind: Literal["qat"] = "qat"


STAGES: dict[str, type] = {"slim": SlimStage, "distill": DistillStage, "prune": PruneStage, "cluster": ClusterStage,
                           "qat": QatStage}
AnyStage = SlimStage | DistillStage | PruneStage | ClusterStage | QatStage
assert tuple(STAGES) == STAGE_ORDER


@dataclass(frozen=True)
class TrainSection:
    epochs: int = field(default=2, metadata=_range(1))  # per stage, at least (see min_steps)
    min_steps: int = field(default=300, metadata=_range(0))  # optimizer steps per stage, at least
    batch_size: int = field(default=64, metadata=_range(1))
    learning_rate: float | None = field(default=None, metadata=_range(0.0, lo_open=True))  # None: saved, else 1e-3
    validation_split: float = field(default=0.1, metadata=_range(0.0, 1.0, hi_open=True))  # held out: restore-best
    loss: str | None = None
    strategy: Literal["none", "mirrored", "multiworker"] = "none"
    skip_unsupported: bool = False  # stages apply to the layers TF-MOT supports; the report lists the rest


@dataclass(frozen=True)
class ConvertSection:
    quantize: QuantizeName | None = None  # None: int8 with a qat stage (QAT trains for int8), else none
    io_type: IoTypeName | None = None
    allow_float_fallback: bool = False
    sparse_encoding: bool = False
    objective: modes.ObjectiveName = "size"  # quantize = "auto": the smallest or the fastest that meets the gates
    allow_slower: bool = False  # quantize = "auto": a candidate slower than float32 may be chosen


Limit = float | dict[str, float] | None  # one limit for every output, or per output name ("*" = the others)


@dataclass(frozen=True)
class VerifySection:
    enabled: bool = True
    max_accuracy_drop: Limit = field(default=None, metadata=_range(0.0, 1.0))
    min_agreement: Limit = field(default=None, metadata=_range(0.0, 1.0))
    max_f1_drop: Limit = field(default=None, metadata=_range(0.0, 1.0))
    min_sqnr: Limit = None
    min_cosine: Limit = field(default=None, metadata=_range(-1.0, 1.0))
    threshold: float = field(default=0.5, metadata=_range(0.0, 1.0, hi_open=True, lo_open=True))
    output_kinds: dict[str, KindName] = field(default_factory=dict)

    def limits(self) -> dict[str, dict[str, float]]:
        """metric -> {"*" or output name: limit}, for the gates the user set."""
        out = {}
        for metric in GATES:
            value = getattr(self, _FIELD_OF[metric])
            if value is not None:
                out[metric] = dict(value) if isinstance(value, dict) else {"*": value}
        return out


_FIELD_OF = {"agreement": "min_agreement", "accuracy_drop": "max_accuracy_drop", "f1_drop": "max_f1_drop",
             "sqnr_db": "min_sqnr", "cosine": "min_cosine"}
GATE_FIELDS = tuple(_FIELD_OF.values())


@dataclass(frozen=True)
class OutputSection:
    tflite: str | None = None
    report: str | None = None
    markdown: str | None = None
    junit: str | None = None
    html: str | None = None


@dataclass(frozen=True)
class Recipe:
    model: ModelSection
    version: int = SCHEMA_VERSION
    seed: int = field(default=0, metadata=_range(0))
    data: DataSection = DataSection()
    stages: tuple[AnyStage, ...] = ()
    train: TrainSection = TrainSection()
    convert: ConvertSection = ConvertSection()
    verify: VerifySection = VerifySection()
    output: OutputSection = OutputSection()

    def __post_init__(self) -> None:
        if self.convert.quantize is None:  # --qat and a qat stage in a file mean the same: train for int8
            quantize = modes.INT8.name if any(s.kind == StageKind.QAT for s in self.stages) else modes.FLOAT32.name
            object.__setattr__(self, "convert", dataclasses.replace(self.convert, quantize=quantize))
        problems = cross_check(self)
        if problems:
            raise RecipeError(problems[0], problems)

    @property
    def mode(self) -> modes.Mode:
        return modes.MODES[self.convert.quantize]

    @property
    def finetuned(self) -> bool:
        return bool(self.stages)

    def stage(self, kind: str):
        return next((s for s in self.stages if s.kind == kind), None)

    def to_dict(self) -> dict:
        return _prune_none(dataclasses.asdict(self))

    def resolve(self, base: Path) -> Recipe:
        """Paths relative to ``base`` (the recipe file's folder) made absolute."""
        return self.map_paths(lambda p: p if Path(p).is_absolute() else str((base / p).resolve()))

    def with_output_dir(self, folder: Path, name: str) -> Recipe:
        """The .tflite written to ``folder/name.tflite`` (``tfopt run --output-dir``)."""
        tflite = str(folder.resolve() / f"{name}.tflite")
        return dataclasses.replace(self, output=dataclasses.replace(self.output, tflite=tflite))

    def map_paths(self, fn: typing.Callable[[str], str]) -> Recipe:
        """A copy with ``fn`` applied to every path field (``PATH_FIELDS``)."""
        sections: dict[str, dict] = {}
        for name in PATH_FIELDS:
            section, leaf = name.split(".")
            value = getattr(getattr(self, section), leaf)
            if is_path(name, value):
                sections.setdefault(section, {})[leaf] = fn(value)
        changes: dict[str, Any] = {s: dataclasses.replace(getattr(self, s), **kw) for s, kw in sections.items()}
        if any(getattr(s, "student", None) for s in self.stages):  # stages[distill].student is a path too
            changes["stages"] = tuple(dataclasses.replace(s, student=fn(s.student)) if getattr(s, "student", None)
                                      else s for s in self.stages)
        return dataclasses.replace(self, **changes)

    def output_paths(self) -> dict[str, str | None]:
        """Every file the run writes besides the .tflite, labelled as the flags name them."""
        o = self.output
        return {"--report": o.report, "--markdown": o.markdown, "--junit": o.junit, "--html": o.html}

    def input_paths(self) -> dict[str, str | None]:
        custom = self.model.custom_objects if is_path("model.custom_objects", self.model.custom_objects) else None
        distill = self.stage(StageKind.DISTILL)
        return {"input model": self.model.path, "data file": self.data.path, "training data": self.data.train,
                "custom objects file": custom, "student model": distill.student if distill else None}


def cross_check(r: Recipe) -> list[str]:
    """Rules that involve more than one field."""
    problems = []
    if r.version != SCHEMA_VERSION:
        problems.append(f"version: got {r.version}, expected {SCHEMA_VERSION}")
    mode = modes.MODES[r.convert.quantize]
    if mode.needs_calibration and r.data.calibration == "data" and r.data.path is None:
        problems.append(
            f"data.path: got nothing, expected calibration data: --quantize {mode.name} calibrates on real samples "
            "(pass --data FILE, or --calibration random to accept synthetic calibration)"
        )
    if not mode.search and (r.convert.allow_slower or r.convert.objective != modes.OBJECTIVES[0]):
        problems.append(f"convert.objective / convert.allow_slower: got them with quantize = {mode.name!r}, expected "
                        f"quantize = {modes.AUTO.name!r} (they steer its search)")
    io_problem = modes.io_type_problem(mode.name, r.convert.io_type)
    if io_problem:
        problems.append(f"convert.io_type: {io_problem}")
    problems += _stage_problems(r, mode)
    problems += _verify_problems(r)
    return problems


def _stage_problems(r: Recipe, mode: modes.Mode) -> list[str]:
    problems = []
    kinds = [s.kind for s in r.stages]
    if len(set(kinds)) != len(kinds):
        problems.append(f"stages: got {kinds}, expected each kind at most once")
    if kinds != sorted(kinds, key=STAGE_ORDER.index):
        problems.append(f"stages: got order {kinds}, expected the fixed order {' → '.join(STAGE_ORDER)}")
    for i, s in enumerate(r.stages):
        if s.kind == StageKind.PRUNE and s.pattern == "2:4" and s.sparsity != 0.5:
            problems.append(f"stages[{i}].sparsity: got {s.sparsity}, expected 0.5 with pattern '2:4' (2 of every 4 weights)")
        if s.kind == StageKind.PRUNE and s.block is not None and (len(s.block) != 2 or min(s.block) < 1):
            problems.append(f"stages[{i}].block: got {list(s.block)}, expected [rows, cols] of positive integers")
        if s.kind == StageKind.PRUNE and s.block is not None and s.pattern == "2:4":
            problems.append(f"stages[{i}].block: got {list(s.block)}, expected no block with pattern '2:4'")
    problems += _distill_problems(r)
    if StageKind.QAT in kinds and mode is not modes.INT8:
        problems.append(f"convert.quantize: got {mode.name!r}, expected {modes.INT8.name!r} with a qat stage "
                        "(QAT trains for int8)")
    if kinds and r.data.path is None and r.data.train is None:
        problems.append("data.path: got nothing, expected training data for the fine-tuning stages")
    return problems


def _distill_problems(r: Recipe) -> list[str]:
    kinds = [s.kind for s in r.stages]
    if StageKind.DISTILL not in kinds:
        return []
    i = kinds.index(StageKind.DISTILL)
    student = r.stages[i].student
    if student is not None and StageKind.SLIM in kinds:
        return [f"stages[{i}].student: got {student!r}, expected no student with a slim stage "
                "(the slimmed model is the student)"]
    if student is None and StageKind.SLIM not in kinds:
        return [f"stages[{i}].student: got nothing, expected a student model (--student FILE) or a slim stage "
                "before distill (--slim R: the slimmed model is the student)"]
    return []


def _verify_problems(r: Recipe) -> list[str]:
    problems = []
    v = r.verify
    for name in GATE_FIELDS:
        value = getattr(v, name)
        if value is None:
            continue
        if not v.enabled:
            problems.append(f"verify.{name}: got {value!r}, expected no gate with verify.enabled = false (--no-verify)")
    if not v.enabled and v.output_kinds:
        problems.append(f"verify.output_kinds: got {dict(v.output_kinds)}, expected none with verify.enabled = false "
                        "(output kinds choose the verification gates)")
    if not v.enabled and r.output.junit is not None:
        problems.append("output.junit: got a path, expected verify.enabled = true (JUnit reports the gates)")
    return problems


PATH_FIELDS = (
    "model.path", "model.custom_objects", "data.path", "data.train",
    "output.tflite", "output.report", "output.markdown", "output.junit", "output.html",
)  # fmt: skip


def is_path(name: str, value: Any) -> bool:
    """custom_objects is a path only when it names a .py file (else it is module:attr)."""
    return isinstance(value, str) and bool(value) and (name != "model.custom_objects" or value.endswith(".py"))


def from_dict(raw: Any, source: str = "recipe", overridden: list[str] | tuple[str, ...] = ()) -> Recipe:
    """Validate raw recipe data; raise RecipeError listing every problem as ``SOURCE: field.path: got X, expected Y``."""
    errors: list[str] = []
    builder = parse(Recipe, raw, "", errors)
    parse_errors = list(errors)
    recipe = builder.build(errors) if isinstance(builder, Builder) else None
    # cross-field checks run too, but not about fields that already failed (their values are unknown)
    bad = [_lead(e) for e in parse_errors]
    errors = parse_errors + [e for e in errors[len(parse_errors):] if not any(_related(_lead(e), b) for b in bad)]
    if not errors and isinstance(recipe, Recipe):
        return recipe
    lines = [f"{source}: {e}" + (" (from --set)" if _lead(e) in overridden else "") for e in errors]
    raise RecipeError(lines[0] if len(lines) == 1 else f"{len(lines)} problems in {source}", lines)


def _lead(problem: str) -> str:
    return problem.split(":", 1)[0]


def _related(a: str, b: str) -> bool:
    return a == b or a.startswith((b + ".", b + "[")) or b.startswith((a + ".", a + "["))


def _prune_none(d: Any) -> Any:
    if isinstance(d, dict):
        pruned = {k: _prune_none(v) for k, v in d.items() if v is not None}
        return {k: v for k, v in pruned.items() if v != {}}
    if isinstance(d, (list, tuple)):
        return [_prune_none(v) for v in d]
    return d
