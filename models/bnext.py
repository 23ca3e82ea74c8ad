"""BNext: "Towards Optimization-Friendly Binary Neural Network" (Guo et al., TMLR 2023).

The authors' network (hpi-xnor/BNext ``src/bnext.py``, read and checked against their own
model's logits): a MobileNet-like stack of binary blocks, each a 3x3 unit then a 1x1 unit.
Counting blocks from 0 after the stem, blocks 1, 3, 5, ... have an "ELM attention" 3x3 unit and
blocks 0, 2, 4, ... a plain one, so the first block is plain and every stride-2 block is ELM. A
block that doubles the width does it with two parallel 1x1 units (C -> C each) concatenated.

Every unit: learnable bias -> sign (STE clipped at 1.5) -> binary conv (weights clipped at 1.5,
no scale) -> BN -> PReLU -> Info-Recoupling (mix = s*pooled input + (1-s)*x, x = SE(mix) * x)
-> BN -> + shortcut. A plain unit's shortcut is the input (2x2 average-pooled at stride 2). An
ELM unit's shortcut is PReLU(input), average-pooled after the PReLU at stride 2, and it
multiplies x by that shortcut before the last BN; its recoupling mix still takes the pooled
input without the PReLU. Stem: 3x3 conv, BN; stride 2, or 1 for inputs of 32x32 or less (the
CIFAR stem; the authors choose by the class count, 2 at 1000; ``stem_stride`` sets it). Head:
PReLU -> global average pool -> dense. The cards' ``preprocessing`` is the authors' evaluation
transform (timm: bicubic resize of the shorter side to floor(size / 0.95), center crop, ImageNet
mean/std).

Paper's ImageNet results (224x224):

===========  ======  ======  ============  ==============
Model        top-1   OPs     params (1k)   binary MACs
===========  ======  ======  ============  ==============
BNext-Tiny   72.4 %  0.077G  30.86 M       4.82 G
BNext-Small  76.1 %  0.172G  68.59 M       10.84 G
BNext-Middle 78.3 %  0.317G  134.50 M      20.09 G
BNext-Large  80.6 %  0.819G  326.55 M      52.15 G
===========  ======  ======  ============  ==============

(OPs = binary MACs / 64 + float MACs; parameters counted from the authors' released code,
which defines parameters its forward pass never uses: the stem's PReLU and the input PReLU of
every plain unit, 8,960 in Tiny. This model has only the ones it uses: Tiny 30,853,276.)

Interpretation: the SE branch is global pool -> 1x1 conv C->C/8 (bias) -> ReLU -> 1x1 conv
(bias) -> sigmoid, as in the authors' code. Knowledge distillation belongs to the recipe, not
the architecture.

Padding: ``padding="one"`` (the default, for training from scratch) pads binary convs with +1,
LCE's fast path; ``padding="zero"`` pads with 0 as the authors do. The authors' weights
(``--weights FILE.pth.tar``, see :mod:`edgebnn.models.bnext_weights`) are always imported with
zero padding and ``rotate_input=True``: the input turned by 180 degrees (and every 3x3 kernel at
import), so that TensorFlow's stride-2 "same" padding sees what PyTorch's symmetric padding sees.
Measured with LCE 0.16.0: its zero-padded 3x3 bconv disagrees with TF when the input map is 1x1
or 2x2 (exact from 3x3 up; at 224 the smallest map is 7x7); ``edgebnn.converters.rewrites``
rewrites such convs before conversion (one-padded, minus the padding's constant contribution),
so small inputs convert exactly too.

BNext-18 is the authors' too (``src/birealnet.py``): a ResNet-18 layout (7x7/2 stem, BN, 3x3/2
max-pool; the CIFAR stem for small inputs), four stages of two blocks at widths 64/128/256/512,
each block an ELM 3x3 unit then a plain 3x3 unit, the strided first block of a stage with a
shortcut AvgPool 2x2 -> float 1x1 conv -> BN after the ELM PReLU, no concatenation; the ELM
unit's recoupling mix takes that shortcut. No BNext-18 weights were released, so it has no
importer (its binary convs would be binary once the temperature is below 1e-5 there, 1e-7 in
``bnext.py``; its 7x7/2 stem and max-pool would need the same alignment as the stride-2 convs).
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
}
PADDINGS = {"one": 1.0, "zero": 0.0}
BN_MOMENTUM = 0.9  # PyTorch's momentum 0.1
# The authors' evaluation transform (timm, crop_pct 0.95, bicubic) with ImageNet's mean/std.
AUTHORS_EVAL = {**IMAGENET_NORMALIZATION, "crop_fraction": 0.95, "interpolation": "bicubic"}


def _bn(name: str):
    return keras.layers.BatchNormalization(momentum=BN_MOMENTUM, name=name)


def _prelu(name: str):
    return keras.layers.PReLU(shared_axes=[1, 2], name=name)


def _pool(x, strides: int):
    return keras.layers.AveragePooling2D(strides, padding="same")(x) if strides > 1 else x


def _squeeze_excite(x, channels: int, name: str):
    s = keras.layers.GlobalAveragePooling2D(keepdims=True)(x)
    s = keras.layers.Conv2D(se_width(channels), 1, activation="relu", name=f"{name}_se_reduce")(s)
    return keras.layers.Conv2D(channels, 1, activation="sigmoid", name=f"{name}_se_expand")(s)


def _binary_conv(x, channels: int, kernel_size: int, strides: int, pad_value: float, name: str):
    y = custom_layers.LearnableBias(name=f"{name}_move")(x)
    y = lq.layers.QuantConv2D(
        channels, kernel_size, strides=strides, padding="same", pad_values=pad_value,
        input_quantizer=quantizers.BNextSign(), kernel_quantizer=quantizers.BNextSign(),
        kernel_constraint=lq.constraints.WeightClip(1.5), use_bias=False, name=f"{name}_conv",
    )(y)
    return _prelu(f"{name}_prelu")(_bn(f"{name}_bn1")(y))


def unit(x, channels: int, kernel_size: int, strides: int, *, elm: bool, pad_value: float, name: str):
    """One BNext unit (see the module docstring); layers are named ``<name>_<part>``."""
    pooled = _pool(x, strides)
    if elm:
        shortcut = _pool(_prelu(f"{name}_shortcut_prelu")(x), strides)  # PReLU before the pool
        mixed = pooled
    else:
        shortcut = mixed = pooled
    y = _binary_conv(x, channels, kernel_size, strides, pad_value, name)
    mix = custom_layers.Recouple(name=f"{name}_recouple")([mixed, y])
    y = keras.layers.Multiply()([_squeeze_excite(mix, channels, name), y])
    if elm:
        y = keras.layers.Multiply()([y, shortcut])
    return keras.layers.Add()([_bn(f"{name}_bn2")(y), shortcut])


def _check(size: str, padding: str, sizes) -> float:
    if size not in sizes:
        raise UsageError(f"unknown BNext size {size!r}: choose one of {', '.join(sizes)}")
    if padding not in PADDINGS:
        raise UsageError(f"unknown padding {padding!r}: choose one of {', '.join(PADDINGS)}")
    return PADDINGS[padding]


def _head(x, num_classes: int, inputs, name: str):
    x = _prelu("head_prelu")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    x = keras.layers.Dense(num_classes, name="fc")(x)
    outputs = keras.layers.Activation("softmax", dtype="float32")(x)
    return keras.Model(inputs, outputs, name=name)


def stage_widths(size: str, width: float = 1.0) -> list[int]:
    """The stem's width, then each block's output width, at ``width``.

    The stem's width is rounded to a multiple of 8; every other width is a multiple of the
    stem's, so scaling the stem keeps the doublings exact.
    """
    stem, blocks, _ = SIZES[size]
    unit_width = max(8, int(round(stem[0] * width / 8)) * 8)
    return [c // stem[0] * unit_width for c in stem + blocks]


def se_width(channels: int) -> int:
    """The SE branch's hidden width: C / 8 (at least 1)."""
    return max(1, channels // 8)


def bnext(
    size: str,
    *,
    input_shape=(224, 224, 3),
    num_classes: int = 1000,
    width: float = 1.0,
    padding: str = "one",
    rotate_input: bool = False,
    stem_stride: int | None = None,
):
    """Build a BNext model, the authors' graph (see the module docstring).

    Layer names follow the blocks: ``stem_conv``, ``block<i>_3x3_<part>``, ``block<i>_1x1_<part>``
    (``block<i>_1x1a``/``b`` where the width doubles), ``head_prelu``, ``fc``.

    Args:
        size: ``tiny``, ``small``, ``middle`` or ``large``.
        input_shape: (H, W, C).
        num_classes: classes of the softmax output.
        width: multiplier of every width (the stem's rounded to a multiple of 8, the rest
            kept at their multiples of it).
        padding: ``one`` (pad binary convs with +1, fast in LCE; the default) or ``zero`` (the
            authors').
        rotate_input: turn the input by 180 degrees first (imported PyTorch weights).
        stem_stride: the stem's stride; None: 1 for inputs of 32x32 or less, else 2.

    Raises:
        UsageError: an unknown size or padding.
    """
    pad_value = _check(size, padding, SIZES)
    widths = stage_widths(size, width)
    inputs = keras.Input(shape=input_shape)
    x = custom_layers.Rotate180(name="rotate_input")(inputs) if rotate_input else inputs
    if stem_stride is None:
        stem_stride = 1 if min(input_shape[:2]) <= 32 else 2
    x = keras.layers.Conv2D(widths[0], 3, strides=stem_stride, padding="same", use_bias=False,
                            name="stem_conv")(x)
    x = _bn("stem_bn")(x)
    for i, (c_in, c_out) in enumerate(zip(widths[:-1], widths[1:])):
        strides = 2 if c_out != c_in and i > 0 else 1
        x = unit(x, c_in, 3, strides, elm=i % 2 == 1, pad_value=pad_value, name=f"block{i}_3x3")
        if c_out == c_in:
            x = unit(x, c_in, 1, 1, elm=False, pad_value=pad_value, name=f"block{i}_1x1")
        elif c_out == 2 * c_in:
            x = keras.layers.Concatenate()(
                [unit(x, c_in, 1, 1, elm=False, pad_value=pad_value, name=f"block{i}_1x1{ab}") for ab in "ab"]
            )
        else:
            raise UsageError(f"BNext widths must stay or double, got {c_in} -> {c_out}")
    return _head(x, num_classes, inputs, f"bnext_{size}")


def bnext18(*, input_shape=(224, 224, 3), num_classes: int = 1000, width: float = 1.0, padding: str = "one"):
    """Build BNext-18, the authors' ``BNext18`` of ``src/birealnet.py`` (see the module docstring).

    Args:
        input_shape: (H, W, C); inputs of 32x32 or less get the CIFAR stem (3x3/1, no max-pool).
        num_classes: classes of the softmax output.
        width: multiplier of the stage widths (multiples of 8).
        padding: ``one`` (default) or ``zero`` (the authors').

    Raises:
        UsageError: an unknown padding.
    """
    pad_value = _check("18", padding, {"18": None})
    base = max(8, int(round(64 * width / 8)) * 8)
    inputs = keras.Input(shape=input_shape)
    if min(input_shape[:2]) <= 32:
        x = keras.layers.Conv2D(base, 3, padding="same", use_bias=False, name="stem_conv")(inputs)
        x = _bn("stem_bn")(x)
    else:
        x = keras.layers.Conv2D(base, 7, strides=2, padding="same", use_bias=False, name="stem_conv")(inputs)
        x = _bn("stem_bn")(x)
        x = keras.layers.MaxPooling2D(3, strides=2, padding="same")(x)
    for stage in range(4):
        filters = base * 2**stage
        for block in range(2):
            name = f"layer{stage}_{block}"
            strides = 2 if stage > 0 and block == 0 else 1
            shortcut = None
            if strides > 1:
                shortcut = _pool(_prelu(f"{name}_attention_shortcut_prelu")(x), strides)
                shortcut = keras.layers.Conv2D(filters, 1, use_bias=False, name=f"{name}_downsample_conv")(shortcut)
                shortcut = _bn(f"{name}_downsample_bn")(shortcut)
            x = _bnext18_elm(x, filters, strides, pad_value, f"{name}_attention", shortcut)
            x = unit(x, filters, 3, 1, elm=False, pad_value=pad_value, name=f"{name}_ffn")
    return _head(x, num_classes, inputs, "bnext_18")


def _bnext18_elm(x, filters: int, strides: int, pad_value: float, name: str, shortcut):
    """BNext-18's ELM unit: C_in -> filters channels; the mix takes the (PReLU'd) shortcut."""
    if shortcut is None:
        shortcut = _prelu(f"{name}_shortcut_prelu")(x)
    y = _binary_conv(x, filters, 3, strides, pad_value, name)
    mix = custom_layers.Recouple(name=f"{name}_recouple")([shortcut, y])
    y = keras.layers.Multiply()([_squeeze_excite(mix, filters, name), y])
    y = keras.layers.Multiply()([y, shortcut])
    return keras.layers.Add()([_bn(f"{name}_bn2")(y), shortcut])


def _entry(size: str):
    def build(*, input_shape=(224, 224, 3), num_classes=1000, width: float = 1.0, padding: str = "one",
              rotate_input: bool = False, stem_stride: int | None = None):
        return bnext(size, input_shape=input_shape, num_classes=num_classes, width=width, padding=padding,
                     rotate_input=rotate_input, stem_stride=stem_stride)

    build.__doc__ = f"BNext-{size.capitalize()} (see :func:`bnext` for the options)."
    return build


for _size, (_stem, _blocks, _top1) in SIZES.items():
    register_model(
        f"bnext-{_size}",
        family="bnext",
        paper=PAPER,
        aliases=(f"bnext_{_size}",),
        recipe="bnext-large" if _size == "large" else "bnext",  # batch 128 for Large (papers.md)
        published={"imagenet_top1": _top1},
        preprocessing=AUTHORS_EVAL,
        notes="the authors' graph (hpi-xnor/BNext src/bnext.py); padding=one (default, LCE's fast path, for "
              "training from scratch) or padding=zero (the authors'); --weights FILE.pth.tar imports the authors' "
              "released weights (zero padding, rotate_input=true)",
    )(_entry(_size))

register_model(
    "bnext-18",
    family="bnext",
    paper=PAPER,
    aliases=("bnext_18",),
    recipe="bnext",
    preprocessing=AUTHORS_EVAL,
    notes="the authors' BNext-18 (hpi-xnor/BNext src/birealnet.py): per block an ELM 3x3 unit and a plain 3x3 "
          "unit, 1x1-conv shortcut, no concatenation; padding=one (default) or zero (the authors')",
)(bnext18)
