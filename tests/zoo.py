"""Tiny seeded tf_keras / Keras 3 architectures for the QAT tests and measurements.

Every builder takes the Keras module (``tf_keras`` or ``keras``) so the same block exists in
both; ``data()`` is a 3-class 16x16x3 image problem (a bright blob in the class's channel) the
blocks learn in one or two epochs, so float-vs-int8 top-1 agreement means something.
"""

from __future__ import annotations

import numpy as np

SHAPE = (16, 16, 3)
CLASSES = 3


def data(n: int = 600, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, CLASSES, n)
    x = rng.normal(0.5, 0.25, (n,) + SHAPE).astype(np.float32)
    for i, c in enumerate(y):
        r, q = rng.integers(2, 12, 2)
        x[i, r : r + 4, q : q + 4, c] += 2.0
    return np.clip(x, -1.0, 3.0), y.astype(np.int64)


def _head(K, x):
    x = K.layers.GlobalAveragePooling2D(name="gap")(x)
    return K.layers.Dense(CLASSES, activation="softmax", name="predictions")(x)


def conv_bn(K, x, filters, kernel, name, strides=1, act="relu"):
    x = K.layers.Conv2D(filters, kernel, strides=strides, padding="same", use_bias=False, name=f"{name}_conv")(x)
    x = K.layers.BatchNormalization(name=f"{name}_bn")(x)
    if act == "relu6":
        return K.layers.ReLU(6.0, name=f"{name}_relu6")(x)
    if act:
        return K.layers.Activation(act, name=f"{name}_{act}")(x)
    return x


def bn_model(K):
    """The issue's example: Conv2D → BN → ReLU / DepthwiseConv2D → BN → ReLU6."""
    inp = K.Input(SHAPE, name="image")
    x = K.layers.Conv2D(8, 3, use_bias=False, name="conv")(inp)
    x = K.layers.BatchNormalization(name="bn1")(x)
    x = K.layers.ReLU(name="relu")(x)
    x = K.layers.DepthwiseConv2D(3, use_bias=False, name="dw")(x)
    x = K.layers.BatchNormalization(name="bn2")(x)
    x = K.layers.ReLU(6.0, name="relu6")(x)
    return K.Model(inp, _head(K, x), name="bn_model")


def inverted_residual(K, x, expand, filters, name, stride=1):
    """MobileNetV2 block: 1x1 expand + BN + ReLU6, (ZeroPadding) 3x3 depthwise + BN + ReLU6, 1x1 project + BN, Add."""
    inp = x
    x = conv_bn(K, x, expand, 1, f"{name}_expand", act="relu6")
    if stride == 2:
        x = K.layers.ZeroPadding2D(((0, 1), (0, 1)), name=f"{name}_pad")(x)
    x = K.layers.DepthwiseConv2D(3, strides=stride, padding="same" if stride == 1 else "valid", use_bias=False,
                                 name=f"{name}_dw")(x)
    x = K.layers.BatchNormalization(name=f"{name}_dw_bn")(x)
    x = K.layers.ReLU(6.0, name=f"{name}_dw_relu6")(x)
    x = K.layers.Conv2D(filters, 1, use_bias=False, name=f"{name}_project")(x)
    x = K.layers.BatchNormalization(name=f"{name}_project_bn")(x)
    if stride == 1 and inp.shape[-1] == filters:
        x = K.layers.Add(name=f"{name}_add")([inp, x])
    return x


def mobilenetv2_block(K):
    inp = K.Input(SHAPE, name="image")
    x = conv_bn(K, inp, 8, 3, "stem", strides=2, act="relu6")
    x = inverted_residual(K, x, 24, 8, "block1")
    x = inverted_residual(K, x, 24, 12, "block2", stride=2)
    return K.Model(inp, _head(K, x), name="mobilenetv2_block")


def xception_block(K):
    """Entry-flow block: SeparableConv + BN + ReLU, SeparableConv + BN, MaxPool, strided 1x1 residual + BN, Add."""
    inp = K.Input(SHAPE, name="image")
    x = conv_bn(K, inp, 8, 3, "stem")
    residual = K.layers.Conv2D(16, 1, strides=2, padding="same", use_bias=False, name="res_conv")(x)
    residual = K.layers.BatchNormalization(name="res_bn")(residual)
    x = K.layers.SeparableConv2D(16, 3, padding="same", use_bias=False, name="sep1")(x)
    x = K.layers.BatchNormalization(name="sep1_bn")(x)
    x = K.layers.Activation("relu", name="sep1_relu")(x)
    x = K.layers.SeparableConv2D(16, 3, padding="same", use_bias=False, name="sep2")(x)
    x = K.layers.BatchNormalization(name="sep2_bn")(x)
    x = K.layers.MaxPooling2D(3, strides=2, padding="same", name="pool")(x)
    x = K.layers.Add(name="add")([x, residual])
    return K.Model(inp, _head(K, x), name="xception_block")


def resnet_basic_block(K):
    """ResNet v1 basic block: Conv+BN+ReLU, Conv+BN, identity Add, ReLU."""
    inp = K.Input(SHAPE, name="image")
    x = conv_bn(K, inp, 8, 3, "stem")
    y = conv_bn(K, x, 8, 3, "b1a")
    y = conv_bn(K, y, 8, 3, "b1b", act=None)
    x = K.layers.Add(name="b1_add")([x, y])
    x = K.layers.Activation("relu", name="b1_out")(x)
    return K.Model(inp, _head(K, x), name="resnet_basic_block")


def preact_resnet_block(K):
    """ResNet v2 (pre-activation): BN → ReLU → Conv; the BNs follow no conv (TF-MOT refuses them)."""
    inp = K.Input(SHAPE, name="image")
    x = K.layers.Conv2D(8, 3, padding="same", name="stem")(inp)
    y = K.layers.BatchNormalization(name="pre_bn1")(x)
    y = K.layers.Activation("relu", name="pre_relu1")(y)
    y = K.layers.Conv2D(8, 3, padding="same", name="conv1")(y)
    y = K.layers.BatchNormalization(name="pre_bn2")(y)
    y = K.layers.ReLU(name="pre_relu2")(y)
    y = K.layers.Conv2D(8, 3, padding="same", name="conv2")(y)
    x = K.layers.Add(name="add")([x, y])
    x = K.layers.BatchNormalization(name="post_bn")(x)
    x = K.layers.Activation("relu", name="post_relu")(x)
    return K.Model(inp, _head(K, x), name="preact_resnet_block")


def hard_swish(K, x, name):
    """MobileNetV3's hard-swish as Keras builds it: x * ReLU6(x + 3) / 6 (TFOpLambda add/multiply, ReLU, Multiply)."""
    h = K.layers.ReLU(6.0, name=f"{name}_relu6")(x + 3.0)
    h = h * (1.0 / 6.0)
    return K.layers.Multiply(name=f"{name}_mul")([x, h])


def mobilenetv3_block(K):
    """Rescaling, Conv+BN+hard-swish (ops), squeeze-excite (GAP keepdims, Conv, ReLU, Conv, hard-sigmoid, Multiply)."""
    inp = K.Input(SHAPE, name="image")
    x = K.layers.Rescaling(1.0 / 2.0, offset=-0.25, name="rescale")(inp)
    x = conv_bn(K, x, 8, 3, "stem", strides=2, act=None)
    x = hard_swish(K, x, "stem_hs")
    s = K.layers.GlobalAveragePooling2D(keepdims=True, name="se_pool")(x)
    s = K.layers.Conv2D(4, 1, name="se_reduce")(s)
    s = K.layers.ReLU(name="se_relu")(s)
    s = K.layers.Conv2D(8, 1, name="se_expand")(s)
    s = K.layers.ReLU(6.0, name="se_hsig_relu6")(s + 3.0) * (1.0 / 6.0)
    x = K.layers.Multiply(name="se_mul")([x, s])
    x = conv_bn(K, x, 12, 1, "project", act=None)
    return K.Model(inp, _head(K, x), name="mobilenetv3_block")


def efficientnet_lite_block(K, with_swish: bool = True):
    """Normalization (preprocessing), Conv+BN+swish, MBConv-like depthwise block, Dropout."""
    inp = K.Input(SHAPE, name="image")
    norm = K.layers.Normalization(mean=[0.5, 0.5, 0.5], variance=[0.3, 0.3, 0.3], name="normalize")
    x = norm(inp)
    act = "swish" if with_swish else "relu6"
    x = conv_bn(K, x, 8, 3, "stem", strides=2, act=act)
    y = K.layers.DepthwiseConv2D(3, padding="same", use_bias=False, name="mb_dw")(x)
    y = K.layers.BatchNormalization(name="mb_dw_bn")(y)
    y = K.layers.Activation(act, name=f"mb_dw_{act}")(y)
    y = conv_bn(K, y, 8, 1, "mb_project", act=None)
    y = K.layers.Dropout(0.2, name="mb_drop")(y)
    x = K.layers.Add(name="mb_add")([x, y])
    return K.Model(inp, _head(K, x), name="efficientnet_lite_block")


def layer_zoo(K):
    """Dense/Conv + BN + activations and the shape layers of the issue: Concatenate, pooling, ZeroPadding2D,
    Reshape, Flatten, Dropout, UpSampling2D, PReLU, Activation('relu6') after BN."""
    inp = K.Input(SHAPE, name="image")
    a = conv_bn(K, inp, 8, 3, "a")
    b = conv_bn(K, inp, 8, 3, "b", act="relu6")
    x = K.layers.Concatenate(name="concat")([a, b])
    x = K.layers.AveragePooling2D(2, name="avgpool")(x)
    x = K.layers.ZeroPadding2D(1, name="pad")(x)
    x = K.layers.Conv2D(8, 3, name="c")(x)
    x = K.layers.PReLU(shared_axes=[1, 2], name="prelu")(x)
    x = K.layers.UpSampling2D(name="up")(x)
    x = K.layers.MaxPooling2D(2, name="maxpool")(x)
    x = K.layers.Reshape((8 * 8 * 8,), name="reshape")(x)
    x = K.layers.Reshape((8, 8, 8), name="reshape_back")(x)
    x = K.layers.Flatten(name="flatten")(x)
    x = K.layers.Dropout(0.1, name="drop")(x)
    x = K.layers.Dense(16, use_bias=False, name="fc")(x)
    x = K.layers.BatchNormalization(name="fc_bn")(x)
    x = K.layers.ReLU(name="fc_relu")(x)
    return K.Model(inp, K.layers.Dense(CLASSES, activation="softmax", name="predictions")(x), name="layer_zoo")


BLOCKS = {
    "bn_model": bn_model,
    "mobilenetv2_block": mobilenetv2_block,
    "xception_block": xception_block,
    "resnet_basic_block": resnet_basic_block,
    "preact_resnet_block": preact_resnet_block,
    "mobilenetv3_block": mobilenetv3_block,
    "efficientnet_lite_block": efficientnet_lite_block,
    "layer_zoo": layer_zoo,
}


def trained(K, builder, seed: int = 0, epochs: int = 4, n: int = 600):
    """``builder(K)`` trained briefly on ``data`` (seeded); BN statistics become non-trivial."""
    K.utils.set_random_seed(seed)
    model = builder(K)
    x, y = data(n, seed)
    model.compile(K.optimizers.Adam(3e-3), "sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x, y, batch_size=32, epochs=epochs, verbose=0)
    settle_batchnorm(K, model, x)
    return model


def settle_batchnorm(K, model, x) -> None:
    """Set BatchNormalization moving statistics to the statistics of ``x`` (a few epochs leave them
    half-way from their initial 0 / 1 at momentum 0.99, and the float model would be poor in inference)."""
    layers = [layer for layer in model.layers if isinstance(layer, K.layers.BatchNormalization)]
    saved = [layer.momentum for layer in layers]
    for layer in layers:
        layer.momentum = 0.0
    model(x[:512], training=True)
    for layer, momentum in zip(layers, saved):
        layer.momentum = momentum
