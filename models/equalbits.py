"""Equal Bits: Enforcing Equally Distributed Binary Network Weights (Li, Pintea, van Gemert, AAAI 2022).

Bi-Real-style ResNet-18/34 (ImageNet) and the CIFAR ResNet-20 of IR-Net whose binary
convolutions use the bi-half quantizer :class:`~edgebnn.models.quantizers.BiHalf`: per
output filter exactly half of the weights at -1 and half at +1 (optimal transport onto a
Bernoulli(0.5) prior, i.e. the sign around the filter's median), identity straight-through,
fixed Kaiming scale sqrt(2 / fan_in). ``ratio=k`` selects the ternary pruning variant.

Paper's results: the bi-half models are reported against their sign-quantizer baselines on
CIFAR-10/100 and ImageNet; papers.md records the settings (below) but not the accuracy table,
so the cards carry no published figure.

=============  ==========================================================
Setting        recipe
=============  ==========================================================
CIFAR-10       100 ep, SGD 0.9, wd 1e-4, bs 128, lr 0.1 cosine
ImageNet R18/34  100 ep, SGD, wd 1e-4, bs 256, lr 0.1 x0.1 at 30/60/90
=============  ==========================================================

Unit (papers.md §4): sign -> binary conv -> PReLU -> BN -> + shortcut; Bi-Real downsampling
shortcuts (AvgPool 2x2 -> float 1x1 conv -> BN).

The authors' code (liyunqianggyn/Equal-Bits-BNN) releases no checkpoints, and its
``ImageNet/resnet.py`` does not run as published (the second conv of a block lacks its kernel
size, the first passes the stride as kernel size); repaired (3x3, padding 1) its ResNet-18
differs from Bi-Real's in five ways, each a builder option of ``equalbits-r18``/``-r34``
(defaults: Bi-Real's, one-padding for LCE's fast path):

=================  ===========  ==========================================================
option             authors'     what
=================  ===========  ==========================================================
``stem_prelu``     ``true``     a PReLU between the stem conv and its BN
``head_relu``      ``false``    no ReLU before the global pool
``padding``        ``zero``     binary convs pad with 0 (``one``: +1)
``conv_bias``      ``true``     a bias on every binary conv (their conv class's default)
``shared_prelu``   ``true``     one PReLU per block, applied after both of its convs
=================  ===========  ==========================================================

All five together give the authors' structure: 11,695,336 parameters at 1000 classes in their
code, which this model matches (its BN statistics aside). Their downsampling shortcut is 1x1 conv
-> BN -> 2x2 avg pool, equal in inference to edgebnn's pool -> conv -> BN. A bias on a binary
conv converts: LCE folds it into the LceBconv2d's output bias.

Interpretation: there is **no ResNet-20 in the Equal Bits repository** (its CIFAR nets are
ResNet-18/34). ``equalbits-r20`` is edgebnn's own reading of "the ResNet-20 of IR-Net" with
bi-half kernels: the same per-conv Bi-Real shortcuts, widths 16/32/64 (rounded to multiples of
16); it takes none of the authors' options above.

Deployment: ``edgebnn.converters.rewrites`` stores bi_half(w) as the kernel (+-s per filter), so
no sort reaches the flatbuffer and every binary conv becomes an ``LceBconv2d``; the ternary
variant bakes to a {-s, 0, +s} kernel that LCE keeps in float.

Ablation switch (builder option, ``--model-arg quantizer=sign``), to test the paper's claim that
equally distributed bits beat the plain sign: ``quantizer`` is ``bi-half`` (default) or ``sign``,
:class:`~edgebnn.models.quantizers.ScaledSign`: sign(w) with the same fixed scale sqrt(2 / fan_in)
and the same identity straight-through, so each filter's bit ratio follows its latent signs
instead of being 50/50. The sign kernel is baked the same way (+-s per filter, ``LceBconv2d``).
``ratio`` applies to bi-half only.
"""

from __future__ import annotations

import functools
import logging

from edgebnn.errors import UsageError
from edgebnn.models.lazy_imports import lazy_module
from edgebnn.models.resnet import bireal_resnet, residual_unit
from edgebnn.models.zoo import IMAGENET_NORMALIZATION
from edgebnn.registry import register_model

lq = lazy_module("larq")
keras = lazy_module("tf_keras")
quantizers = lazy_module("edgebnn.models.quantizers")

PAPER = "Li, Pintea, van Gemert, Equal Bits: Enforcing Equally Distributed Binary Network Weights, AAAI 2022"
QUANTIZERS = ("bi-half", "sign")  # the values of the builders' ``quantizer`` option
PADDINGS = {"one": 1.0, "zero": 0.0}
CIFAR_NORMALIZATION = {"mean": [125.3, 123.0, 113.9], "std": [63.0, 62.1, 66.7]}


def _kernel_quantizer(quantizer: str, ratio):
    """The weight quantizer for the ``quantizer`` option (see the module docstring)."""
    if quantizer == "bi-half":
        return quantizers.BiHalf(ratio=ratio)
    if ratio is not None:
        raise UsageError(f"ratio={ratio!r} needs quantizer='bi-half' (the sign quantizer has no ratio)")
    return quantizers.ScaledSign()


def _unit(ratio, quantizer: str = "bi-half", *, pad_value: float = 1.0, use_bias: bool = False):
    def unit(x, filters: int, kernel_size: int, strides: int, prelu=None):
        """sign -> bi-half (or sign) binary conv -> PReLU (``prelu``: a shared one) -> BN."""
        # Identity straight-through without a window: the latent weights are deliberately
        # unclipped, so larq's "no kernel_constraint" warning does not apply.
        larq_log = logging.getLogger("larq.layers_base")
        level = larq_log.level
        larq_log.setLevel(logging.ERROR)
        try:
            conv = lq.layers.QuantConv2D(
                filters, kernel_size, strides=strides, padding="same", pad_values=pad_value,
                input_quantizer="ste_sign", kernel_quantizer=_kernel_quantizer(quantizer, ratio), use_bias=use_bias,
            )
        finally:
            larq_log.setLevel(level)
        x = conv(x)
        x = (prelu or keras.layers.PReLU(shared_axes=[1, 2]))(x)
        return keras.layers.BatchNormalization(momentum=0.9)(x)

    return unit


def _shared_prelu_block(unit):
    """The authors' basic block: both units apply one PReLU (their ``self.nonlinear``)."""

    def block(x, filters: int, strides: int):
        shared = functools.partial(unit, prelu=keras.layers.PReLU(shared_axes=[1, 2]))
        x = residual_unit(x, shared, filters, 3, strides)
        return residual_unit(x, shared, filters, 3, 1)

    return block


def _check_quantizer(quantizer: str, name: str) -> None:
    if quantizer not in QUANTIZERS:
        raise UsageError(f"unknown quantizer {quantizer!r} for {name}: choose one of {', '.join(QUANTIZERS)}")


def _imagenet_entry(layout: str, name: str):
    def build(*, input_shape=(224, 224, 3), num_classes=1000, width: float = 1.0, ratio: float | None = None,
              quantizer: str = "bi-half", stem_prelu: bool = False, head_relu: bool = True, padding: str = "one",
              conv_bias: bool = False, shared_prelu: bool = False):
        """Build an Equal-Bits bi-half ResNet (see the module docstring).

        Args:
            input_shape: (H, W, C).
            num_classes: classes of the softmax output.
            width: multiplier of the stage widths.
            ratio: None for bi-half; the fraction of zeros for the ternary variant.
            quantizer: ``bi-half`` or the ``sign`` ablation (same scale and STE, no 50/50 split).
            stem_prelu: a PReLU between the stem conv and its BN (the authors').
            head_relu: a ReLU before the global pool (Bi-Real's; the authors' have none).
            padding: ``one`` (+1, LCE's fast path) or ``zero`` (the authors') for binary convs.
            conv_bias: a bias on every binary conv (the authors').
            shared_prelu: one PReLU per block, shared by both convs (the authors').

        Raises:
            UsageError: an unknown ``quantizer`` or ``padding``.
        """
        _check_quantizer(quantizer, name)
        if padding not in PADDINGS:
            raise UsageError(f"unknown padding {padding!r} for {name}: choose one of {', '.join(PADDINGS)}")
        unit = _unit(ratio, quantizer, pad_value=PADDINGS[padding], use_bias=conv_bias)
        return bireal_resnet(
            layout=layout, unit=unit, input_shape=input_shape, num_classes=num_classes, width=width, name=name,
            base=64, multiple=32, stem_prelu=stem_prelu, head_relu=head_relu,
            basic_block=_shared_prelu_block(unit) if shared_prelu else None,
        )

    return build


def _cifar_entry(layout: str, name: str):
    def build(*, input_shape=(32, 32, 3), num_classes=10, width: float = 1.0, ratio: float | None = None,
              quantizer: str = "bi-half"):
        """Build edgebnn's bi-half CIFAR ResNet-20 (see the module docstring; not the authors').

        Args:
            input_shape: (H, W, C).
            num_classes: classes of the softmax output.
            width: multiplier of the stage widths.
            ratio: None for bi-half; the fraction of zeros for the ternary variant.
            quantizer: ``bi-half`` or the ``sign`` ablation (same scale and STE, no 50/50 split).

        Raises:
            UsageError: an unknown ``quantizer``.
        """
        _check_quantizer(quantizer, name)
        return bireal_resnet(
            layout=layout, unit=_unit(ratio, quantizer), input_shape=input_shape, num_classes=num_classes,
            width=width, name=name, base=16, cifar_stem=True, multiple=16,
        )

    return build


AUTHORS_OPTIONS = "stem_prelu=true head_relu=false padding=zero conv_bias=true shared_prelu=true"
for _name, _layout in (("equalbits-r18", "resnet18"), ("equalbits-r34", "resnet34")):
    register_model(
        _name,
        family="equalbits",
        paper=PAPER,
        aliases=(_name.replace("-r", "-resnet"), _name.replace("-", "_")),
        recipe="equalbits-imagenet",
        preprocessing=IMAGENET_NORMALIZATION,
        notes="bi-half kernels are baked into +-s kernels before LCE conversion; the authors' block structure "
              f"with --model-arg {' --model-arg '.join(AUTHORS_OPTIONS.split())} (their ImageNet resnet.py does "
              "not run as published: no checkpoints, papers.md)",
    )(_imagenet_entry(_layout, _name.replace("-", "_")))

register_model(
    "equalbits-r20",
    family="equalbits",
    paper=PAPER,
    aliases=("equalbits-resnet20", "equalbits_r20"),
    input_shape=(32, 32, 3),
    num_classes=10,
    recipe="equalbits-cifar10",
    preprocessing=CIFAR_NORMALIZATION,
    notes="edgebnn's own CIFAR ResNet-20 with bi-half kernels: there is no ResNet-20 in the Equal Bits repository; "
          "bi-half kernels are baked into +-s kernels before LCE conversion",
)(_cifar_entry("resnet20", "equalbits_r20"))
