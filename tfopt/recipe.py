"""The typed ``Recipe``: what flags and recipe files both become.

A recipe is plain data (TOML or JSON) validated into frozen dataclasses.  Validation is
strict and complete: every unknown key, wrong type, out-of-range value and contradiction in
a file is reported at once as ``field.path: got X, expected Y``.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from .errors import RecipeError
from .recipe_parse import Builder, parse

QUANTIZE = Literal["none", "dynamic", "float16", "int8", "int16x8"]
IO_TYPE = Literal["int8", "uint8", "int16", "float32"]
SCHEMA_VERSION = 1


def _range(lo: float | None = None, hi: float | None = None, hi_open: bool = False) -> dict:
    return {"range": (lo, hi, hi_open)}


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


STAGES: dict[str, type] = {"prune": PruneStage, "cluster": ClusterStage, "qat": QatStage}
STAGE_ORDER = ("prune", "cluster", "qat")


@dataclass(frozen=True)
class TrainSection:
    epochs: int = field(default=2, metadata=_range(1))
    batch_size: int = field(default=64, metadata=_range(1))
    learning_rate: float = field(default=1e-4, metadata=_range(0.0))
    loss: str | None = None
    strategy: Literal["none", "mirrored", "multiworker"] = "none"
    skip_unsupported: bool = False  # stages apply to the layers TF-MOT supports; the report lists the rest


@dataclass(frozen=True)
class ConvertSection:
    quantize: QUANTIZE = "none"
    io_type: IO_TYPE | None = None
    allow_float_fallback: bool = False
    sparse_encoding: bool = False


@dataclass(frozen=True)
class VerifySection:
    enabled: bool = True
    max_accuracy_drop: float | None = field(default=None, metadata=_range(0.0, 1.0))
    min_agreement: float | None = field(default=None, metadata=_range(0.0, 1.0))
    min_sqnr: float | None = None


@dataclass(frozen=True)
class OutputSection:
    tflite: str | None = None
    report: str | None = None
    markdown: str | None = None
    junit: str | None = None


@dataclass(frozen=True)
class Recipe:
    model: ModelSection
    version: int = SCHEMA_VERSION
    seed: int = field(default=0, metadata=_range(0))
    data: DataSection = DataSection()
    stages: tuple[PruneStage | ClusterStage | QatStage, ...] = ()
    train: TrainSection = TrainSection()
    convert: ConvertSection = ConvertSection()
    verify: VerifySection = VerifySection()
    output: OutputSection = OutputSection()

    def __post_init__(self) -> None:
        problems = cross_check(self)
        if problems:
            raise RecipeError(problems[0], problems)

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
            if _is_path(name, value):
                sections.setdefault(section, {})[leaf] = fn(value)
        changes = {s: dataclasses.replace(getattr(self, s), **kw) for s, kw in sections.items()}
        return dataclasses.replace(self, **changes)


def cross_check(r: Recipe) -> list[str]:
    """Rules that involve more than one field."""
    problems = []
    if r.version != SCHEMA_VERSION:
        problems.append(f"version: got {r.version}, expected {SCHEMA_VERSION}")
    mode = r.convert.quantize
    needs_data = mode in ("int8", "int16x8") and r.data.calibration == "data"
    if needs_data and r.data.path is None:
        problems.append(
            f"data.path: got nothing, expected calibration data: --quantize {mode} calibrates on real samples "
            "(pass --data FILE, or --calibration random to accept synthetic calibration)"
        )
    io_allowed = {"int8": ("int8", "uint8", "float32"), "int16x8": ("int16", "float32")}.get(mode, ("float32",))
    if r.convert.io_type is not None and r.convert.io_type not in io_allowed:
        problems.append(
            f"convert.io_type: got {r.convert.io_type!r}, expected one of {list(io_allowed)} for quantize = {mode!r}"
        )
    kinds = [s.kind for s in r.stages]
    if len(set(kinds)) != len(kinds):
        problems.append(f"stages: got {kinds}, expected each kind at most once")
    if kinds != sorted(kinds, key=STAGE_ORDER.index):
        problems.append(f"stages: got order {kinds}, expected the fixed order prune → cluster → qat")
    for i, s in enumerate(r.stages):
        if s.kind == "prune" and s.pattern == "2:4" and s.sparsity != 0.5:
            problems.append(f"stages[{i}].sparsity: got {s.sparsity}, expected 0.5 with pattern '2:4' (2 of every 4 weights)")
        if s.kind == "prune" and s.block is not None and (len(s.block) != 2 or min(s.block) < 1):
            problems.append(f"stages[{i}].block: got {list(s.block)}, expected [rows, cols] of positive integers")
        if s.kind == "prune" and s.block is not None and s.pattern == "2:4":
            problems.append(f"stages[{i}].block: got {list(s.block)}, expected no block with pattern '2:4'")
    if "qat" in kinds and mode != "int8":
        problems.append(f"convert.quantize: got {mode!r}, expected 'int8' with a qat stage (QAT trains for int8)")
    if kinds and r.data.path is None and r.data.train is None:
        problems.append("data.path: got nothing, expected training data for the fine-tuning stages")
    thresholds = {k: getattr(r.verify, k) for k in ("max_accuracy_drop", "min_agreement", "min_sqnr")}
    for name, value in thresholds.items():
        if not r.verify.enabled and value is not None:
            problems.append(f"verify.{name}: got {value!r}, expected no threshold with verify.enabled = false (--no-verify)")
    if not r.verify.enabled and (r.output.junit is not None):
        problems.append("output.junit: got a path, expected verify.enabled = true (JUnit reports the thresholds)")
    return problems


# ---------------------------------------------------------------- parsing

PATH_FIELDS = (
    "model.path", "model.custom_objects", "data.path", "data.train",
    "output.tflite", "output.report", "output.markdown", "output.junit",
)  # fmt: skip


def _is_path(name: str, value: Any) -> bool:
    """custom_objects is a path only when it names a .py file (else it is module:attr)."""
    return isinstance(value, str) and bool(value) and (name != "model.custom_objects" or value.endswith(".py"))


def load_recipe(path: str | Path, overrides: list[str] | None = None) -> Recipe:
    """Read and validate a TOML or JSON recipe; relative paths resolve against its folder.

    ``overrides`` are ``field.path=value`` strings (``--set``), applied before validation.
    """
    from .recipe_io import apply_overrides, load_raw

    path = Path(path)
    raw = load_raw(path)
    problems, applied = apply_overrides(raw, list(overrides or []), PATH_FIELDS) if overrides else ([], [])
    if problems and not isinstance(raw, dict):
        raise RecipeError(problems[0], problems)
    try:
        recipe = from_dict(raw, source=str(path), overridden=applied)
    except RecipeError as e:
        problems += e.problems
        raise RecipeError(f"{len(problems)} problems in {path}" if len(problems) > 1 else problems[0], problems) from None
    if problems:
        raise RecipeError(f"{len(problems)} problems in {path}" if len(problems) > 1 else problems[0], problems)
    return recipe.resolve(path.parent.resolve())


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
