"""Keras side of ``tfopt inspect``: layers, weights, and which TF-MOT stage supports each layer.

Support comes from TF-MOT's own registries (``PruneRegistry``, ``Default8BitQuantizeRegistry``,
``ClusteringRegistry``) plus its marker interfaces (``PrunableLayer``, ``ClusterableLayer``,
``QuantizeConfig``-carrying layers), so the answer is the one ``prune_low_magnitude`` /
``quantize_model`` / ``cluster_weights`` will give.  Keras 3 layers are judged on the tf_keras
model that the Keras 3 → tf_keras bridge (``stages/bridge.py``) rebuilds — what the stages wrap — or, if
the bridge fails, on a tf_keras layer of the same class.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np

from .. import _tf
from ..errors import ModelLoadError, TfoptError
from ..files import size_of
from ..models import LoadedModel, load_model
from ..tflite.reader import array_stats
from .result import InspectResult, LayerRow, summarize

STAGES = ("prune", "quantize", "cluster")
INT8_CHECK_SAMPLES = 16


def stage_support(layer, flavour: str, registries: dict[str, Callable], bridged=None) -> dict[str, bool | None]:
    """Whether each TF-MOT stage can wrap ``layer`` (None: cannot tell).

    ``bridged``: the tf_keras layer the Keras 3 -> tf_keras bridge rebuilt for a Keras 3 ``layer``."""
    if flavour == "tf_keras":
        probe = layer
    elif type(layer).__name__ == "InputLayer":
        return {s: True for s in STAGES}
    else:
        probe = bridged if bridged is not None else _tf_keras_stand_in(layer)
    if probe is None:
        return {s: None for s in STAGES}
    out = {}
    for stage, supports in registries.items():
        try:
            out[stage] = bool(supports(probe))
        except Exception:  # noqa: BLE001 - a stand-in without state (e.g. an RNN cell) cannot be judged
            out[stage] = None
    return out


def _tf_keras_stand_in(layer):
    """A built tf_keras layer of the same class as a Keras 3 layer, for the registry lookups."""
    K = _tf.tf_keras()
    cls = getattr(K.layers, type(layer).__name__, None)
    if cls is None or type(layer).__name__ == "InputLayer":
        return None
    try:
        stand_in = cls.from_config(_portable_config(layer))
        shape = layer.input.shape
        stand_in.build(tuple(shape) if not isinstance(shape, list) else [tuple(s) for s in shape])
    except Exception:  # noqa: BLE001 - Keras 3 configs do not always load in tf_keras
        return None
    if bool(stand_in.trainable_weights) != bool(layer.trainable_weights):
        return None
    return stand_in


def _portable_config(layer) -> dict:
    """The layer's config without what differs between Keras 3 and tf_keras (irrelevant to support)."""
    drop = ("dtype", "batch_shape", "build_config", "quantization_config")
    return {k: v for k, v in layer.get_config().items() if k not in drop and not isinstance(v, dict)}


def inspect_keras(path: Path, int8_check: bool, progress: Callable[[str], None]) -> InspectResult:
    progress("loading the model")
    _tf.seed_everything(0)
    model = load_model(path)
    if model.flavour == "saved_model":
        raise ModelLoadError(f"{path} is a SavedModel without Keras metadata: inspect a Keras model or the converted .tflite")
    registries = _tf.tfmot_supports()
    bridged, notes = _bridged_layers(model)
    rows = [_layer_row(layer, model.flavour, registries, bridged.get(layer.name)) for layer in model.model.layers]
    notes += _apply_qat_verdicts(model, rows)
    support = {s: {"supported": sum(1 for r in rows if r.stages.get(s)),
                   "unsupported": [f"{r.name} ({r.kind})" for r in rows if r.stages.get(s) is False],
                   "unknown": [r.name for r in rows if r.stages.get(s) is None]} for s in STAGES}
    float_ops = None
    if int8_check:
        progress("convert int8")
        float_ops, note = _int8_float_ops(model)
        if float_ops is None:  # the check itself failed: say why (its result otherwise has its own line)
            notes.append(note)
    return InspectResult(
        path=str(path), kind="keras", format=model.format, size=size_of(path),
        inputs=[_spec(s) for s in model.inputs], outputs=[_spec(s) for s in model.outputs], layers=rows,
        total_params=int(model.model.count_params()), stage_support=support, float_ops=float_ops,
        integer_only=(not float_ops) if float_ops is not None else None, notes=notes,
    )


def _apply_qat_verdicts(model: LoadedModel, rows: list[LayerRow]) -> list[str]:
    """The "quantize" column decided as ``--qat`` decides it: TF-MOT's annotate + apply on the tf_keras model
    the stages get (layout transforms included), then tfopt's own configs (``stages.qat_support``)."""
    from ..stages.bridge import to_tf_keras
    from ..stages.qat_support import QatError, support_table

    try:
        rebuilt, _ = to_tf_keras(model, None)
        with _tf.trusted_deserialization():
            table = support_table(rebuilt)
    except (TfoptError, QatError, ValueError, TypeError, RuntimeError) as e:
        return [f"QAT support could not be probed ({str(e).splitlines()[0][:200]}); the quantize column is "
                "TF-MOT's registry, layer by layer"]
    for row in rows:
        verdict = table.get(row.name)
        if verdict is None:
            continue
        row.stages["quantize"] = verdict["qat"] != "unsupported"
        if verdict["qat"] == "tfopt":
            row.support_notes["quantize"] = f"tfopt's {verdict['config']} config: {verdict['reason']}"
        elif verdict["qat"] == "unsupported":
            row.support_notes["quantize"] = verdict["reason"]
    own = [r.name for r in rows if "quantize" in r.support_notes and r.stages.get("quantize")]
    return [f"QAT support as --qat decides it (TF-MOT's quantize_apply with its layout transforms); on tfopt's own "
            f"QuantizeConfigs: {', '.join(own)}"] if own else [
            "QAT support as --qat decides it (TF-MOT's quantize_apply with its layout transforms)"]


def _bridged_layers(model: LoadedModel) -> tuple[dict, list[str]]:
    """Keras 3: the tf_keras layers the bridge rebuilds (what the fine-tuning stages will wrap), by name."""
    if model.flavour != "keras3":
        return {}, []
    from ..stages.bridge import to_tf_keras

    try:
        rebuilt, _ = to_tf_keras(model, None)
    except TfoptError as e:
        return {}, [f"Keras 3 model: the tf_keras bridge failed ({e}); TF-MOT support judged on the tf_keras "
                    "class of the same name instead"]
    return {l.name: l for l in rebuilt.layers}, [
        "Keras 3 model: TF-MOT support judged on the tf_keras model the bridge rebuilds (what the stages wrap)"]


def _layer_row(layer, flavour: str, registries: dict, bridged=None) -> LayerRow:
    weights = [array_stats(_weight_name(w), np.asarray(w.numpy())) for w in layer.weights if np.asarray(w.numpy()).size > 1]
    sparsity, unique = summarize([w for w in weights if "kernel" in w.name] or weights)
    return LayerRow(
        name=layer.name, kind=type(layer).__name__, params=int(layer.count_params()) if layer.built else 0,
        output_shape=_output_shape(layer), sparsity=sparsity, unique_values=unique, weights=weights,
        stages=stage_support(layer, flavour, registries, bridged),
    )


def _weight_name(w) -> str:
    return getattr(w, "path", None) or w.name


def _output_shape(layer) -> str:
    try:
        shape = layer.output.shape
    except (AttributeError, ValueError, RuntimeError):
        return ""
    return "(" + ", ".join("?" if d is None else str(d) for d in shape) + ")"


def _spec(s) -> dict:
    return {"name": s.name, "shape": [None if d is None else int(d) for d in s.shape], "dtype": s.dtype,
            "quantization": None}


def _int8_float_ops(model: LoadedModel) -> tuple[list[str] | None, str]:
    """Convert to int8 with float fallback on synthetic calibration; list the ops that stayed float."""
    from ..convert import ConvertConfig, convert
    from ..data import random_calibration
    from ..modes import INT8
    from .tflite import inspect_tflite

    try:
        calibration = random_calibration(model.inputs, INT8_CHECK_SAMPLES, 0)
        result = convert(model, ConvertConfig(INT8, "float32", allow_float_fallback=True), calibration)
    except TfoptError as e:
        return None, f"int8 check: the model does not convert to int8 even with float fallback ({e})"
    found = inspect_tflite(result.data, "int8 check").float_ops or []
    if not found:
        return [], "int8 check (synthetic calibration, float fallback allowed): every op has an int8 kernel"
    return found, (f"int8 check: {len(found)} op(s) have no int8 kernel and stay float; "
                   "--quantize int8 needs --allow-float-fallback, or use --quantize dynamic")
