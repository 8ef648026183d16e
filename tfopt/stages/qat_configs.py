"""tfopt's own QuantizeConfigs for layers TF-MOT refuses but the TFLite converter runs in int8.

TF-MOT's default 8-bit registry knows a fixed list of Keras layers (plus the patterns its
layout transforms rewrite: Conv/Depthwise/Dense + BatchNormalization [+ ReLU], SeparableConv
split into Depthwise + Conv).  Standard architectures contain more: a BatchNormalization that
does not follow a conv (pre-activation ResNets), preprocessing layers (Rescaling,
Normalization), activations built from ops (MobileNetV3's hard-swish as TFOpLambda add /
ReLU6 / multiply layers), Multiply (squeeze-excite), PReLU, Conv1D, Conv/Dense with a fused
activation TF-MOT's ``QuantizeAwareActivation`` rejects (relu6, elu, hard_sigmoid ...).
The converter has int8 kernels for all of them, so QAT only has to learn their output
ranges:

* ``output``          – quantize the layer's output (fake-quant, moving-average range);
                        constants inside (BN scale/offset, PReLU alpha) are quantized by the converter.
* ``pass-through``    – no fake-quant at all: ops whose int8 kernel keeps its input scale
                        (reshape, transpose, slicing, identity); the converter propagates the range.
* ``weights+output``  – per-channel symmetric kernel quantization like TF-MOT's Conv config,
                        activation left as it is, output quantized (Conv1D; Conv/Dense with an
                        activation TF-MOT's activation wrapper rejects).

``config_for(layer)`` returns ``(QuantizeConfig, kind, why)`` or ``None`` (tfopt has no config:
the layer stays refused, ``refusal_reason`` says why).  The classes are defined lazily (TF-MOT
must be imported after ``TF_USE_LEGACY_KERAS=1``); ``custom_objects()`` is what ``quantize_scope``
needs to deserialize models that carry them.
"""

from __future__ import annotations

import functools
from typing import Any

from .. import _tf

OUTPUT = "output"
PASS_THROUGH = "pass-through"
WEIGHTS_AND_OUTPUT = "weights+output"

# TFOpLambda functions (the ``function`` of the layer's config) by how the converter quantizes them.
_RANGE_CHANGING_OPS = frozenset({
    "__operators__.add", "math.add", "math.add_n", "math.subtract", "math.multiply", "math.truediv",
    "math.divide", "math.negative", "math.maximum", "math.minimum", "clip_by_value", "nn.relu", "nn.relu6",
    "nn.leaky_relu", "nn.elu", "math.sigmoid", "nn.sigmoid", "math.tanh", "nn.tanh", "nn.swish", "nn.silu",
    "nn.gelu", "math.square", "math.sqrt", "math.rsqrt", "math.exp", "math.log", "math.abs", "math.reduce_mean",
    "reduce_mean", "math.reduce_max", "math.reduce_sum", "nn.softmax", "math.softplus", "image.resize",
    "compat.v1.image.resize", "nn.avg_pool2d", "nn.max_pool2d", "nn.depth_to_space", "nn.space_to_depth",
})
_SCALE_KEEPING_OPS = frozenset({
    "reshape", "compat.v1.reshape", "transpose", "compat.v1.transpose", "squeeze", "compat.v1.squeeze",
    "expand_dims", "compat.v1.expand_dims", "identity", "__operators__.getitem", "split", "slice",
    "strided_slice", "concat", "compat.v1.concat", "stack", "pad", "compat.v1.pad", "tile", "gather",
})
# Activations TF-MOT's QuantizeAwareActivation / Default8BitActivationQuantizeConfig take.
_TFMOT_ACTIVATIONS = frozenset({"linear", "relu", "swish", "gelu", "softmax", "sigmoid", "tanh", "NoOpActivation"})
_OUTPUT_LAYERS = {
    "BatchNormalization": "a BatchNormalization that does not follow a Conv/Depthwise/Dense: the converter "
                          "lowers it to int8 MUL+ADD (or folds it into a neighbour); QAT learns its output range",
    "SyncBatchNormalization": "as BatchNormalization",
    "Rescaling": "preprocessing inside the model: int8 MUL+ADD in TFLite; QAT learns its output range",
    "Normalization": "preprocessing inside the model: int8 SUB+MUL in TFLite; QAT learns its output range",
    "Multiply": "element-wise product (squeeze-excite, hard-swish): int8 MUL in TFLite",
    "Subtract": "int8 SUB in TFLite", "Maximum": "int8 MAXIMUM in TFLite", "Minimum": "int8 MINIMUM in TFLite",
    "Average": "int8 ADD+MUL in TFLite",
    "PReLU": "int8 PRELU in TFLite (alpha quantized by the converter)",
    "LayerNormalization": "int8 MEAN/SQUARED_DIFFERENCE/RSQRT/MUL/ADD in TFLite (inner ranges calibrated)",
}
# Activations (Activation layers, or fused into Conv/Dense) the converter turns into int8 ops after QAT,
# measured with a full-int8 conversion (exp/e13.py).  'elu' is not: the converter keeps ELU in float
# (DEQUANTIZE -> ELU -> QUANTIZE) even with TFLITE_BUILTINS_INT8 only.
_INT8_ACTIVATIONS = frozenset({"relu6", "hard_sigmoid", "selu", "softplus", "softsign", "exponential", "mish",
                               "leaky_relu", "silu", "swish", "gelu", "relu", "linear", "sigmoid", "tanh",
                               "softmax", "hard_swish", "hard_silu"})
_PASS_THROUGH_LAYERS = {
    "RepeatVector": "TILE keeps the input scale", "Cropping2D": "slicing keeps the input scale",
    "CenterCrop": "slicing keeps the input scale", "GlobalMaxPooling2D": "max keeps the input scale",
}


@functools.cache
def config_classes() -> dict[str, type]:
    """The QuantizeConfig classes (defined on first use, after TF-MOT is importable)."""
    tfmot = _tf.tfmot()
    qk = tfmot.quantization.keras
    from tensorflow_model_optimization.python.core.quantization.keras.default_8bit import default_8bit_quantizers

    def activation_quantizer():
        return qk.quantizers.MovingAverageQuantizer(num_bits=8, per_axis=False, symmetric=False, narrow_range=False)

    class TfoptOutputQuantizeConfig(qk.QuantizeConfig):
        """Quantize the layer's output only (weights, if any, are left to the converter)."""

        def get_weights_and_quantizers(self, layer):
            return []

        def get_activations_and_quantizers(self, layer):
            return []

        def set_quantize_weights(self, layer, quantize_weights):
            pass

        def set_quantize_activations(self, layer, quantize_activations):
            pass

        def get_output_quantizers(self, layer):
            return [activation_quantizer()]

        def get_config(self):
            return {}

    class TfoptPassThroughQuantizeConfig(TfoptOutputQuantizeConfig):
        """No fake-quant: the converter propagates the input's scale through the op."""

        def get_output_quantizers(self, layer):
            return []

    class TfoptWeightsOutputQuantizeConfig(TfoptOutputQuantizeConfig):
        """Per-channel symmetric kernel (like TF-MOT's Conv config) + output; the activation is untouched."""

        def __init__(self, weight_attrs=("kernel",), per_axis: bool = True):
            self.weight_attrs = list(weight_attrs)
            self.per_axis = per_axis

        def _quantizer(self):
            if self.per_axis:
                return default_8bit_quantizers.Default8BitConvWeightsQuantizer()
            return qk.quantizers.LastValueQuantizer(num_bits=8, per_axis=False, symmetric=True, narrow_range=True)

        def get_weights_and_quantizers(self, layer):
            return [(getattr(layer, a), self._quantizer()) for a in self.weight_attrs]

        def set_quantize_weights(self, layer, quantize_weights):
            for attr, weight in zip(self.weight_attrs, quantize_weights):
                setattr(layer, attr, weight)

        def get_config(self):
            return {"weight_attrs": self.weight_attrs, "per_axis": self.per_axis}

    return {c.__name__: c for c in (TfoptOutputQuantizeConfig, TfoptPassThroughQuantizeConfig,
                                     TfoptWeightsOutputQuantizeConfig)}


def custom_objects() -> dict[str, type]:
    """What ``quantize_scope`` / ``clone_model`` need to rebuild models carrying tfopt's configs."""
    return dict(config_classes())


def qat_scope():
    """``quantize_scope`` plus tfopt's configs and op layer: for cloning / loading QAT models made here."""
    from . import qat_prepare

    return _tf.tfmot().quantization.keras.quantize_scope({**custom_objects(), **qat_prepare.custom_objects()})


def make(kind: str, **kwargs) -> Any:
    classes = config_classes()
    cls = {OUTPUT: "TfoptOutputQuantizeConfig", PASS_THROUGH: "TfoptPassThroughQuantizeConfig",
           WEIGHTS_AND_OUTPUT: "TfoptWeightsOutputQuantizeConfig"}[kind]
    return classes[cls](**kwargs)


def tfop_function(layer) -> str | None:
    """``math.multiply`` for a TFOpLambda (or tfopt's TfoptOpLayer) wrapping ``tf.math.multiply``; else None."""
    if type(layer).__name__ not in ("TFOpLambda", "TfoptOpLayer"):
        return None
    return str(layer.get_config().get("function", ""))


def activation_name(activation) -> str:
    return getattr(activation, "__name__", type(activation).__name__)


def config_for(layer) -> tuple[Any, str, str] | None:
    """tfopt's (QuantizeConfig, kind, why) for a layer TF-MOT refuses; None when tfopt has none."""
    name = type(layer).__name__
    if name in _OUTPUT_LAYERS:
        return make(OUTPUT), OUTPUT, _OUTPUT_LAYERS[name]
    if name in _PASS_THROUGH_LAYERS:
        return make(PASS_THROUGH), PASS_THROUGH, _PASS_THROUGH_LAYERS[name]
    function = tfop_function(layer)
    if name == "TFOpLambda":  # TF-MOT cannot wrap it at all (qat_prepare replaces the ones it can)
        return None
    if function is not None:
        if function in _RANGE_CHANGING_OPS:
            return make(OUTPUT), OUTPUT, f"tf.{function} as a layer: an int8 TFLite op; QAT learns its output range"
        if function in _SCALE_KEEPING_OPS:
            return make(PASS_THROUGH), PASS_THROUGH, f"tf.{function} as a layer: keeps its input's int8 scale"
        return None
    if name == "Activation":
        act = activation_name(layer.activation)
        if act in _INT8_ACTIVATIONS and act not in _TFMOT_ACTIVATIONS:
            return make(OUTPUT), OUTPUT, f"activation {act!r}: int8 TFLite op(s); QAT learns its output range"
        return None
    return _weighted_config(layer, name)


def _weighted_config(layer, name: str) -> tuple[Any, str, str] | None:
    if name in ("Conv1D", "Conv2D", "Conv2DTranspose", "DepthwiseConv2D", "Dense"):
        if activation_name(getattr(layer, "activation", None)) not in _INT8_ACTIVATIONS:
            return None
        attr = "depthwise_kernel" if name == "DepthwiseConv2D" else "kernel"
        # per-channel like TF-MOT's Conv config for 4-D kernels; TF-MOT's LastValueQuantize cannot reduce
        # a 3-D (Conv1D) kernel per channel, so Conv1D is per-tensor (a valid int8 CONV_2D as well)
        per_axis = name == "Conv2D"
        act = activation_name(getattr(layer, "activation", None))
        why = ("Conv1D: int8 CONV_2D in TFLite (after EXPAND_DIMS)" if name == "Conv1D"
               else f"{name} with activation {act!r} (TF-MOT's activation wrapper refuses it): int8 kernel + "
                    "the activation as its own int8 op")
        return make(WEIGHTS_AND_OUTPUT, weight_attrs=(attr,), per_axis=per_axis), WEIGHTS_AND_OUTPUT, why
    return None


def refusal_reason(layer) -> str:
    """Why neither TF-MOT nor tfopt can quantize ``layer`` (for layers ``config_for`` returns None for)."""
    name = type(layer).__name__
    if name == "Lambda":
        return "a Lambda layer runs arbitrary Python: neither TF-MOT nor tfopt can tell which int8 ops it becomes"
    if name == "TFOpLambda":
        return (f"tf.{tfop_function(layer)} with several tensor inputs as a layer: TF-MOT cannot wrap TFOpLambda "
                "layers (model-optimization#867); use the Keras layer (Concatenate, Multiply, Add ...)")
    if name == "TfoptOpLayer":
        return f"tf.{tfop_function(layer)} as a layer: tfopt does not know its int8 TFLite kernel"
    act = activation_name(getattr(layer, "activation", None)) if hasattr(layer, "activation") else None
    if act == "elu" or name == "ELU":
        return "the TFLite converter keeps ELU in float (DEQUANTIZE -> ELU -> QUANTIZE) even in int8-only mode"
    if act is not None and act not in _INT8_ACTIVATIONS:
        return f"activation {act!r}: tfopt has not verified that it converts to int8 TFLite ops"
    if hasattr(layer, "layers"):
        return "a nested model: TF-MOT quantizes flat models only (rebuild it without the inner Model)"
    if name in ("LSTM", "GRU", "SimpleRNN", "RNN", "Bidirectional", "TimeDistributed"):
        return "recurrent layers: TF-MOT's 8-bit scheme does not support them"
    return f"{name} is not in TF-MOT's 8-bit registry and tfopt has no QuantizeConfig for it"
