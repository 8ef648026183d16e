"""Shipped recipe templates (package data, ``tfopt/recipe/shipped``), addressable by name.

Templates hold the settings of a job, not its files: ``tfopt run int8 --set model.path=m.h5 --set
data.path=d.npz``.  They work after ``pip install`` from any folder.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from ..errors import RecipeError


def shipped() -> dict[str, Path]:
    root = resources.files("tfopt.recipe") / "shipped"
    if not root.is_dir():
        return {}
    found = {p.name.removesuffix(".toml"): Path(str(p)) for p in root.iterdir() if p.name.endswith(".toml")}
    return dict(sorted(found.items()))


def find(name: str) -> Path:
    """A recipe file path, or the shipped recipe of that name."""
    path = Path(name)
    if path.suffix in (".toml", ".json") or path.exists():
        if not path.is_file():
            raise RecipeError(f"{name}: recipe file not found")
        return path
    known = shipped()
    if name in known:
        return known[name]
    raise RecipeError(f"{name}: no such recipe file or shipped recipe; shipped: {', '.join(known) or 'none'}")


def is_shipped(path: Path) -> bool:
    return any(path.resolve() == p.resolve() for p in shipped().values())


def load(name: str, overrides: list[str] | None = None):
    """A recipe file, or a shipped template, validated with ``--set`` overrides applied."""
    from .files import load_recipe

    path = find(name)
    return load_recipe(path, overrides, template=is_shipped(path))
