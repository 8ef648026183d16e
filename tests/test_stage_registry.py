"""The stage registry: one row per stage, keyed by StageKind, each row pointing at a complete implementation."""

from __future__ import annotations

import pytest

from tfopt.errors import TfoptError
from tfopt.modes import MODES
from tfopt.recipe.schema import STAGE_ORDER, STAGES, StageKind
from tfopt.stages import REGISTRY, implementation, spec

INTERFACE = ("unsupported_reason", "wrap_layer", "callbacks", "strip", "describe")


def test_the_registry_is_keyed_by_the_enum_in_the_run_order():
    assert tuple(REGISTRY) == tuple(StageKind) and tuple(k.value for k in REGISTRY) == STAGE_ORDER
    for kind, row in REGISTRY.items():
        assert row.config is STAGES[kind.value]
        assert all(callable(getattr(implementation(kind), name)) for name in INTERFACE), kind


def test_each_stage_is_measured_in_its_mode():
    assert spec("prune").measure_mode is MODES["none"] and spec("qat").measure_mode is MODES["int8"]
    assert spec("qat").wraps_weightless and not spec("prune").wraps_weightless


def test_an_unknown_stage_lists_the_known_ones():
    with pytest.raises(TfoptError, match=r"^unknown stage 'slim2': expected one of prune, cluster, qat$"):
        spec("slim2")
