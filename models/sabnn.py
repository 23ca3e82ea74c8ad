"""SA-BNN: State-Aware Binary Neural Network (Liu et al., AAAI 2021).

Bi-Real-style ResNet-18/34 and a bottleneck ResNet-50 whose binary convolutions use the
state-aware weight quantizer :class:`~edgebnn.models.quantizers.StateAwareSign`: learnable
per-output-channel scales a+ and a- for the two weight states, and state-dependent gradient
coefficients for the latent weights, which the paper argues reduce frequent weight flips.

Paper's ImageNet results (top-1, %):

=========  =====  ======================
Backbone   SA-BNN  recipe (Adam, wd 0)
=========  =====  ======================
ResNet-18  61.7   95 ep, bs 256, lr 1e-3
ResNet-34  65.5   90 ep, bs 256, lr 1e-3
ResNet-50  68.7   70 ep, bs 64, lr 5e-4
=========  =====  ======================

Interpretation (papers.md §1, the exact equation is unconfirmed): forward q(w) = +a+ for
w >= 0 and -a- for w < 0; backward dL/dw = a+ * dL/dq (w >= 0) or a- * dL/dq (w < 0) inside
|w| <= 1; a+ and a- start at 1. Unit: sign (clipped STE) -> binary conv (one-padding) -> BN,
plus a real shortcut. The ResNet-50 layout is edgebnn's: bottleneck blocks (1x1 reduce, 3x3,
1x1 expand, all binary) with a real shortcut around each conv that needs no float conv (channel
-group mean for the reduce, repetition for the expand, 2x2 average pool for the stride).

Deployment: the {+a+, -a-} kernel is not +-s per channel; ``edgebnn.converters.rewrites`` splits
each layer into m*sign(w) as an ``LceBconv2d`` plus b times the box sum of the binarized input
(the fastest verified form), so every binary conv still runs on LCE's binary kernel.

Ablation switches (builder options, ``--model-arg KEY=VALUE``), to test the paper's claim that
the state-aware gradient reduces weight flips and helps accuracy:

- ``state_aware`` (default true): false keeps the same learnable a+ and a- in the forward pass,
  but the latent weights get an ordinary clipped STE, dL/dw = dL/dq * 1{|w| <= 1}, with no
  per-state coefficient.
- ``tied`` (default false): true ties the two states to one learnable scale a per output
  channel (a+ = a- = a, one variable), i.e. an ordinary scaled sign a * sign(w).

Both ablations save, load and deploy like the default: with ``tied`` the rewrite finds
a+ - a- = 0 and bakes a plain +-a kernel (no box sum); every binary conv is an ``LceBconv2d``.
"""

from __future__ import annotations

import functools

from edgebnn.models.lazy_imports import lazy_module
from edgebnn.models.resnet import bireal_resnet
from edgebnn.models.zoo import IMAGENET_NORMALIZATION
from edgebnn.registry import register_model

lq = lazy_module("larq")
keras = lazy_module("tf_keras")
quantizers = lazy_module("edgebnn.models.quantizers")

PAPER = "Liu et al., SA-BNN: State-Aware Binary Neural Network, AAAI 2021"


def sabnn_unit(x, filters: int, kernel_size: int, strides: int, *, state_aware: bool = True, tied: bool = False):
    """sign -> state-aware binary conv -> BN (``state_aware``, ``tied``: the module's ablations)."""
    x = lq.layers.QuantConv2D(
        filters, kernel_size, strides=strides, padding="same", pad_values=1.0,
        input_quantizer="ste_sign", kernel_quantizer=quantizers.StateAwareSign(state_aware=state_aware, tied=tied),
        kernel_constraint="weight_clip", use_bias=False,
    )(x)
    return keras.layers.BatchNormalization(momentum=0.9)(x)


def _entry(layout: str, name: str):
    def build(*, input_shape=(224, 224, 3), num_classes=1000, width: float = 1.0, state_aware: bool = True,
              tied: bool = False):
        """Build SA-BNN on a Bi-Real-style ResNet (see the module docstring).

        Args:
            input_shape: (H, W, C).
            num_classes: classes of the softmax output.
            width: multiplier of the stage widths (64, 128, 256, 512), rounded to 32s.
            state_aware: the state-aware latent gradient; false: a plain clipped STE (ablation).
            tied: one scale for both weight states, a+ = a- (ablation).
        """
        unit = functools.partial(sabnn_unit, state_aware=bool(state_aware), tied=bool(tied))
        return bireal_resnet(layout=layout, unit=unit, input_shape=input_shape,
                             num_classes=num_classes, width=width, name=name)

    return build


for _layer_count, _top1 in ((18, 61.7), (34, 65.5), (50, 68.7)):
    register_model(
        f"sabnn-r{_layer_count}",
        family="sabnn",
        paper=PAPER,
        aliases=(f"sabnn_resnet{_layer_count}", f"sabnn-resnet{_layer_count}"),
        recipe=f"sabnn-r{_layer_count}",
        published={"imagenet_top1": _top1},
        preprocessing=IMAGENET_NORMALIZATION,
        notes="state-aware gradient is an interpretation (papers.md §1); the asymmetric kernel is "
        "split into a binary conv plus a box sum before LCE conversion",
    )(_entry(f"resnet{_layer_count}", f"sabnn_r{_layer_count}"))
