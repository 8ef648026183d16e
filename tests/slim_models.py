"""Tiny seeded models, one per layer kind slimming must see through (the Keras module is a parameter)."""

from __future__ import annotations

import numpy as np


def conv2d(L):
    x = L.Input((12, 12, 3), name="image")
    y = L.layers.Conv2D(8, 3, activation="relu", name="c1")(x)
    y = L.layers.Conv2D(6, 3, name="c2")(y)
    y = L.layers.Flatten(name="flat")(y)
    return L.Model(x, L.layers.Dense(4, name="out")(y))


def conv1d(L):
    x = L.Input((20, 3), name="series")
    y = L.layers.Conv1D(8, 3, activation="relu", name="c1")(x)
    y = L.layers.MaxPooling1D(2, name="pool")(y)
    y = L.layers.Conv1D(6, 3, name="c2")(y)
    y = L.layers.GlobalAveragePooling1D(name="gap")(y)
    return L.Model(x, L.layers.Dense(4, name="out")(y))


def depthwise(L):
    x = L.Input((12, 12, 3), name="image")
    y = L.layers.Conv2D(8, 1, name="expand")(x)
    y = L.layers.DepthwiseConv2D(3, padding="same", name="dw")(y)
    y = L.layers.Conv2D(6, 1, name="project")(y)
    y = L.layers.GlobalAveragePooling2D(name="gap")(y)
    return L.Model(x, L.layers.Dense(4, name="out")(y))


def separable(L):
    x = L.Input((12, 12, 3), name="image")
    y = L.layers.Conv2D(8, 1, name="c1")(x)
    y = L.layers.SeparableConv2D(10, 3, depth_multiplier=2, activation="relu", name="sep")(y)
    y = L.layers.SeparableConv2D(6, 3, name="sep2")(y)
    y = L.layers.GlobalMaxPooling2D(name="gmp")(y)
    return L.Model(x, L.layers.Dense(4, name="out")(y))


def dense(L):
    x = L.Input((10,), name="features")
    y = L.layers.Dense(16, activation="relu", name="d1")(x)
    y = L.layers.Dense(12, activation="tanh", name="d2")(y)
    return L.Model(x, L.layers.Dense(4, name="out")(y))


def dense_3d(L):
    x = L.Input((5, 10), name="tokens")
    y = L.layers.Dense(16, activation="relu", name="d1")(x)
    y = L.layers.Dense(8, name="d2")(y)
    y = L.layers.Flatten(name="flat")(y)
    return L.Model(x, L.layers.Dense(3, name="out")(y))


def batchnorm(L):
    x = L.Input((12, 12, 3), name="image")
    y = L.layers.Conv2D(8, 3, use_bias=False, name="c1")(x)
    y = L.layers.BatchNormalization(name="bn1")(y)
    y = L.layers.Conv2D(6, 3, name="c2")(y)
    y = L.layers.BatchNormalization(name="bn2")(y)
    y = L.layers.GlobalAveragePooling2D(name="gap")(y)
    return L.Model(x, L.layers.Dense(4, name="out")(y))


def activations(L):
    x = L.Input((12, 12, 3), name="image")
    y = L.layers.Conv2D(8, 3, name="c1")(x)
    y = L.layers.PReLU(name="prelu")(y)  # alpha per position and channel
    y = L.layers.Conv2D(8, 3, name="c2")(y)
    y = L.layers.PReLU(shared_axes=[1, 2], name="prelu_shared")(y)
    y = L.layers.ReLU(6.0, name="relu6")(y)
    y = L.layers.LeakyReLU(name="leaky")(y)
    y = L.layers.Activation("swish", name="swish")(y)
    y = L.layers.Conv2D(6, 3, name="c3")(y)
    y = L.layers.Flatten(name="flat")(y)
    return L.Model(x, L.layers.Dense(4, name="out")(y))


def pooling(L):
    x = L.Input((16, 16, 3), name="image")
    y = L.layers.Conv2D(8, 3, padding="same", name="c1")(x)
    y = L.layers.MaxPooling2D(2, name="maxpool")(y)
    y = L.layers.AveragePooling2D(2, name="avgpool")(y)
    y = L.layers.Conv2D(6, 3, name="c2")(y)
    y = L.layers.Flatten(name="flat")(y)
    return L.Model(x, L.layers.Dense(4, name="out")(y))


def dropout(L):
    x = L.Input((12, 12, 3), name="image")
    y = L.layers.Conv2D(8, 3, name="c1")(x)
    y = L.layers.Dropout(0.3, name="drop")(y)
    y = L.layers.SpatialDropout2D(0.3, name="sdrop")(y)
    y = L.layers.Conv2D(6, 3, name="c2")(y)
    y = L.layers.GlobalAveragePooling2D(name="gap")(y)
    return L.Model(x, L.layers.Dense(4, name="out")(y))


def padding(L):
    x = L.Input((12, 12, 3), name="image")
    y = L.layers.Conv2D(8, 3, name="c1")(x)
    y = L.layers.ZeroPadding2D(2, name="pad")(y)
    y = L.layers.Cropping2D(1, name="crop")(y)
    y = L.layers.UpSampling2D(2, name="up")(y)
    y = L.layers.Conv2D(6, 3, strides=2, name="c2")(y)
    y = L.layers.Flatten(name="flat")(y)
    return L.Model(x, L.layers.Dense(4, name="out")(y))


def residual(L):
    x = L.Input((12, 12, 3), name="image")
    a = L.layers.Conv2D(8, 3, padding="same", name="stem")(x)
    b = L.layers.Conv2D(8, 3, padding="same", activation="relu", name="branch1")(a)
    s = L.layers.Add(name="add1")([a, b])
    c = L.layers.Conv2D(8, 1, name="branch2")(s)
    s = L.layers.Add(name="add2")([s, c, L.layers.Conv2D(8, 1, name="branch3")(s)])
    s = L.layers.Subtract(name="sub")([s, L.layers.Conv2D(8, 1, name="branch4")(s)])
    y = L.layers.Conv2D(6, 3, name="head")(s)
    y = L.layers.GlobalAveragePooling2D(name="gap")(y)
    return L.Model(x, L.layers.Dense(4, name="out")(y))


def concat(L):
    x = L.Input((12, 12, 3), name="image")
    a = L.layers.Conv2D(8, 3, name="a")(x)
    b = L.layers.Conv2D(6, 3, name="b")(x)
    c = L.layers.Conv2D(10, 3, name="c")(x)
    y = L.layers.Concatenate(name="cat")([a, b, c])
    y = L.layers.Conv2D(6, 3, name="after")(y)
    z = L.layers.Concatenate(axis=-1, name="cat2")([y, L.layers.Conv2D(5, 3, name="d")(b)])
    z = L.layers.Flatten(name="flat")(z)
    return L.Model(x, L.layers.Dense(4, name="out")(z))


def flatten_dense(L):
    x = L.Input((10, 10, 2), name="image")
    y = L.layers.Conv2D(8, 3, activation="relu", name="c1")(x)
    y = L.layers.MaxPooling2D(2, name="pool")(y)
    y = L.layers.Flatten(name="flat")(y)
    y = L.layers.Dense(12, activation="relu", name="d1")(y)
    return L.Model(x, L.layers.Dense(4, name="out")(y))


def global_pooling(L):
    x = L.Input((12, 12, 3), name="image")
    y = L.layers.Conv2D(8, 3, name="c1")(x)
    a = L.layers.GlobalAveragePooling2D(name="gap")(y)
    b = L.layers.GlobalMaxPooling2D(name="gmp")(y)
    y = L.layers.Concatenate(name="cat")([a, b])
    y = L.layers.Dense(6, name="d1")(y)
    return L.Model(x, L.layers.Dense(4, name="out")(y))


def squeeze_excite(L):
    x = L.Input((12, 12, 3), name="image")
    y = L.layers.Conv2D(8, 3, name="c1")(x)
    s = L.layers.GlobalAveragePooling2D(name="gap")(y)
    s = L.layers.Dense(4, activation="relu", name="se_reduce")(s)
    s = L.layers.Dense(8, activation="sigmoid", name="se_expand")(s)
    s = L.layers.Reshape((1, 1, 8), name="se_reshape")(s)
    y = L.layers.Multiply(name="se_scale")([y, s])
    y = L.layers.Conv2D(6, 3, name="c2")(y)
    y = L.layers.Reshape((-1,), name="flat")(y)
    return L.Model(x, L.layers.Dense(4, name="out")(y))


def shared_layer(L):
    x = L.Input((12, 12, 3), name="image")
    a = L.layers.Conv2D(8, 3, name="a")(x)
    b = L.layers.Conv2D(8, 3, name="b")(x)
    shared = L.layers.Conv2D(6, 1, name="shared")
    y = L.layers.Add(name="add")([shared(a), shared(b)])
    y = L.layers.GlobalAveragePooling2D(name="gap")(y)
    return L.Model(x, L.layers.Dense(4, name="out")(y))


def sequential(L):
    return L.Sequential([
        L.Input((12, 12, 3), name="image"),
        L.layers.Conv2D(8, 3, activation="relu", name="c1"),
        L.layers.BatchNormalization(name="bn"),
        L.layers.MaxPooling2D(name="pool"),
        L.layers.Conv2D(6, 3, name="c2"),
        L.layers.Flatten(name="flat"),
        L.layers.Dense(10, activation="relu", name="d1"),
        L.layers.Dense(4, name="out"),
    ], name="seq")


def multi_io(L):
    x1 = L.Input((12, 12, 3), name="image")
    x2 = L.Input((5,), name="meta")
    y = L.layers.Conv2D(8, 3, name="c1")(x1)
    y = L.layers.GlobalAveragePooling2D(name="gap")(y)
    m = L.layers.Dense(6, name="m1")(x2)
    y = L.layers.Concatenate(name="cat")([y, m])
    h = L.layers.Dense(10, activation="relu", name="d1")(y)
    return L.Model([x1, x2], [L.layers.Dense(3, activation="softmax", name="cls")(h), L.layers.Dense(1, name="reg")(h)])


def elementwise_ops(L):
    """x + 3.0, x * (1 / 6) become tf_keras TFOpLambda layers / Keras 3 ops in the graph; a width-1 gate broadcasts."""
    x = L.Input((12, 12, 3), name="image")
    y = L.layers.Conv2D(8, 3, name="c1")(x)
    y = y * (1.0 / 6.0) * L.layers.ReLU(6.0, name="relu6")(y + 3.0)  # hard-swish
    gate = L.layers.Conv2D(1, 1, activation="sigmoid", name="gate")(y)
    y = L.layers.Multiply(name="spatial_attention")([y, gate])
    y = L.layers.Conv2D(6, 3, name="c2")(y)
    y = L.layers.GlobalAveragePooling2D(name="gap")(y)
    return L.Model(x, L.layers.Dense(4, name="out")(y))


KINDS = {f.__name__: f for f in (conv2d, conv1d, depthwise, separable, dense, dense_3d, batchnorm, activations, pooling,
                                 dropout, padding, residual, concat, flatten_dense, global_pooling, squeeze_excite,
                                 shared_layer, sequential, multi_io, elementwise_ops)}


def randomize(model, seed: int = 0) -> None:
    """Random non-trivial weights everywhere (BN statistics, PReLU slopes, biases), outputs of order 1."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if type(layer).__name__ == "Normalization":  # mean, variance, count: keep what it has
            continue
        new = []
        for w in layer.get_weights():
            if type(layer).__name__ == "BatchNormalization" and len(new) == 3:
                new.append(rng.uniform(0.5, 1.5, w.shape).astype(w.dtype))  # moving variance
            elif w.ndim <= 1 or type(layer).__name__ == "PReLU":
                gamma = len(new) == 0 and type(layer).__name__ == "BatchNormalization"  # around 1
                new.append(rng.uniform(-0.5, 0.5, w.shape).astype(w.dtype) + (1.0 if gamma else 0.0))
            else:
                fan_in = int(np.prod(w.shape[:-1]))
                new.append((rng.standard_normal(w.shape) / np.sqrt(fan_in)).astype(w.dtype))
        if new:
            layer.set_weights(new)


def sample_inputs(model, n: int = 8, seed: int = 1):
    rng = np.random.default_rng(seed)
    xs = [rng.standard_normal((n, *tuple(t.shape[1:]))).astype(np.float32) for t in model.inputs]
    return xs if len(xs) > 1 else xs[0]
