"""``tfopt convert`` flags → a ``Recipe`` (the same one a recipe file gives); errors name the flag.

``FLAGS`` maps every flag parameter to its recipe field (tests check that every field has a flag and
vice versa).  Stage settings are ``stages[KIND].FIELD``; ``stages[KIND]`` is a flag that only adds a
stage.  No click here: the CLI hands over its parsed values.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from ..errors import RecipeError, UsageError
from ..kinds import parse_overrides
from ..shapes import parse_flags as parse_shape_flags
from .schema import PATH_FIELDS, STAGE_ORDER, STAGES, Recipe, from_dict, is_path

FLAGS = {
    "model": "model.path",
    "custom_objects": "model.custom_objects",
    "input_shape": "model.input_shapes",
    "data": "data.path",
    "train_data": "data.train",
    "calibration": "data.calibration",
    "calibration_samples": "data.calibration_samples",
    "eval_samples": "data.eval_samples",
    "scale": "data.scale",
    "offset": "data.offset",
    "quantize": "convert.quantize",
    "io_type": "convert.io_type",
    "allow_float_fallback": "convert.allow_float_fallback",
    "sparse_encoding": "convert.sparse_encoding",
    "objective": "convert.objective",
    "allow_slower": "convert.allow_slower",
    "slim": "stages[slim].ratio",
    "slim_layer": "stages[slim].layers",
    "slim_round": "stages[slim].round_to",
    "slim_importance": "stages[slim].importance",
    "distill": "stages[distill]",
    "student": "stages[distill].student",
    "temperature": "stages[distill].temperature",
    "alpha": "stages[distill].alpha",
    "prune": "stages[prune].sparsity",
    "prune_schedule": "stages[prune].schedule",
    "prune_pattern": "stages[prune].pattern",
    "prune_block": "stages[prune].block",
    "cluster": "stages[cluster].clusters",
    "cluster_init": "stages[cluster].init",
    "qat": "stages[qat]",
    "epochs": "train.epochs",
    "min_steps": "train.min_steps",
    "validation_split": "train.validation_split",
    "batch_size": "train.batch_size",
    "learning_rate": "train.learning_rate",
    "loss": "train.loss",
    "strategy": "train.strategy",
    "skip_unsupported": "train.skip_unsupported",
    "verify": "verify.enabled",
    "max_accuracy_drop": "verify.max_accuracy_drop",
    "min_agreement": "verify.min_agreement",
    "max_f1_drop": "verify.max_f1_drop",
    "min_sqnr": "verify.min_sqnr",
    "min_cosine": "verify.min_cosine",
    "threshold": "verify.threshold",
    "output_kind": "verify.output_kinds",
    "output": "output.tflite",
    "report": "output.report",
    "markdown": "output.markdown",
    "junit": "output.junit",
    "html": "output.html",
    "seed": "seed",
}
LIMIT_FLAGS = ("max_accuracy_drop", "min_agreement", "max_f1_drop", "min_sqnr", "min_cosine")
# how a flag states its range in errors (the recipe field's own words otherwise)
FLAG_EXPECTS = {"prune": "a fraction 0 <= x < 1 (0.8 = 80 % of the weights zero)",
                "slim": "a fraction 0 < x < 1 (0.5 = half of the channels removed)"}


def flag_name(param: str) -> str:
    return "--" + param.replace("_", "-")


def parse_limit(values: tuple[str, ...] | list[str] | None, flag: str) -> float | dict[str, float] | None:
    """``0.97`` (every output) or ``probs=0.99`` (one output), repeatable → a number or a table."""
    if not values:
        return None
    table: dict[str, float] = {}
    for text in values:
        name, sep, number = str(text).rpartition("=")
        try:
            value = float(number)
        except ValueError:
            raise UsageError(f"{flag} {text!r}: expected a number or NAME=NUMBER (e.g. {flag} probs=0.99)") from None
        table[name.strip() if sep else "*"] = value
    return table["*"] if list(table) == ["*"] else table


def to_raw(params: dict[str, Any]) -> dict:
    """Flags → the nested dict a recipe file holds (absolute paths; stages in their fixed order)."""
    params = _implied(params)
    raw: dict = {}
    stages: dict[str, dict] = {}
    for param, path in FLAGS.items():
        value = _flag_value(param, params.get(param))
        if value is None or (value is False and path.startswith("stages[")):
            continue
        if (path in PATH_FIELDS and is_path(path, str(value))) or param == "student":
            value = str(Path(value).resolve())
        if path.startswith("stages["):
            kind, _, leaf = path.removeprefix("stages[").partition("]")
            stage = stages.setdefault(kind, {"kind": kind})
            if leaf:
                stage[leaf.lstrip(".")] = value
            continue
        node = raw
        *parents, leaf = path.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    for kind in stages:
        if params.get(kind) in (None, False):
            flags = [flag_name(k) for k, v in FLAGS.items() if v.startswith(f"stages[{kind}].")
                     and params.get(k) is not None]
            raise UsageError(f"{', '.join(flags)} needs --{kind}")
    if stages:
        raw["stages"] = [stages[k] for k in STAGE_ORDER if k in stages]
    return raw


def _implied(params: dict[str, Any]) -> dict[str, Any]:
    """``--slim`` runs distill unless ``--no-distill``; ``--student`` means distill."""
    if params.get("distill") is None and (params.get("slim") is not None or params.get("student") is not None):
        return {**params, "distill": True}
    return params


def parse_ratios(values: tuple[str, ...] | list[str] | dict | None, flag: str) -> dict[str, float] | None:
    """``conv1=0.25`` (repeatable) → {"conv1": 0.25}."""
    if not values or isinstance(values, dict):
        return values or None
    table: dict[str, float] = {}
    for text in values:
        name, sep, number = str(text).rpartition("=")
        try:
            if not sep or not name.strip():
                raise ValueError
            table[name.strip()] = float(number)
        except ValueError:
            raise UsageError(f"{flag} {text!r}: expected NAME=RATIO (e.g. {flag} conv1=0.25)") from None
    return table


def _flag_value(param: str, value: Any) -> Any:
    if param == "slim_layer":
        return parse_ratios(value, flag_name(param))
    if param in LIMIT_FLAGS:
        return parse_limit(value, flag_name(param))
    if param == "output_kind":
        return parse_overrides(value) or None
    if param == "input_shape":
        return parse_shape_flags(value) if value and not isinstance(value, dict) else (value or None)
    if isinstance(value, tuple) and not value:
        return None
    return value


def recipe_from_flags(params: dict[str, Any]) -> Recipe:
    """The Recipe for a command line; a problem names the flag, not the recipe field."""
    raw = to_raw(params)
    try:
        return from_dict(raw, source="command line")
    except RecipeError as e:
        problems = [_as_flag(p, raw) for p in e.problems]
        raise RecipeError(problems[0] if len(problems) == 1 else f"{len(problems)} problems", problems) from None


def _as_flag(problem: str, raw: dict) -> str:
    """``command line: stages[0].sparsity: got 1.5, ...`` → ``--prune: got 1.5, expected a fraction ...``."""
    text = problem.removeprefix("command line: ")
    field_path, sep, rest = text.partition(": ")
    m = re.fullmatch(r"stages\[(\d+)\]\.(\w+)", field_path)
    if m and int(m.group(1)) < len(raw.get("stages", [])):
        field_path = f"stages[{raw['stages'][int(m.group(1))]['kind']}].{m.group(2)}"
    base = re.sub(r"^(verify\.\w+)\..*$", r"\1", field_path)
    param = next((k for k, v in FLAGS.items() if v in (field_path, base)), None)
    if param is None or not sep:
        return text
    if param in FLAG_EXPECTS and re.search(r"expected [-\d.]+ <=? x|expected x <", rest):
        rest = rest.split("expected")[0] + "expected " + FLAG_EXPECTS[param]
    return f"{flag_name(param)}: {rest}"


def stage_flags() -> dict[str, list[str]]:
    """kind -> its flags (for help texts and tests)."""
    return {kind: [flag_name(k) for k, v in FLAGS.items() if v.startswith(f"stages[{kind}]")] for kind in STAGES}

