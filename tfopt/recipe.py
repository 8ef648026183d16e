"""The typed ``Recipe``: what flags and recipe files both become.

A recipe is plain data (TOML or JSON) validated into frozen dataclasses.  Validation is
strict and complete: every unknown key, wrong type, out-of-range value and contradiction in
a file is reported at once as ``field.path: got X, expected Y``.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import tomllib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from .errors import RecipeError

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
    seed: int = 0
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

        def fix(p: str | None) -> str | None:
            return None if p is None or Path(p).is_absolute() else str((base / p).resolve())

        co = self.model.custom_objects
        co = fix(co) if co and co.endswith(".py") else co
        return dataclasses.replace(
            self,
            model=dataclasses.replace(self.model, path=fix(self.model.path), custom_objects=co),
            data=dataclasses.replace(self.data, path=fix(self.data.path), train=fix(self.data.train)),
            output=OutputSection(**{k: fix(v) for k, v in dataclasses.asdict(self.output).items()}),
        )


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
    if "qat" in kinds and mode != "int8":
        problems.append(f"convert.quantize: got {mode!r}, expected 'int8' with a qat stage (QAT trains for int8)")
    if kinds and r.data.path is None and r.data.train is None:
        problems.append("data.path: got nothing, expected training data for the fine-tuning stages")
    if not r.verify.enabled and (r.output.junit is not None):
        problems.append("output.junit: got a path, expected verify.enabled = true (JUnit reports the thresholds)")
    return problems


# ---------------------------------------------------------------- parsing


def load_recipe(path: str | Path, overrides: list[str] | None = None) -> Recipe:
    """Read and validate a TOML or JSON recipe; relative paths resolve against its folder."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as e:
        raise RecipeError(f"{path}: cannot read recipe ({e.strerror})") from e
    try:
        raw = json.loads(text) if path.suffix == ".json" else tomllib.loads(text)
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as e:
        raise RecipeError(f"{path}: not valid {'JSON' if path.suffix == '.json' else 'TOML'}: {e}") from e
    for item in overrides or []:
        _apply_override(raw, item, path)
    return from_dict(raw, source=str(path)).resolve(path.parent.resolve())


def from_dict(raw: Any, source: str = "recipe") -> Recipe:
    errors: list[str] = []
    value = _parse(Recipe, raw, "", errors)
    if not errors:
        try:
            return value()  # deferred construction runs cross_check
        except RecipeError as e:
            errors.extend(e.problems)
    lines = [f"{source}: {e}" for e in errors]
    raise RecipeError(lines[0] if len(lines) == 1 else f"{len(lines)} problems in {source}", lines)


def _apply_override(raw: dict, item: str, source: Path) -> None:
    key, sep, text = item.partition("=")
    if not sep or not key:
        raise RecipeError(f"--set {item!r}: expected field.path=value")
    try:
        value = tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        value = text  # a bare word is a string
    node = raw
    parts = key.split(".")
    for part in parts[:-1]:
        if isinstance(node, list):
            node = node[int(part)] if part.isdigit() and int(part) < len(node) else {}
        else:
            node = node.setdefault(part, {})
    node[parts[-1]] = value


def _parse(tp: Any, value: Any, where: str, errors: list[str]) -> Any:
    """Return a zero-argument builder for dataclasses (so cross checks run last), else the value."""
    if dataclasses.is_dataclass(tp):
        return _parse_dataclass(tp, value, where, errors)
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        options = [a for a in args if a is not type(None)]
        if len(options) == 1:
            return _parse(options[0], value, where, errors)
        kind = value.get("kind") if isinstance(value, dict) else None
        for option in options:  # tagged union of stages
            if _kind_of(option) == kind:
                return _parse(option, value, where, errors)
        errors.append(f"{where}.kind: got {kind!r}, expected one of {[_kind_of(o) for o in options]}")
        return None
    if origin is Literal:
        if value not in args:
            errors.append(f"{where}: got {value!r}, expected one of {list(args)}")
        return value
    if origin is tuple:
        if not isinstance(value, list):
            errors.append(f"{where}: got {value!r}, expected a list")
            return ()
        return tuple(_parse(args[0], v, f"{where}[{i}]", errors) for i, v in enumerate(value))
    if origin is dict:
        if not isinstance(value, dict):
            errors.append(f"{where}: got {value!r}, expected a table")
            return {}
        return {k: _parse(args[1], v, f"{where}.{k}", errors) for k, v in value.items()}
    return _scalar(tp, value, where, errors)


def _kind_of(cls) -> str:
    return typing.get_args(typing.get_type_hints(cls)["kind"])[0]


def _scalar(tp: type, value: Any, where: str, errors: list[str]) -> Any:
    ok = {
        bool: isinstance(value, bool),
        int: isinstance(value, int) and not isinstance(value, bool),
        float: isinstance(value, (int, float)) and not isinstance(value, bool),
        str: isinstance(value, str),
    }[tp]
    if not ok:
        errors.append(f"{where}: got {value!r}, expected {'a number' if tp is float else 'a ' + tp.__name__}")
        return value
    return float(value) if tp is float else value


def _parse_dataclass(cls, value: Any, where: str, errors: list[str]):
    if not isinstance(value, dict):
        errors.append(f"{where or 'recipe'}: got {value!r}, expected a table")
        return lambda: None
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    prefix = f"{where}." if where else ""
    for key in value:
        if key not in fields:
            near = difflib.get_close_matches(key, list(fields), n=1)
            hint = f" (did you mean {near[0]!r}?)" if near else ""
            errors.append(f"{prefix}{key}: unknown key{hint}, expected one of {sorted(fields)}")
    kwargs = {}
    for name, f in fields.items():
        if name not in value:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                errors.append(f"{prefix}{name}: missing, expected a value")
            continue
        parsed = _parse(hints[name], value[name], f"{prefix}{name}", errors)
        lo, hi, hi_open = f.metadata.get("range", (None, None, False))
        if isinstance(parsed, (int, float)) and not isinstance(parsed, bool):
            if (lo is not None and parsed < lo) or (hi is not None and (parsed >= hi if hi_open else parsed > hi)):
                expected = " and ".join(
                    part
                    for part in (
                        f"{lo} <= x" if lo is not None else "",
                        (f"x < {hi}" if hi_open else f"x <= {hi}") if hi is not None else "",
                    )
                    if part
                )
                errors.append(f"{prefix}{name}: got {parsed!r}, expected {expected}")
        kwargs[name] = parsed

    def build():
        built = {k: (v() if callable(v) and not isinstance(v, type) else v) for k, v in kwargs.items()}
        if "stages" in built:
            built["stages"] = tuple(s() if callable(s) else s for s in built["stages"])
        return cls(**built)

    return build


def _prune_none(d: Any) -> Any:
    if isinstance(d, dict):
        return {k: _prune_none(v) for k, v in d.items() if v is not None and v != {}}
    if isinstance(d, (list, tuple)):
        return [_prune_none(v) for v in d]
    return d


# ---------------------------------------------------------------- writing


def dumps_toml(recipe: Recipe) -> str:
    """Serialise a recipe as TOML (scalars, lists, tables and arrays of tables only)."""
    d = recipe.to_dict()
    lines = []
    for key in ("version", "seed"):
        lines.append(f"{key} = {_toml_value(d.pop(key))}")
    stages = d.pop("stages", [])
    for section, body in d.items():
        lines += ["", f"[{section}]"] + [f"{k} = {_toml_value(v)}" for k, v in body.items() if not isinstance(v, dict)]
        for k, v in body.items():
            if isinstance(v, dict) and v:
                lines += ["", f"[{section}.{k}]"] + [f"{_toml_key(kk)} = {_toml_value(vv)}" for kk, vv in v.items()]
    for stage in stages:
        lines += ["", "[[stages]]"] + [f"{k} = {_toml_value(v)}" for k, v in stage.items()]
    return "\n".join(lines) + "\n"


def _toml_key(k: str) -> str:
    return k if k.replace("_", "").replace("-", "").isalnum() else json.dumps(k)


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    return json.dumps(str(v))
