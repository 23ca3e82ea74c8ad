"""BNext: "Towards Optimization-Friendly Binary Neural Network" (Guo et al., TMLR 2023).

A MobileNet-like stack of binary blocks, each a 3x3 unit then a 1x1 unit. The 3x3 units
alternate between an "ELM attention" unit (even blocks) and a plain unit (odd blocks); a block
that doubles the width does it with two parallel 1x1 units (C -> C each) concatenated. Every
unit: learnable bias -> sign (STE clipped at 1.5) -> binary conv (weights clipped at 1.5, no
scale) -> BN -> PReLU -> Info-Recoupling (mix = s*input + (1-s)*x, x = SE(mix) * x) -> BN
-> + shortcut; the ELM unit's shortcut is PReLU(input) and it multiplies x by it before the
last BN. Head: PReLU -> global average pool -> dense.

Paper's ImageNet results (224x224):

===========  ======  ======  ============  ==============
Model        top-1   OPs     params (1k)   binary MACs
===========  ======  ======  ============  ==============
BNext-Tiny   72.4 %  0.077G  30.86 M       4.82 G
BNext-Small  76.1 %  0.172G  68.59 M       10.84 G
BNext-Middle 78.3 %  0.317G  134.50 M      20.09 G
BNext-Large  80.6 %  0.819G  326.55 M      52.15 G
===========  ======  ======  ============  ==============

(OPs = binary MACs / 64 + float MACs; parameters counted from the authors' released code.)

Interpretation: the first block keeps the stem's resolution and the next four width changes
have stride 2 (the stem has stride 2, the last stage is 7x7 at 224); the SE branch is
global pool -> 1x1 conv C->C/8 (bias) -> ReLU -> 1x1 conv (bias) -> sigmoid; for a strided
unit the Info-Recoupling mixes the 2x2 average-pooled input. BNext-18 is edgebnn's reading of
"the same units on a ResNet-18 layout": a 7x7/2 stem with 64 channels, BN and 3x3/2 max-pool,
then eight blocks of widths 64, 64, 128, 128, 256, 256, 512, 512; it has no figure in
papers.md. Knowledge distillation belongs to the recipe, not the architecture.

``padding="one"`` (default) pads binary convs with +1, LCE's fast path; ``padding="zero"``
pads with 0 and reproduces the authors' weights. Measured with LCE 0.16.0: a zero-padded 3x3
bconv disagrees with TF when its input map is 1x1 or 2x2 (exact from 3x3 up), so zero padding
deploys correctly only when every map stays at 3x3 or more (at 224 the smallest is 7x7; at 32
it is 2x2).
"""

from __future__ import annotations

from edgebnn.errors import UsageError
from edgebnn.models.lazy_imports import lazy_module
from edgebnn.models.zoo import IMAGENET_NORMALIZATION
from edgebnn.registry import register_model

lq = lazy_module("larq")
keras = lazy_module("tf_keras")
quantizers = lazy_module("edgebnn.models.quantizers")
custom_layers = lazy_module("edgebnn.models.layers")

PAPER = "Guo et al., Towards Optimization-Friendly Binary Neural Network (BNext), TMLR 2023"

# name -> (stem width, [block widths]) as in the authors' code, and published top-1
SIZES = {
    "tiny": ([32], [64] + [128] * 2 + [256] * 2 + [512] * 6 + [1024] * 2, 72.4),
    "small": ([48], [96] + [192] * 2 + [384] * 2 + [768] * 6 + [1536] * 2, 76.1),
    "middle": ([48], [96] + [192] * 4 + [384] * 4 + [768] * 8 + [1536] * 4, 78.3),
    "large": ([64], [128] + [256] * 4 + [512] * 4 + [1024] * 16 + [2048] * 4, 80.6),
    "18": ([64], [64, 64, 128, 128, 256, 256, 512, 512], None),
}
PADDINGS = {"one": 1.0, "zero": 0.0}
BN_MOMENTUM = 0.9


def _bn():
    return keras.layers.BatchNormalization(momentum=BN_MOMENTUM)


def _prelu():
    return keras.layers.PReLU(shared_axes=[1, 2])


def _squeeze_excite(x, channels: int):
    s = keras.layers.GlobalAveragePooling2D(keepdims=True)(x)
    s = keras.layers.Conv2D(max(1, channels // 8), 1, activation="relu")(s)
    return keras.layers.Conv2D(channels, 1, activation="sigmoid")(s)


def unit(x, channels: int, kernel_size: int, strides: int, *, elm: bool, pad_value: float):
    """One BNext unit (C -> C channels); see the module docstring."""
    shortcut = x
    if strides > 1:
        shortcut = keras.layers.AveragePooling2D(strides, padding="same")(shortcut)
    y = custom_layers.LearnableBias()(x)
    y = lq.layers.QuantConv2D(
        channels, kernel_size, strides=strides, padding="same", pad_values=pad_value,
        input_quantizer=quantizers.BNextSign(), kernel_quantizer=quantizers.BNextSign(),
        kernel_constraint=lq.constraints.WeightClip(1.5), use_bias=False,
    )(y)
    y = _prelu()(_bn()(y))
    mix = custom_layers.Recouple()([shortcut, y])
    y = keras.layers.Multiply()([_squeeze_excite(mix, channels), y])
    if elm:
        shortcut = _prelu()(shortcut)
        y = keras.layers.Multiply()([y, shortcut])
    return keras.layers.Add()([_bn()(y), shortcut])


def bnext(
    size: str,
    *,
    input_shape=(224, 224, 3),
    num_classes: int = 1000,
    width: float = 1.0,
    padding: str = "one",
):
    """Build a BNext model.

    Args:
        size: ``tiny``, ``small``, ``middle``, ``large`` or ``18``.
        input_shape: (H, W, C); inputs of 32x32 or less get a stride-1 stem (the CIFAR stem).
        num_classes: classes of the softmax output.
        width: multiplier of every width (the stem's rounded to a multiple of 8, the rest
            kept at their multiples of it).
        padding: ``one`` (pad binary convs with +1, fast in LCE) or ``zero`` (the authors').

    Raises:
        ValueError: an unknown size or padding.
    """
    if size not in SIZES:
        raise UsageError(f"unknown BNext size {size!r}: choose one of {', '.join(SIZES)}")
    if padding not in PADDINGS:
        raise UsageError(f"unknown padding {padding!r}: choose one of {', '.join(PADDINGS)}")
    stem, blocks, _ = SIZES[size]
    # Every width is a multiple of the stem's, so scaling the stem keeps the doublings exact.
    unit_width = max(8, int(round(stem[0] * width / 8)) * 8)
    scale = lambda c: c // stem[0] * unit_width  # noqa: E731
    pad_value = PADDINGS[padding]
    inputs = keras.Input(shape=input_shape)
    stem_stride = 1 if min(input_shape[:2]) <= 32 else 2
    x = keras.layers.Conv2D(scale(stem[0]), 3 if size != "18" else 7, strides=stem_stride,
                            padding="same", use_bias=False)(inputs)
    x = _bn()(x)
    if size == "18":
        x = keras.layers.MaxPooling2D(3, strides=2, padding="same")(x)
    widths = [scale(stem[0])] + [scale(c) for c in blocks]
    for i, (c_in, c_out) in enumerate(zip(widths[:-1], widths[1:])):
        strides = 2 if c_out != c_in and i > 0 else 1
        x = unit(x, c_in, 3, strides, elm=i % 2 == 0, pad_value=pad_value)
        if c_out == c_in:
            x = unit(x, c_in, 1, 1, elm=False, pad_value=pad_value)
        elif c_out == 2 * c_in:
            x = keras.layers.Concatenate()(
                [unit(x, c_in, 1, 1, elm=False, pad_value=pad_value) for _ in range(2)]
            )
        else:
            raise UsageError(f"BNext widths must stay or double, got {c_in} -> {c_out}")
    x = _prelu()(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    x = keras.layers.Dense(num_classes)(x)
    outputs = keras.layers.Activation("softmax", dtype="float32")(x)
    return keras.Model(inputs, outputs, name=f"bnext_{size}")


def _entry(size: str):
    def build(*, input_shape=(224, 224, 3), num_classes=1000, width: float = 1.0, padding: str = "one"):
        return bnext(size, input_shape=input_shape, num_classes=num_classes, width=width, padding=padding)

    build.__doc__ = f"BNext-{size.capitalize()} (see :func:`bnext` for the options)."
    return build


for _size, (_stem, _blocks, _top1) in SIZES.items():
    register_model(
        f"bnext-{_size}",
        family="bnext",
        paper=PAPER,
        aliases=(f"bnext_{_size}",),
        recipe="bnext-large" if _size == "large" else "bnext",  # batch 128 for Large (papers.md)
        published={"imagenet_top1": _top1} if _top1 is not None else {},
        preprocessing=IMAGENET_NORMALIZATION,
        notes="padding=one (default, LCE's fast path) or padding=zero (the authors' weights)"
        + ("; ResNet-18 layout is edgebnn's reading" if _size == "18" else ""),
    )(_entry(_size))
