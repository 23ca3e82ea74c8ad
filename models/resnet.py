"""Bi-Real-style binary ResNets, the backbone SA-BNN and Equal Bits train their quantizers on.

After Liu et al., "Bi-Real Net" (ECCV 2018): a real-valued shortcut around every binary
convolution; a downsampling shortcut is AvgPool 2x2 -> float 1x1 conv -> BN. The family
modules pass a ``unit`` function that builds the binary part (sign -> binary conv -> ...).
"""

from __future__ import annotations

from edgebnn.models.lazy_imports import lazy_module

keras = lazy_module("tf_keras")
custom_layers = lazy_module("edgebnn.models.layers")



# name -> (block kind, blocks per stage)
LAYOUTS = {
    "resnet18": ("basic", (2, 2, 2, 2)),
    "resnet34": ("basic", (3, 4, 6, 3)),
    "resnet50": ("bottleneck", (3, 4, 6, 3)),
    "resnet20": ("basic", (3, 3, 3)),  # the CIFAR ResNet-20 (He et al. 2016, IR-Net's layout)
}


def scaled(channels: int, width: float, *, multiple: int = 32) -> int:
    """``channels * width`` rounded to a multiple of ``multiple`` (LCE packs 32 channels a word)."""
    return max(multiple, int(round(channels * width / multiple)) * multiple)


def downsample(x, filters: int, strides: int):
    """Bi-Real's shortcut when the shape changes: AvgPool 2x2 -> float 1x1 conv -> BN."""
    if strides > 1:
        x = keras.layers.AveragePooling2D(strides, padding="same")(x)
    if x.shape[-1] != filters:
        x = keras.layers.Conv2D(filters, 1, use_bias=False)(x)
        x = keras.layers.BatchNormalization(momentum=0.9)(x)
    return x


def residual_unit(x, unit, filters: int, kernel_size: int, strides: int, *, shortcut=None):
    """``unit(x, filters, kernel_size, strides)`` plus a real-valued shortcut."""
    if shortcut is None:
        shortcut = downsample(x, filters, strides)
    return keras.layers.Add()([unit(x, filters, kernel_size, strides), shortcut])


def _bottleneck(x, unit, mid: int, strides: int):
    # Every binary conv keeps a real shortcut without float convs: the 1x1 reduce averages
    # channel groups, the 1x1 expand repeats its input, the strided 3x3 average-pools.
    channels = x.shape[-1]
    reduce = custom_layers.ChannelGroupMean(channels // mid)(x) if channels > mid else downsample(x, mid, 1)
    x = residual_unit(x, unit, mid, 1, 1, shortcut=reduce)
    x = residual_unit(x, unit, mid, 3, strides)
    expand = keras.layers.Concatenate()([x] * 4)
    return residual_unit(x, unit, 4 * mid, 1, 1, shortcut=expand)


def bireal_resnet(
    *,
    layout: str,
    unit,
    input_shape,
    num_classes: int,
    width: float,
    name: str,
    base: int = 64,
    cifar_stem: bool = False,
    multiple: int = 32,
    stem_prelu: bool = False,
    head_relu: bool = True,
    basic_block=None,
):
    """Build a Bi-Real-style ResNet with the family's binary ``unit``.

    Args:
        layout: a key of :data:`LAYOUTS`.
        unit: ``unit(x, filters, kernel_size, strides) -> tensor``, the binary part of a unit.
        input_shape, num_classes: the usual.
        width: multiplier of the stage widths.
        name: the Keras model's name.
        base: the first stage's width at ``width=1``.
        cifar_stem: a 3x3 stride-1 stem without max-pool (CIFAR) instead of 7x7/2 + max-pool.
        multiple: round the widths to multiples of this.
        stem_prelu: a PReLU between the stem conv and its BN.
        head_relu: a ReLU before the global pool.
        basic_block: ``basic_block(x, filters, strides) -> tensor`` instead of two
            :func:`residual_unit` calls with ``unit`` (a family whose two units share a layer).
    """
    kind, blocks = LAYOUTS[layout]
    first = scaled(base, width, multiple=multiple)
    inputs = keras.Input(shape=input_shape)
    x = keras.layers.Conv2D(first, 3 if cifar_stem else 7, strides=1 if cifar_stem else 2, padding="same",
                            use_bias=False)(inputs)
    if stem_prelu:
        x = keras.layers.PReLU(shared_axes=[1, 2])(x)
    x = keras.layers.BatchNormalization(momentum=0.9)(x)
    if not cifar_stem:
        x = keras.layers.MaxPooling2D(3, strides=2, padding="same")(x)
    for stage, count in enumerate(blocks):
        filters = first * 2**stage
        for block in range(count):
            strides = 2 if stage > 0 and block == 0 else 1
            if kind == "bottleneck":
                x = _bottleneck(x, unit, filters, strides)
            elif basic_block is not None:
                x = basic_block(x, filters, strides)
            else:
                x = residual_unit(x, unit, filters, 3, strides)
                x = residual_unit(x, unit, filters, 3, 1)
    if head_relu:
        x = keras.layers.Activation("relu")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    x = keras.layers.Dense(num_classes)(x)
    outputs = keras.layers.Activation("softmax", dtype="float32")(x)
    return keras.Model(inputs, outputs, name=name)
