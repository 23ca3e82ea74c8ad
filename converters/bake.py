"""A Keras model with its quantized kernels baked: ``kernel = quantizer(latent kernel)``.

For tools that read weights without running larq's quantizers (``edgebnn convert --to
keras``): the layers and their configuration stay the same, only the stored kernels change
from the latent float weights to the values inference uses (+-1, or +-s per channel).
"""

from __future__ import annotations

QUANTIZED_WEIGHTS = {"kernel": "kernel_quantizer", "depthwise_kernel": "depthwise_quantizer",
                     "pointwise_kernel": "pointwise_quantizer"}


def bake(model):
    """Return a copy of ``model`` whose quantized kernels hold their quantized values."""
    import numpy as np
    import tf_keras as keras

    from edgebnn.converters.explain import flat_layers

    baked = keras.models.clone_model(model)
    baked.set_weights(model.get_weights())
    for layer in flat_layers(baked):
        for attr, key in QUANTIZED_WEIGHTS.items():
            quantizer, weight = getattr(layer, key, None), getattr(layer, attr, None)
            if quantizer is not None and weight is not None:
                weight.assign(np.asarray(quantizer(weight.value())))
    return baked
