"""Tang, Hua, Wang: "How to Train a Compact Binary Neural Network with High Accuracy?" (AAAI 2017).

An AlexNet-class compact BNN built from the paper's five findings: PReLU absorbs the scale of
the (unscaled) binary weights; BN before each binary convolution; the bipolar regularizer
lambda * sum(1 - w^2) (:class:`~edgebnn.models.quantizers.BipolarRegularizer`, lambda 5e-7)
on latent weights clipped to [-1, 1] instead of L2; a scale layer before the output, because
a binary last layer alone has the wrong output range; and ``terms`` binarizations of the
activations (:class:`~edgebnn.models.quantizers.MultiBinaryConv2D`). The low learning rate
(1e-4, halved when the loss stalls) is the recipe's.

Paper's results: ImageNet, AlexNet-class network, a 1.23 MB model (189x compression); the
accuracy table is not in papers.md, so the card carries no published figure.

Interpretation (papers.md §2, from secondary sources, unconfirmed): layer order BN ->
sign -> binary conv -> PReLU; the lower layers widened (float conv1 11x11/4 with 128 channels
instead of 96, binary conv2 5x5 with 384 instead of 256); conv3-5 3x3 384/384/256; the fully
connected layers as binary 1x1 convolutions (LCE has no binary dense kernel) of widths 512,
512 and the classes, then a per-class scale and softmax. ``same`` padding and pooling, so
any input of 32x32 or more builds. The K-term scheme: x ~ sum_k a_k sign(r_k), one scale per
example and tensor; each term is one LceQuantize + LceBconv2d branch in LCE.

Ablation switch (builder option, ``--model-arg regularizer=false``), to test finding 3:
``regularizer`` (default true) puts the bipolar regularizer on every binary kernel; false leaves
the kernels without any regularizer *and* marks the binary layers ``recipe_bipolar=False`` (saved
in their config), so the recipe's ``bipolar_lambda`` (which ``edgebnn train`` adds to kernels
that carry no regularizer) is not added back: the loss has no bipolar term at all. Finding 1
(the low learning rate) is the recipe's ``lr``: ablate it with ``--lr`` or ``--set lr=...``.
"""

from __future__ import annotations

import functools

from edgebnn.models.lazy_imports import lazy_module
from edgebnn.models.resnet import scaled
from edgebnn.models.zoo import IMAGENET_NORMALIZATION
from edgebnn.registry import register_model

lq = lazy_module("larq")
keras = lazy_module("tf_keras")
quantizers = lazy_module("edgebnn.models.quantizers")
custom_layers = lazy_module("edgebnn.models.layers")

PAPER = "Tang, Hua, Wang, How to Train a Compact Binary Neural Network with High Accuracy?, AAAI 2017"


def binary_layer(x, filters: int, kernel_size: int, *, terms: int, lam: float, activation: bool = True,
                 regularizer: bool = True):
    """BN -> K-term binary conv (bipolar regularizer, weights clipped to [-1, 1]) -> PReLU.

    ``regularizer=False``: no regularizer, and the recipe's bipolar term is refused too.
    """
    x = keras.layers.BatchNormalization(momentum=0.9)(x)
    x = quantizers.MultiBinaryConv2D(
        filters, kernel_size, padding="same", pad_values=1.0, terms=terms,
        input_quantizer="ste_sign", kernel_quantizer="ste_sign", kernel_constraint="weight_clip",
        kernel_regularizer=quantizers.BipolarRegularizer(lam) if regularizer else None, use_bias=False,
        recipe_bipolar=regularizer,
    )(x)
    return keras.layers.PReLU(shared_axes=[1, 2])(x) if activation else x


@register_model(
    "tang2017-compact",
    family="tang2017",
    paper=PAPER,
    aliases=("tang2017", "compact-bnn"),
    recipe="tang2017",
    preprocessing=IMAGENET_NORMALIZATION,
    notes="layer order, widths and the K-term form are interpretations (papers.md §2)",
)
def tang2017_compact(*, input_shape=(224, 224, 3), num_classes=1000, width: float = 1.0,
                     terms: int = 1, lam: float = 5e-7, regularizer: bool = True):
    """Build the compact AlexNet-class BNN (see the module docstring).

    Args:
        input_shape: (H, W, C).
        num_classes: classes of the output.
        width: multiplier of every width (rounded to multiples of 32).
        terms: binarizations of each binary layer's input (K of the paper's finding 5).
        lam: the bipolar regularizer's lambda.
        regularizer: the bipolar regularizer; false drops it (and the recipe's, see the module
            docstring): the ablation of finding 3.
    """
    w = lambda c: scaled(c, width)  # noqa: E731
    binary = functools.partial(binary_layer, terms=terms, lam=lam, regularizer=bool(regularizer))
    pool = lambda t: keras.layers.MaxPooling2D(3, strides=2, padding="same")(t)  # noqa: E731
    inputs = keras.Input(shape=input_shape)
    x = keras.layers.Conv2D(w(128), 11, strides=4, padding="same", use_bias=False)(inputs)
    x = pool(keras.layers.PReLU(shared_axes=[1, 2])(x))
    x = pool(binary(x, w(384), 5))
    x = binary(x, w(384), 3)
    x = binary(x, w(384), 3)
    x = pool(binary(x, w(256), 3))
    x = keras.layers.Reshape((1, 1, -1))(keras.layers.Flatten()(x))
    x = binary(x, w(512), 1)
    x = binary(x, w(512), 1)
    x = binary(x, num_classes, 1, activation=False)
    x = keras.layers.Flatten()(custom_layers.ChannelScale()(x))
    outputs = keras.layers.Activation("softmax", dtype="float32")(x)
    return keras.Model(inputs, outputs, name="tang2017_compact")
