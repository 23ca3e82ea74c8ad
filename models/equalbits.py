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
shortcuts (AvgPool 2x2 -> float 1x1 conv -> BN). Interpretation: the ResNet-20 uses the same
per-conv Bi-Real shortcuts, widths 16/32/64 (rounded to multiples of 16).

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

import logging

from edgebnn.errors import UsageError
from edgebnn.models.lazy_imports import lazy_module
from edgebnn.models.resnet import bireal_resnet
from edgebnn.models.zoo import IMAGENET_NORMALIZATION
from edgebnn.registry import register_model

lq = lazy_module("larq")
keras = lazy_module("tf_keras")
quantizers = lazy_module("edgebnn.models.quantizers")

PAPER = "Li, Pintea, van Gemert, Equal Bits: Enforcing Equally Distributed Binary Network Weights, AAAI 2022"
QUANTIZERS = ("bi-half", "sign")  # the values of the builders' ``quantizer`` option
CIFAR_NORMALIZATION = {"mean": [125.3, 123.0, 113.9], "std": [63.0, 62.1, 66.7]}


def _kernel_quantizer(quantizer: str, ratio):
    """The weight quantizer for the ``quantizer`` option (see the module docstring)."""
    if quantizer == "bi-half":
        return quantizers.BiHalf(ratio=ratio)
    if ratio is not None:
        raise UsageError(f"ratio={ratio!r} needs quantizer='bi-half' (the sign quantizer has no ratio)")
    return quantizers.ScaledSign()


def _unit(ratio, quantizer: str = "bi-half"):
    def unit(x, filters: int, kernel_size: int, strides: int):
        """sign -> bi-half (or sign) binary conv -> PReLU -> BN."""
        # Identity straight-through without a window: the latent weights are deliberately
        # unclipped, so larq's "no kernel_constraint" warning does not apply.
        larq_log = logging.getLogger("larq.layers_base")
        level = larq_log.level
        larq_log.setLevel(logging.ERROR)
        try:
            conv = lq.layers.QuantConv2D(
                filters, kernel_size, strides=strides, padding="same", pad_values=1.0,
                input_quantizer="ste_sign", kernel_quantizer=_kernel_quantizer(quantizer, ratio), use_bias=False,
            )
        finally:
            larq_log.setLevel(level)
        x = conv(x)
        x = keras.layers.PReLU(shared_axes=[1, 2])(x)
        return keras.layers.BatchNormalization(momentum=0.9)(x)

    return unit


def _entry(layout: str, name: str, cifar: bool):
    def build(*, input_shape=(32, 32, 3) if cifar else (224, 224, 3), num_classes=10 if cifar else 1000,
              width: float = 1.0, ratio: float | None = None, quantizer: str = "bi-half"):
        """Build an Equal-Bits bi-half ResNet (see the module docstring).

        Args:
            input_shape: (H, W, C).
            num_classes: classes of the softmax output.
            width: multiplier of the stage widths.
            ratio: None for bi-half; the fraction of zeros for the ternary variant.
            quantizer: ``bi-half`` or the ``sign`` ablation (same scale and STE, no 50/50 split).

        Raises:
            UsageError: an unknown ``quantizer``.
        """
        if quantizer not in QUANTIZERS:
            raise UsageError(f"unknown quantizer {quantizer!r} for {name}: choose one of {', '.join(QUANTIZERS)}")
        return bireal_resnet(
            layout=layout, unit=_unit(ratio, quantizer), input_shape=input_shape, num_classes=num_classes,
            width=width, name=name, base=16 if cifar else 64, cifar_stem=cifar, multiple=16 if cifar else 32,
        )

    return build


for _name, _layout, _cifar in (("equalbits-r18", "resnet18", False), ("equalbits-r34", "resnet34", False),
                               ("equalbits-r20", "resnet20", True)):
    register_model(
        _name,
        family="equalbits",
        paper=PAPER,
        aliases=(_name.replace("-r", "-resnet"), _name.replace("-", "_")),
        input_shape=(32, 32, 3) if _cifar else (224, 224, 3),
        num_classes=10 if _cifar else 1000,
        recipe="equalbits-cifar10" if _cifar else "equalbits-imagenet",
        preprocessing=CIFAR_NORMALIZATION if _cifar else IMAGENET_NORMALIZATION,
        notes="bi-half kernels are baked into +-s kernels before LCE conversion",
    )(_entry(_layout, _name.replace("-", "_"), _cifar))
