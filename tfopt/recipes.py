"""Shipped recipes (package data), addressable by name."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from .errors import RecipeError


def shipped() -> dict[str, Path]:
    root = resources.files("tfopt") / "recipe_files"
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
