"""Recipes: the typed ``Recipe`` (schema), its strict parser, files in and out, flags → recipe, templates.

    from tfopt.recipe import from_dict, load_recipe
    recipe = load_recipe("examples/int8.toml", overrides=["convert.quantize=dynamic"])
"""

from .files import load_recipe
from .schema import STAGE_ORDER, STAGES, Recipe, StageKind, from_dict

__all__ = ["STAGES", "STAGE_ORDER", "Recipe", "StageKind", "from_dict", "load_recipe"]
