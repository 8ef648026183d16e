"""A strict, generic parser from plain data (TOML/JSON) into frozen dataclasses.

Every problem is appended to an error list as ``field.path: got X, expected Y`` — unknown keys
(with the nearest valid key), wrong types, values outside a field's ``metadata["range"]``,
non-finite numbers, unknown ``Literal`` values, and tagged unions selected by a ``kind`` field.
Dataclasses come back as ``Builder`` objects so that cross-field rules (``__post_init__``)
run only after every field parsed; a field that failed is left at its default.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import types
import typing
from typing import Any, Literal

from ..errors import RecipeError


class Builder:
    """A validated dataclass waiting to be built, so that cross-field checks run after every field parsed."""

    FAILED = object()

    def __init__(self, cls: type, kwargs: dict, where: str):
        self.cls, self.kwargs, self.where = cls, kwargs, where

    def build(self, errors: list[str]) -> Any:
        kwargs = {k: _build(v, errors) for k, v in self.kwargs.items()}
        kwargs = {k: v for k, v in kwargs.items() if v is not Builder.FAILED}
        try:
            return self.cls(**kwargs)
        except RecipeError as e:  # __post_init__ rules, phrased relative to this section
            prefix = f"{self.where}." if self.where else ""
            errors.extend(prefix + p for p in (e.problems or [e.message]))
        except TypeError:  # a required field that failed: already reported
            pass
        return Builder.FAILED


def _build(value: Any, errors: list[str]) -> Any:
    if isinstance(value, Builder):
        return value.build(errors)
    if isinstance(value, tuple):
        return tuple(v for v in (_build(x, errors) for x in value) if v is not Builder.FAILED)
    if isinstance(value, dict):
        return {k: v for k, v in ((k, _build(x, errors)) for k, x in value.items()) if v is not Builder.FAILED}
    return value


def _show(value: Any) -> str:
    if isinstance(value, dict):
        return "a table"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _expect(tp: Any) -> str:
    """What a type accepts, in words."""
    if dataclasses.is_dataclass(tp) or typing.get_origin(tp) is dict:
        return "a table"
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is Literal:
        return f"one of {list(args)}"
    if origin is tuple:
        inner = args[0]
        if all(dataclasses.is_dataclass(a) for a in typing.get_args(inner) or (inner,)):
            return "a list of tables"
        return "a list of " + {int: "integers", float: "numbers", str: "strings", bool: "booleans"}.get(inner, "values")
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_expect(a) for a in args if a is not type(None))
    return {bool: "true or false", int: "an integer", float: "a number", str: "a string"}.get(tp, str(tp))


def parse(tp: Any, value: Any, where: str, errors: list[str]) -> Any:
    """The parsed value (a ``Builder`` for dataclasses); problems are appended to ``errors``."""
    if dataclasses.is_dataclass(tp):
        return _parse_dataclass(tp, value, where, errors)
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        return _parse_union(args, value, where, errors)
    if origin is Literal:
        if value not in args or isinstance(value, bool) != any(isinstance(a, bool) for a in args):
            near = difflib.get_close_matches(value, [str(a) for a in args], n=1) if isinstance(value, str) else []
            hint = f" (did you mean {near[0]!r}?)" if near else ""
            errors.append(f"{where}: got {_show(value)}, expected one of {list(args)}{hint}")
            return Builder.FAILED
        return value
    if origin is tuple:
        if not isinstance(value, list):
            errors.append(f"{where}: got {_show(value)}, expected {_expect(tp)}")
            return Builder.FAILED
        return tuple(parse(args[0], v, f"{where}[{i}]", errors) for i, v in enumerate(value))
    if origin is dict:
        if not isinstance(value, dict):
            errors.append(f"{where}: got {_show(value)}, expected a table")
            return Builder.FAILED
        return {k: parse(args[1], v, f"{where}.{k}", errors) for k, v in value.items()}
    return _scalar(tp, value, where, errors)


def _parse_union(args: tuple, value: Any, where: str, errors: list[str]) -> Any:
    if value is None and type(None) in args:
        return None
    options = [a for a in args if a is not type(None)]
    if len(options) == 1:
        return parse(options[0], value, where, errors)
    tagged = [o for o in options if dataclasses.is_dataclass(o)]
    if tagged and len(tagged) == len(options):  # stages: tagged by `kind`
        kinds = {_kind_of(o): o for o in tagged}
        kind = value.get("kind") if isinstance(value, dict) else None
        if kind in kinds:
            return parse(kinds[kind], value, where, errors)
        if not isinstance(value, dict):
            errors.append(f"{where}: got {_show(value)}, expected a table with kind = one of {list(kinds)}")
        else:
            near = difflib.get_close_matches(kind, list(kinds), n=1) if isinstance(kind, str) else []
            hint = f" (did you mean {near[0]!r}?)" if near else ""
            got = "nothing" if kind is None else _show(kind)
            errors.append(f"{where}.kind: got {got}, expected one of {list(kinds)}{hint}")
        return Builder.FAILED
    attempts = []
    for option in options:  # untagged: the first that parses cleanly
        scratch: list[str] = []
        parsed = parse(option, value, where, scratch)
        if not scratch:
            return parsed
        attempts.append((option, scratch))
    same_type = [errs for option, errs in attempts if _same_type(option, value)]
    errors.extend(same_type[0] if same_type else [f"{where}: got {_show(value)}, expected {_expect(typing.Union[tuple(options)])}"])
    return Builder.FAILED


def _same_type(option: Any, value: Any) -> bool:
    """Whether ``value`` is of the kind ``option`` takes (its errors then say more than "expected X or Y")."""
    origin = typing.get_origin(option)
    if origin is dict or dataclasses.is_dataclass(option):
        return isinstance(value, dict)
    if origin is tuple:
        return isinstance(value, list)
    if option in (int, float):
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    return isinstance(option, type) and isinstance(value, option)


def _kind_of(cls) -> str:
    return typing.get_args(typing.get_type_hints(cls)["kind"])[0]


def _scalar(tp: type, value: Any, where: str, errors: list[str]) -> Any:
    checks = {
        bool: lambda v: isinstance(v, bool),
        int: lambda v: isinstance(v, int) and not isinstance(v, bool),
        float: lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
        str: lambda v: isinstance(v, str),
    }
    if tp not in checks:
        return value
    if not checks[tp](value):
        errors.append(f"{where}: got {_show(value)}, expected {_expect(tp)}")
        return Builder.FAILED
    if tp is float and not math.isfinite(value):
        errors.append(f"{where}: got {_show(value)}, expected a finite number")
        return Builder.FAILED
    return float(value) if tp is float else value


def _range_problem(f: dataclasses.Field, value: Any, shown: Any) -> str | None:
    lo, hi, hi_open, lo_open = f.metadata.get("range", (None, None, False, False))
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return None
    lo_ok = lo is None or (value > lo if lo_open else value >= lo)
    if lo_ok and (hi is None or (value < hi if hi_open else value <= hi)):
        return None
    return f"got {shown!r}, expected {describe_range(lo, hi, hi_open, lo_open)}"


def describe_range(lo, hi, hi_open: bool = False, lo_open: bool = False) -> str:
    """``0 <= x < 1`` (the words every range error uses)."""
    left = f"{lo:g} {'<' if lo_open else '<='} " if lo is not None else ""
    right = f" {'<' if hi_open else '<='} {hi:g}" if hi is not None else ""
    return f"{left}x{right}"


def _parse_dataclass(cls, value: Any, where: str, errors: list[str]) -> Any:
    if not isinstance(value, dict):
        errors.append(f"{where or 'recipe'}: got {_show(value)}, expected a table")
        return Builder.FAILED
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    prefix = f"{where}." if where else ""
    for key in value:
        if key not in fields:
            near = difflib.get_close_matches(str(key), list(fields), n=1)
            hint = f" (did you mean {near[0]!r}?)" if near else ""
            errors.append(f"{prefix}{key}: got an unknown key{hint}, expected one of {sorted(fields)}")
    kwargs = {}
    for name, f in fields.items():
        if name not in value:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                errors.append(f"{prefix}{name}: got nothing, expected {_expect(hints[name])}")
            continue
        parsed = parse(hints[name], value[name], f"{prefix}{name}", errors)
        items = parsed.items() if isinstance(parsed, dict) else [(None, parsed)]  # a table of limits: each value
        found = [] if parsed is Builder.FAILED else [
            (f"{prefix}{name}" + (f".{k}" if k is not None else ""), _range_problem(f, v, v if k is not None else value[name]))
            for k, v in items]
        found = [(where_, p) for where_, p in found if p]
        errors.extend(f"{where_}: {p}" for where_, p in found)
        if not found and parsed is not Builder.FAILED:
            kwargs[name] = parsed
    return Builder(cls, kwargs, where)
