"""The stage registry: one row per stage, keyed by StageKind, each row pointing at a complete implementation."""

from __future__ import annotations

import pytest

from tfopt.errors import TfoptError
from tfopt.recipe.schema import STAGE_ORDER, STAGES, StageKind
from tfopt.stages import REGISTRY, implementation, spec

WRAP = ("unsupported_reason", "wrap_layer", "callbacks", "strip", "describe")  # wraps layers it supports
TRANSFORM = ("transform", "callbacks", "strip", "describe")  # rebuilds the whole model (QAT)
REPLACE = ("replace", "describe")  # makes a new model and its own result (slim, distill)


def test_the_registry_is_keyed_by_the_enum_in_the_run_order():
    assert tuple(REGISTRY) == tuple(StageKind) and tuple(k.value for k in REGISTRY) == STAGE_ORDER
    for kind, row in REGISTRY.items():
        assert row.config is STAGES[kind.value]
        impl = implementation(kind)
        interface = REPLACE if hasattr(impl, "replace") else TRANSFORM if hasattr(impl, "transform") else WRAP
        assert all(callable(getattr(impl, name)) for name in interface), kind
    assert hasattr(implementation("qat"), "transform")
    assert hasattr(implementation("slim"), "replace") and hasattr(implementation("distill"), "replace")
    assert STAGE_ORDER == ("slim", "distill", "prune", "cluster", "qat")


def test_quantization_wraps_layers_without_weights_too():
    assert spec("qat").wraps_weightless and not spec("prune").wraps_weightless and not spec("cluster").wraps_weightless


def test_an_unknown_stage_lists_the_known_ones():
    with pytest.raises(TfoptError, match=r"^unknown stage 'slim2': expected one of slim, distill, prune, cluster, qat$"):
        spec("slim2")
