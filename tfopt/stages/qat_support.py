"""Which layers QAT can quantize, decided by TF-MOT itself; and QAT that also covers what TF-MOT refuses.

``probe_qat(model, scheme)`` runs TF-MOT's real ``quantize_apply`` (its layout transforms
included: Conv/Depthwise/Dense + BatchNormalization [+ ReLU] patterns, SeparableConv split,
Concat handling) on a model where every layer is annotated, and collects every layer TF-MOT
refuses — in one pass where it can:

* the scheme's quantize registry is wrapped (``_RecordingRegistry``): a layer the registry does
  not support, or whose config cannot be made or fails its checks (an activation TF-MOT's
  ``QuantizeAwareActivation`` rejects), is recorded and gets a pass-through config, so
  ``quantize_apply`` carries on to the next layer instead of stopping at the first;
* any other failure (layout transform, wrapper build) is mapped back to its layer through the
  traceback (``_failing_layer``); that layer is annotated pass-through and the probe retries.

``apply_qat(model, scheme)`` probes, gives the refused layers tfopt's own QuantizeConfigs
(``qat_configs.config_for``) where the converter handles them, pass-through for the rest when
``skip_unsupported``, else raises ``QatUnsupportedError`` naming every layer with class and reason.

Layer names: TF-MOT's transforms create layers with auto-generated names (``conv2d_3``,
``depthwise_conv2d``, ``quantize_layer``).  A model whose layers already carry such names — every
model loaded from a file, Keras-2.0 .h5 files with ``conv2d_1``... above all — collides with them,
and the rebuilt graph is silently wrong ("Inputs have incompatible shapes").
``reserved_layer_names(model)`` advances tf_keras' name counters past every name in the model, so
new layers never collide and no layer has to be renamed (output names survive).
"""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass, field
from typing import Any, Iterator

from .. import _tf

from ..errors import UnsupportedLayerError
from . import qat_configs, qat_prepare

SCHEMES = ("qat", "pqat", "cqat", "pcqat")
_NAME = re.compile(r"^(.*?)(?:_(\d+))?$")


class QatError(UnsupportedLayerError):
    """QAT cannot be applied (a failure that could not be tied to a layer)."""


class QatUnsupportedError(QatError):
    """Layers neither TF-MOT nor tfopt can quantize; ``refusals`` names them."""

    def __init__(self, message: str, refusals: list["Refusal"], hint: str | None = None):
        super().__init__(message, hint)
        self.refusals = refusals

    def __reduce__(self):
        return (type(self), (self.message, self.refusals, self.hint))


@dataclass(frozen=True)
class Refusal:
    name: str
    cls: str
    reason: str


@dataclass
class QatInfo:
    """What ``apply_qat`` did: the scheme, layers on tfopt's configs, layers left float (skipped)."""

    scheme: str
    tfmot_refusals: list[Refusal] = field(default_factory=list)
    tfopt_configs: dict[str, dict] = field(default_factory=dict)  # name -> {class, config, why}
    skipped: list[Refusal] = field(default_factory=list)
    probe_attempts: int = 0
    prepared: list[dict] = field(default_factory=list)  # rewrites before QAT (qat_prepare): {layer, change}

    def to_dict(self) -> dict:
        return {"scheme": self.scheme, "tfopt_configs": self.tfopt_configs,
                "tfmot_refused": [vars(r) for r in self.tfmot_refusals],
                "skipped_layers": [vars(r) for r in self.skipped], "prepared": self.prepared}


def make_scheme(name: str):
    """TF-MOT's QuantizeScheme for 'qat', 'pqat' (after pruning), 'cqat', 'pcqat' (after clustering)."""
    tfmot = _tf.tfmot()
    combine = tfmot.experimental.combine
    if name == "qat":
        return tfmot.quantization.keras.default_8bit.Default8BitQuantizeScheme()
    if name == "pqat":
        return combine.Default8BitPrunePreserveQuantizeScheme()
    if name in ("cqat", "pcqat"):
        return combine.Default8BitClusterPreserveQuantizeScheme(preserve_sparsity=name == "pcqat")
    raise ValueError(f"unknown QAT scheme {name!r}: expected one of {', '.join(SCHEMES)}")


def scheme_for(previous: tuple[str, ...]) -> str:
    """The scheme that keeps what earlier stages made (sparsity, clusters)."""
    if "cluster" in previous:
        return "pcqat" if "prune" in previous else "cqat"
    return "pqat" if "prune" in previous else "qat"


# ------------------------------------------------------------------ layer names


@contextlib.contextmanager
def reserved_layer_names(model) -> Iterator[None]:
    """Advance tf_keras' auto-name counters past every layer name of ``model`` (no renaming needed)."""
    _tf.tf_keras()
    from tf_keras.src import backend

    uids = backend.get_default_graph_uid_map()
    for name in _all_layer_names(model):
        base, number = _NAME.match(name).groups()
        for prefix, n in ((name, 0), (base, int(number) if number else 0)):
            key = ("", prefix)
            uids[key] = max(uids[key], n + 1)
    yield


def _all_layer_names(model) -> list[str]:
    names = []
    for layer in model.layers:
        names.append(layer.name)
        inner = getattr(layer, "layer", None)
        if inner is not None:
            names.append(inner.name)
    return names


def name_clashes(model, prefix: str = "quant_") -> list[str]:
    """Layers whose QAT wrapper name (``quant_<name>``) is another layer's name."""
    names = {layer.name for layer in model.layers}
    return sorted(n for n in names if prefix + n in names)


# ------------------------------------------------------------------ probing


def probe_qat(model, scheme: str = "qat", max_attempts: int | None = None, prepare: bool = True) -> list[Refusal]:
    """Every layer TF-MOT's annotate + apply (with ``scheme``) refuses, in model order.

    ``prepare``: probe the model as ``apply_qat`` quantizes it (single-tensor TFOpLambdas rebuilt as
    TfoptOpLayer, see qat_prepare); False probes the raw model (TF-MOT refuses every TFOpLambda)."""
    if prepare:
        model, _ = qat_prepare.prepare(model)
    refusals, _, _ = _probe(model, scheme, {}, max_attempts)
    return refusals


def _probe(model, scheme: str, configs: dict[str, Any], max_attempts: int | None, leave: frozenset[str] = frozenset()):
    """Run quantize_apply until it succeeds; returns (refusals, qat_model, attempts).

    Registry refusals are answered with a pass-through config (one run finds them all); a layer
    any other failure is traced to is left out of the annotation (float) and the run repeated."""
    refusals: dict[str, Refusal] = {}
    leave = set(leave)
    limit = max_attempts or len(model.layers) + 2
    for attempt in range(1, limit + 1):
        registry = _RecordingRegistry(make_scheme(scheme).get_quantize_registry(), leave)
        try:
            qat_model = quantize(model, _RecordingScheme(make_scheme(scheme), registry), configs, leave)
        except Exception as e:  # noqa: BLE001 - TF-MOT raises ValueError, RuntimeError, TypeError, AttributeError ...
            found = _failing_layer(e, model)
            if found is None or found.name in leave:
                raise QatError(f"QAT ({scheme}) failed in TF-MOT and the failure names no layer: "
                               f"{error_line(e)}") from e
            refusals.setdefault(found.name, found)
            leave.add(found.name)
            continue
        for r in registry.refused.values():
            refusals.setdefault(r.name, r)
        order = {layer.name: i for i, layer in enumerate(model.layers)}
        return sorted(refusals.values(), key=lambda r: order.get(r.name, len(order))), qat_model, attempt
    raise QatError(f"QAT ({scheme}): gave up after {limit} attempts; refused so far: "
                   + ", ".join(r.name for r in refusals.values()))


def quantize(model, scheme, configs: dict[str, Any], leave: set[str] | frozenset[str] = frozenset()):
    """TF-MOT annotate + quantize_apply, names reserved: every layer but ``leave`` annotated,
    with ``configs[name]`` where given (else TF-MOT's registry decides)."""
    q = _tf.tfmot().quantization.keras
    K = _tf.tf_keras()

    def annotate(layer):
        if type(layer).__name__ == "InputLayer" or layer.name in leave:
            return layer
        if isinstance(layer, K.Model):
            raise ValueError(f"layer '{layer.name}' is a nested model")
        return q.quantize_annotate_layer(layer, configs.get(layer.name))

    with qat_configs.qat_scope(), _tf.trusted_deserialization(), ordered_transform_inputs():
        annotated = K.models.clone_model(model, clone_function=annotate)
        with reserved_layer_names(annotated):
            return q.quantize_apply(annotated, scheme)


@contextlib.contextmanager
def ordered_transform_inputs() -> Iterator[None]:
    """Fix TF-MOT's ModelTransformer reordering a matched layer's inputs (model-optimization#1179, #1061).

    ``ModelTransformer._get_layers(names)`` returns layers in config order, not in ``names`` order; the
    Concat transforms then rewrite the Concatenate's inputs in that order, so ``concat([a, b])`` silently
    becomes ``concat([b, a])`` whenever an earlier transform moved ``a`` (Conv+BN+ReLU before a concat).
    Inside this context the inputs keep their order (duplicates once, as before)."""
    _tf.tfmot()
    from tensorflow_model_optimization.python.core.quantization.keras.graph_transformations import (
        model_transformer as mt,
    )

    original = mt.ModelTransformer._get_layers

    def in_order(self, layer_names):
        by_name = {layer["config"]["name"]: layer for layer in self._config["layers"]}
        return [by_name[n] for n in dict.fromkeys(layer_names) if n in by_name]

    mt.ModelTransformer._get_layers = in_order
    try:
        yield
    finally:
        mt.ModelTransformer._get_layers = original


class _RecordingScheme:
    """A QuantizeScheme: the real layout transforms, the real registry behind a recorder."""

    def __init__(self, scheme, registry: "_RecordingRegistry"):
        self._scheme, self._registry = scheme, registry

    def get_layout_transformer(self):
        return self._scheme.get_layout_transformer()

    def get_quantize_registry(self):
        return self._registry


class _RecordingRegistry:
    """Delegates to TF-MOT's registry; records refusals and answers them with a pass-through config."""

    def __init__(self, inner, leave: set[str]):
        self.inner = inner
        self.leave = leave
        self.refused: dict[str, Refusal] = {}

    def supports(self, layer) -> bool:
        if layer.name in self.leave:
            return False
        try:
            ok = bool(self.inner.supports(layer))
        except Exception as e:  # noqa: BLE001
            ok, why = False, error_line(e)
        else:
            why = "not in TF-MOT's 8-bit quantize registry (and no layout transform covers it)"
        if not ok:
            self._refuse(layer, why)
        return True

    def get_quantize_config(self, layer):
        if layer.name in self.refused:
            return qat_configs.make(qat_configs.PASS_THROUGH)
        try:
            config = self.inner.get_quantize_config(layer)
            check_config(config, layer)
        except Exception as e:  # noqa: BLE001
            self._refuse(layer, error_line(e))
            return qat_configs.make(qat_configs.PASS_THROUGH)
        return config

    def _refuse(self, layer, why: str) -> None:
        self.refused.setdefault(layer.name, Refusal(layer.name, type(layer).__name__, why))


def check_config(config, layer) -> None:
    """Raise what the QuantizeWrapper would raise when building ``layer`` with ``config``."""
    from tensorflow_model_optimization.python.core.quantization.keras.quantize_aware_activation import (
        QuantizeAwareActivation as QAA,
    )

    config.get_weights_and_quantizers(layer)
    config.get_output_quantizers(layer)
    ok = QAA._PRE_QUANT_ACTIVATIONS | QAA._POST_QUANT_ACTIVATIONS | QAA._NO_QUANTIZE_ACTIVATIONS
    for activation, _ in config.get_activations_and_quantizers(layer):
        name = qat_configs.activation_name(activation)
        if name not in ok:
            raise ValueError(f"activation {name!r} is not one TF-MOT's QuantizeAwareActivation supports "
                             f"({', '.join(sorted(ok - {'NoOpActivation'}))})")


def _failing_layer(error: BaseException, model) -> Refusal | None:
    """The model layer a TF-MOT failure happened in (innermost frame that names one)."""
    names = {layer.name: layer for layer in model.layers}
    tb, found = error.__traceback__, None
    while tb is not None:
        name = _frame_layer_name(tb.tb_frame.f_locals)
        if name in names:
            found = name
        tb = tb.tb_next
    if found is None:  # from the message: quantize_apply's "Layer <name>:<class> is not supported",
        # Keras' 'Exception encountered when calling layer "<name>"' (its traceback filter drops frames)
        for pattern in (r"Layer (\S+?):<class", r'calling layer "([^"]+)"', r"calling layer '([^']+)'"):
            m = re.search(pattern, str(error))
            if m and m.group(1) in names:
                found = m.group(1)
                break
    if found is None:
        return None
    return Refusal(found, type(names[found]).__name__, error_line(error))


def _frame_layer_name(local: dict) -> str | None:
    me = local.get("self")
    inner = getattr(me, "layer", None)
    if inner is not None and hasattr(inner, "name") and type(me).__name__.startswith("Quantize"):
        return inner.name  # QuantizeWrapper / QuantizeAnnotate building its layer
    match = local.get("match_layer")
    if match is not None and hasattr(match, "layer"):  # a layout transform's replacement()
        return match.layer.get("config", {}).get("name")
    layer = local.get("layer")
    return getattr(layer, "name", None) if hasattr(layer, "get_config") else None


def error_line(e: BaseException) -> str:
    """The informative line of a (possibly multi-line) TensorFlow / TF-MOT error."""
    lines = [ln.strip() for ln in str(e).strip().splitlines() if ln.strip()]
    text = re.sub(r"<function (\w+) at 0x[0-9a-f]+>", r"'\1'", lines[0] if lines else "")
    return f"{type(e).__name__}: {text}"[:300]


# ------------------------------------------------------------------ applying


def apply_qat(model, scheme: str = "qat", *, skip_unsupported: bool = False,
              own_configs: bool = True) -> tuple[Any, QatInfo]:
    """The QAT model of ``model`` (tf_keras) and what was done: TF-MOT where it can, tfopt's configs beyond.

    Raises ``QatUnsupportedError`` naming the layers neither can quantize, unless ``skip_unsupported``
    (then they stay float: not annotated, not wrapped)."""
    clashes = name_clashes(model)
    if clashes:
        raise QatError("QAT names its wrappers quant_<layer>, which clashes with existing layers: "
                       + ", ".join(f"'{n}' / 'quant_{n}'" for n in clashes))
    model, replaced = qat_prepare.prepare(model)
    refusals, qat_model, attempts = _probe(model, scheme, {}, None)
    info = QatInfo(scheme, tfmot_refusals=refusals, probe_attempts=attempts, prepared=replaced)
    if not refusals:
        return qat_model, info
    by_name = {layer.name: layer for layer in model.layers}
    configs, still = {}, []
    for r in refusals:
        layer = by_name.get(r.name)
        own = qat_configs.config_for(layer) if own_configs and layer is not None else None
        if own is None:
            why = qat_configs.refusal_reason(layer) if layer is not None else "a layer TF-MOT's layout transform created"
            still.append(Refusal(r.name, r.cls, f"{r.reason}; {why}"))
            continue
        configs[r.name] = own[0]
        info.tfopt_configs[r.name] = {"class": r.cls, "config": own[1], "why": own[2], "tfmot": r.reason}
    if still and not skip_unsupported:
        raise QatUnsupportedError(
            f"QAT ({scheme}): {len(still)} layer(s) of model '{model.name}' cannot be quantized: "
            + "; ".join(f"'{r.name}' ({r.cls}: {r.reason})" for r in still), still)
    info.skipped = still
    return _apply_with(model, scheme, configs, {r.name for r in still}, info), info


def _apply_with(model, scheme: str, configs: dict[str, Any], leave: set[str], info: QatInfo):
    """The final quantize_apply; the registry stays wrapped so that ``leave`` layers stay float even where
    TF-MOT would add an output quantizer to an un-annotated layer feeding an annotated one."""
    registry = _RecordingRegistry(make_scheme(scheme).get_quantize_registry(), leave)
    try:
        qat_model = quantize(model, _RecordingScheme(make_scheme(scheme), registry), configs, leave)
    except Exception as e:  # noqa: BLE001
        found = _failing_layer(e, model)
        where = f" in layer '{found.name}' ({found.cls})" if found else ""
        config = info.tfopt_configs.get(found.name) if found else None
        extra = f" with tfopt's {config['config']} config" if config else ""
        raise QatError(f"QAT ({scheme}) failed{where}{extra}: {error_line(e)}") from e
    if registry.refused:  # cannot happen unless a tfopt config changed what TF-MOT decides elsewhere
        raise QatError(f"QAT ({scheme}): TF-MOT refused " + ", ".join(
            f"'{r.name}' ({r.cls}: {r.reason})" for r in registry.refused.values()))
    return qat_model


def support_table(model, scheme: str = "qat") -> dict[str, dict]:
    """For ``tfopt inspect``: per layer name, {'qat': 'tfmot' | 'tfopt' | 'unsupported', 'reason': ...}."""
    model, _ = qat_prepare.prepare(model)
    refusals = {r.name: r for r in probe_qat(model, scheme)}
    out = {}
    for layer in model.layers:
        r = refusals.get(layer.name)
        if r is None:
            out[layer.name] = {"qat": "tfmot"}
            continue
        own = qat_configs.config_for(layer)
        out[layer.name] = ({"qat": "tfopt", "config": own[1], "reason": own[2], "tfmot": r.reason} if own else
                           {"qat": "unsupported", "reason": f"{r.reason}; {qat_configs.refusal_reason(layer)}"})
    return out
