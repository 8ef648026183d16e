"""The slim stage: structured channel pruning that rebuilds a narrower Keras model (``--slim R``).

Weight pruning only zeroes weights; slimming removes the least important output channels of Conv1D/2D/3D,
SeparableConv1D/2D and Dense layers and rebuilds the model with fewer filters/units, so the .tflite really
is smaller (and, on models big enough not to be dominated by per-op overhead, faster).  Which channels go
is decided in ``slim_channels.py``; here the config is edited (filters/units, Reshape targets, every
``build_config`` dropped), rebuilt, and given the kept weights.  tf_keras and Keras 3 Functional/Sequential
models (``kgraph.py``); the inputs and outputs never change shape.  No training here: the ``distill`` stage
(run by default after ``--slim``) or a later stage trains the narrower model.

    new_model, section = slim(model, 0.5, {"conv1": 0.25})
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np

from ..errors import SlimError, UnsupportedLayerError
from ..kgraph import Graph, from_config, read_graph
from ..macs import count_macs
from ..recipe.schema import SlimStage
from ..report import LeftAlone, SlimSection, StageResult
from .slim_channels import CHANNELWISE, PRODUCERS, Walk, channel_table, decide
from .slim_channels import importance as channel_importance

NO_TRAINING = "nothing (slimming does not train)"


@dataclass
class SlimPlan:
    """Which channels every layer keeps: kernel rows read (``inputs``) and channels made (``outputs``)."""

    inputs: dict[str, np.ndarray]  # layer -> bool mask over its input channels (producers, channel-wise, Reshape)
    outputs: dict[str, np.ndarray]  # producer -> bool mask over its filters / units
    report: SlimSection
    graph: Graph


# ------------------------------------------------------------------ the stage


def replace(model, stage: SlimStage, previous: tuple[str, ...], ctx):
    """(the narrower model, its StageResult with the slim section)."""
    ctx.progress(f"slim: removing {stage.ratio:.0%} of the channels")
    new_model, section = slim(model, stage.ratio, dict(stage.layers), round_to=stage.round_to,
                              importance=stage.importance)
    result = StageResult(kind=stage.kind, settings=describe(stage, previous), target=NO_TRAINING, loss_function="",
                         train_samples=0, batch_size=ctx.train.batch_size, learning_rate=0.0, epochs=0, steps=0,
                         skipped_layers=[_skipped(x) for x in section.left_alone + section.unsupported],
                         slim=section)
    return new_model, result


def describe(stage: SlimStage, previous: tuple[str, ...]) -> dict:
    out = {"ratio": stage.ratio, "round_to": stage.round_to, "importance": stage.importance}
    if stage.layers:
        out["layers"] = dict(stage.layers)
    return out


def _skipped(x: LeftAlone):
    from ..report import SkippedLayer

    return SkippedLayer(x.name, x.cls, f"slim: {x.reason}")


# ------------------------------------------------------------------ public API


def slim(model, ratio: float, per_layer: dict[str, float] | None = None, *, round_to: int = 1,
         importance: str = "auto", custom_objects: dict | None = None):
    """``(narrower model, SlimSection)``: ``model`` with ``ratio`` of the channels of each group removed."""
    plan = plan_slim(model, ratio, per_layer, round_to=round_to, importance=importance,
                     custom_objects=custom_objects)
    new_model = apply_plan(model, plan, custom_objects)
    report = plan.report
    report.params_before, report.params_after = int(model.count_params()), int(new_model.count_params())
    report.macs_before = sum(count_macs(plan.graph).values())
    report.macs_after = sum(count_macs(read_graph(new_model, custom_objects, fresh=True)).values())
    return new_model, report


def plan_slim(model, ratio: float, per_layer: dict[str, float] | None = None, *, round_to: int = 1,
              importance: str = "auto", custom_objects: dict | None = None) -> SlimPlan:
    """Decide which channels stay (nothing is rebuilt yet)."""
    per_layer = dict(per_layer or {})
    _check_ratios(ratio, per_layer, round_to, importance)
    graph = read_graph(model, custom_objects)
    walk = Walk(graph)
    walk.run()
    _check_overrides(per_layer, walk)
    report = SlimSection(ratio, per_layer, round_to, importance)
    scores = channel_importance(model, graph, walk, importance)
    keep = decide(walk, scores, ratio, per_layer, round_to, report)
    inputs = {name: keep[ids] for name, ids in walk.layer_in.items()}
    outputs = {name: keep[ids] for name, ids in walk.layer_out.items()}
    report.unsupported = [LeftAlone(n, c, r) for n, (c, r) in walk.unsupported.items()]
    report.channels = channel_table(graph, walk, keep)
    return SlimPlan(inputs, outputs, report, graph)


def apply_plan(model, plan: SlimPlan, custom_objects: dict | None = None):
    """The narrower model: the config with fewer filters/units, rebuilt, carrying the kept weights."""
    config = _slim_config(plan)
    new_model = from_config(model, config, custom_objects)
    for layer in model.layers:
        weights = layer.get_weights()
        if not weights:
            continue
        sliced = slice_weights(_class_name(layer), weights, plan.inputs.get(layer.name), plan.outputs.get(layer.name))
        try:
            new_model.get_layer(layer.name).set_weights(sliced)
        except ValueError as e:
            raise UnsupportedLayerError(f"slim: could not carry the weights of '{layer.name}' "
                            f"({_class_name(layer)}): {str(e).splitlines()[0][:200]}") from e
    return new_model


def zero_removed_inputs(model, plan: SlimPlan, custom_objects: dict | None = None):
    """A same-shape copy of ``model`` whose layers read nothing from removed channels.

    Every kernel row (Conv/Dense/pointwise) that reads a removed channel is zeroed: exactly what
    removing the channels computes, so ``apply_plan(model, plan)`` must reproduce this model's outputs.
    """
    copy_ = from_config(model, plan.graph.config, custom_objects)
    copy_.set_weights(model.get_weights())
    for name, mask in plan.inputs.items():
        layer = copy_.get_layer(name)
        cls = _class_name(layer)
        if cls not in PRODUCERS or mask.all():
            continue
        weights = layer.get_weights()
        index = 1 if cls.startswith("Separable") else 0  # the pointwise kernel reads the channels
        rows = np.repeat(mask, weights[index].shape[-2] // len(mask))
        weights[index][..., ~rows, :] = 0.0
        layer.set_weights(weights)
    return copy_


def slice_weights(cls: str, weights: list[np.ndarray], inputs: np.ndarray | None,
                  outputs: np.ndarray | None) -> list[np.ndarray]:
    """One layer's weights restricted to the kept input channels and output channels."""
    if cls in PRODUCERS:
        if cls.startswith("Separable"):
            depthwise, pointwise, *bias = weights
            rows = np.repeat(inputs, pointwise.shape[-2] // len(inputs)) if inputs is not None else None
            return [_take(depthwise, inputs, -2), _take(_take(pointwise, rows, -2), outputs, -1),
                    *[_take(b, outputs, -1) for b in bias]]
        kernel, *bias = weights
        return [_take(_take(kernel, inputs, -2), outputs, -1), *[_take(b, outputs, -1) for b in bias]]
    if cls.startswith("DepthwiseConv"):
        kernel, *bias = weights
        return [_take(kernel, inputs, -2), *[_take(b, inputs, -1) for b in bias]]
    if cls in CHANNELWISE and inputs is not None:  # BatchNormalization, PReLU: per-channel vectors on the last axis
        return [_take(w, inputs, -1) if w.shape and w.shape[-1] == len(inputs) else w for w in weights]
    return weights


def _check_ratios(ratio: float, per_layer: dict[str, float], round_to: int, importance: str) -> None:
    if not 0.0 < ratio < 1.0:
        raise SlimError(f"--slim (stages[slim].ratio): got {ratio!r}, expected 0 < R < 1 "
                        "(the fraction of channels removed)")
    bad = [f"{name}={r!r}" for name, r in per_layer.items() if not 0.0 <= r < 1.0]
    if bad:
        raise SlimError(f"--slim-layer (stages[slim].layers): got {', '.join(bad)}, expected 0 <= R < 1")
    if round_to < 1:
        raise SlimError(f"--slim-round (stages[slim].round_to): got {round_to!r}, expected an integer >= 1")
    if importance not in ("auto", "l1"):
        raise SlimError(f"stages[slim].importance: got {importance!r}, expected 'auto' or 'l1'")


def _check_overrides(per_layer: dict[str, float], walk: Walk) -> None:
    unknown = sorted(set(per_layer) - set(walk.layer_out))
    if unknown:
        slimmable = ", ".join(sorted(walk.layer_out)) or "none"
        raise SlimError(f"--slim-layer (stages[slim].layers): got {', '.join(unknown)}, expected a slimmable layer "
                        f"of this model: {slimmable}")


def _class_name(layer) -> str:
    return type(layer).__name__


def _take(array: np.ndarray, mask: np.ndarray | None, axis: int) -> np.ndarray:
    return array if mask is None else np.compress(mask, array, axis=axis)



# ------------------------------------------------------------------ rebuild


def _slim_config(plan: SlimPlan) -> dict:
    config = copy.deepcopy(plan.graph.config)
    for entry in config["layers"]:
        entry.pop("build_config", None)  # Keras 3 would build the layer for the old input shape
        cfg, cls = entry["config"], entry["class_name"]
        name = cfg.get("name")
        if cls in PRODUCERS and name in plan.outputs:
            cfg[PRODUCERS[cls]] = int(plan.outputs[name].sum())
        elif cls == "Reshape" and name in plan.inputs:
            mask, target = plan.inputs[name], list(cfg["target_shape"])
            if target[-1] != -1:  # the channels, or all the values of a flattening reshape
                target[-1] = int(mask.sum()) * (target[-1] // len(mask))
            cfg["target_shape"] = type(cfg["target_shape"])(target)
    return config
