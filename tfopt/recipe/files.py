"""Recipe files in and out: reading (``load_recipe``), ``--set field.path=value`` overrides, and writing a
recipe as TOML/JSON (``--dump-recipe``).  Validation itself is ``schema.from_dict``.
"""

from __future__ import annotations

import json
import os
import re
import tomllib
from pathlib import Path
from typing import Any

from ..errors import RecipeError
from .schema import PATH_FIELDS, Recipe, from_dict, is_path

_TOKEN = re.compile(r"[A-Za-z_][\w-]*|\d+")


# ---------------------------------------------------------------- --set overrides


def split_field_path(key: str) -> list[str | int] | None:
    """``stages[0].sparsity`` or ``stages.0.sparsity`` → ``['stages', 0, 'sparsity']`` (None if malformed)."""
    parts: list[str | int] = []
    for token in key.replace("]", "").replace("[", ".").split("."):
        if not _TOKEN.fullmatch(token):
            return None
        parts.append(int(token) if token.isdigit() else token)
    return parts if parts and isinstance(parts[0], str) else None


def canonical(parts: list[str | int]) -> str:
    """``['stages', 0, 'sparsity']`` → ``stages[0].sparsity`` (the form error messages use)."""
    out = ""
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else p)
    return out


def parse_value(text: str) -> Any:
    """A TOML value (``0.8``, ``true``, ``[1, 28, 28, 1]``, ``"x"``); a bare word is a string."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def apply_overrides(raw: dict, overrides: list[str], path_fields: tuple[str, ...]) -> tuple[list[str], list[str]]:
    """Apply each ``field.path=value`` to ``raw`` in place.

    Returns (problems, canonical paths set).  Relative paths given on the command line resolve
    against the current directory (the user typed them there), not against the recipe's folder.
    """
    problems, applied = [], []
    for item in overrides:
        key, sep, text = item.partition("=")
        parts = split_field_path(key.strip())
        if not sep or parts is None:
            problems.append(f"--set {item}: got {item!r}, expected field.path=value (e.g. stages[0].sparsity=0.8)")
            continue
        value = parse_value(text.strip())
        dotted = ".".join(p for p in parts if isinstance(p, str))
        if dotted in path_fields and is_path(dotted, value):
            value = str(Path(value).resolve())
        problem = _set(raw, parts, value)
        if problem:
            problems.append(f"--set {item}: {problem}")
        else:
            applied.append(canonical(parts))
    return problems, applied


def _set(raw: dict, parts: list[str | int], value: Any) -> str | None:
    node: Any = raw
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        here = canonical(parts[:i]) or "the recipe"
        if isinstance(part, int):
            if not isinstance(node, list):
                return f"got index [{part}], expected {here} to be a list"
            if part > len(node):
                return f"got index [{part}], expected 0..{len(node)} ({here} has {len(node)} entries; {len(node)} appends)"
            if part == len(node):
                node.append({})
        elif not isinstance(node, dict):
            return f"got .{part}, expected {here} to be a table, but it is {node!r}"
        if last:
            node[part] = value
            return None
        nxt = parts[i + 1]
        if isinstance(node, dict) and part not in node:
            node[part] = [] if isinstance(nxt, int) else {}
        node = node[part]
    return None


# ---------------------------------------------------------------- writing


def relative_paths(recipe: Recipe, folder: Path) -> Recipe:
    """Paths rewritten relative to ``folder`` where they share more than the file system root with it,
    so a dumped recipe can be committed next to the model; others stay absolute."""
    folder = folder.resolve()

    def rel(p: str) -> str:
        absolute = Path(p).resolve()
        common = Path(os.path.commonpath([absolute, folder]))
        return p if common.parent == common else os.path.relpath(absolute, folder)

    return recipe.map_paths(rel)


def dumps_recipe(recipe: Recipe, fmt: str = "toml", header: str | None = None) -> str:
    """The recipe as TOML (with an optional ``# header`` comment) or JSON."""
    if fmt == "json":
        return json.dumps(recipe.to_dict(), indent=2) + "\n"
    text = dumps_toml(recipe)
    return (f"# {header}\n" if header else "") + text


def dumps_toml(recipe: Recipe) -> str:
    """Serialise a recipe as TOML: top-level scalars, then [sections] (and sub-tables), then [[stages]]."""
    d = recipe.to_dict()
    scalars = {k: v for k, v in d.items() if not isinstance(v, (dict, list))}
    lines = [f"{k} = {_toml_value(v)}" for k, v in scalars.items()]
    for section, body in d.items():
        if isinstance(body, dict):
            lines += _toml_table(section, body)
    for section, body in d.items():
        if isinstance(body, list):
            for item in body:
                lines += ["", f"[[{section}]]"] + [f"{_toml_key(k)} = {_toml_value(v)}" for k, v in item.items()]
    return "\n".join(lines) + "\n"


def _toml_table(name: str, body: dict) -> list[str]:
    lines = ["", f"[{name}]"] + [f"{_toml_key(k)} = {_toml_value(v)}" for k, v in body.items() if not isinstance(v, dict)]
    for k, v in body.items():
        if isinstance(v, dict) and v:
            lines += _toml_table(f"{name}.{_toml_key(k)}", v)
    return lines


def _toml_key(k: str) -> str:
    return k if re.fullmatch(r"[A-Za-z0-9_-]+", k) else json.dumps(k)


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{_toml_key(k)} = {_toml_value(x)}" for k, x in v.items()) + "}"
    return json.dumps(str(v))


def load_raw(path: Path) -> Any:
    """The raw data of a TOML (default) or JSON (``.json``) recipe file."""
    try:
        text = path.read_text()
    except OSError as e:
        raise RecipeError(f"{path}: cannot read recipe ({e.strerror})") from e
    is_json = path.suffix.lower() == ".json"
    try:
        return json.loads(text) if is_json else tomllib.loads(text)
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as e:
        raise RecipeError(f"{path}: not valid {'JSON' if is_json else 'TOML'}: {e}") from e


def load_recipe(path: str | Path, overrides: list[str] | None = None, template: bool = False) -> Recipe:
    """Read and validate a TOML or JSON recipe; relative paths resolve against its folder.

    ``overrides`` are ``field.path=value`` strings (``--set``), applied before validation; a shipped
    ``template`` names the --set flags it needs when its model or data path is missing.
    """
    path = Path(path)
    raw = load_raw(path)
    problems, applied = apply_overrides(raw, list(overrides or []), PATH_FIELDS) if overrides else ([], [])
    if problems and not isinstance(raw, dict):
        raise RecipeError(problems[0], problems)
    try:
        recipe = from_dict(raw, source=str(path) if not template else f"template {path.stem}", overridden=applied)
    except RecipeError as e:
        problems += [_template_hint(p) if template else p for p in e.problems]
    if problems:
        raise RecipeError(f"{len(problems)} problems in {path}" if len(problems) > 1 else problems[0], problems)
    return recipe.resolve(path.parent.resolve())


def _template_hint(problem: str) -> str:
    for field_path, flag in (("model", "--set model.path=MODEL"), ("data.path", "--set data.path=DATA")):
        if f": {field_path}" in problem and "got nothing" in problem:
            return f"{problem} (this template needs {flag})"
    return problem
