"""A compact Bi-Real-style BNN: the quickstart model, small enough to train in a minute.

Architecture after Liu et al., "Bi-Real Net" (ECCV 2018): a float stem, then binary 3x3
convolutions each wrapped by a real-valued shortcut, downsampling shortcuts as
AvgPool 2x2 -> float 1x1 conv -> BN. Built for LCE: binary convs take sign activations and
sign kernels (so every one becomes an ``LceBconv2d``), pad with 1 (LCE's fast path), and keep
their input channels at multiples of 32.

Interpretation: the stage widths (32, 64, 128) and two blocks per stage are edgebnn's choice
for 32x32 inputs; BatchNorm momentum 0.9 (not Keras' 0.99) because a 15-epoch run on 1,437
images has too few steps for slow running statistics to settle.
"""

from __future__ import annotations

from edgebnn.models.lazy_imports import lazy_module
from edgebnn.registry import register_model

lq = lazy_module("larq")
keras = lazy_module("tf_keras")

BINARY_CONV = dict(
    input_quantizer="ste_sign",
    kernel_quantizer="ste_sign",
    kernel_constraint="weight_clip",
    pad_values=1.0,
    use_bias=False,
)


def _block(x, filters: int, strides: int, bn_momentum: float):
    shortcut = x
    if strides != 1 or x.shape[-1] != filters:
        shortcut = keras.layers.AveragePooling2D(strides, padding="same")(shortcut)
        shortcut = keras.layers.Conv2D(filters, 1, use_bias=False)(shortcut)
        shortcut = keras.layers.BatchNormalization(momentum=bn_momentum)(shortcut)
    x = lq.layers.QuantConv2D(filters, 3, strides=strides, padding="same", **BINARY_CONV)(x)
    x = keras.layers.BatchNormalization(momentum=bn_momentum)(x)
    return keras.layers.Add()([x, shortcut])


@register_model(
    "bireal-tiny",
    family="bireal-tiny",
    paper="Liu et al., Bi-Real Net, ECCV 2018 (compact variant for small inputs)",
    aliases=("bireal_tiny", "quickstart"),
    input_shape=(32, 32, 1),
    num_classes=10,
    recipe="bireal-tiny",
    notes="the quickstart model: trains on the bundled digits in about a minute on 2 cores",
)
def bireal_tiny(
    *,
    input_shape=(32, 32, 1),
    num_classes=10,
    width: float = 1.0,
    blocks_per_stage: int = 2,
    bn_momentum: float = 0.9,
):
    """Build the compact Bi-Real-style BNN.

    Args:
        input_shape: (H, W, C) of the input images.
        num_classes: size of the softmax output.
        width: multiplier of the stage widths 32/64/128 (rounded to multiples of 32 for LCE).
        blocks_per_stage: binary blocks per stage.
        bn_momentum: BatchNorm momentum.
    """
    widths = [max(32, int(round(w * width / 32)) * 32) for w in (32, 64, 128)]
    inputs = keras.Input(shape=input_shape)
    x = keras.layers.Conv2D(widths[0], 3, padding="same", use_bias=False)(inputs)
    x = keras.layers.BatchNormalization(momentum=bn_momentum)(x)
    for stage, filters in enumerate(widths):
        for block in range(blocks_per_stage):
            strides = 2 if stage > 0 and block == 0 else 1
            x = _block(x, filters, strides, bn_momentum)
    x = keras.layers.Activation("relu")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    x = keras.layers.Dense(num_classes)(x)
    outputs = keras.layers.Activation("softmax", dtype="float32")(x)
    return keras.Model(inputs, outputs, name="bireal_tiny")
