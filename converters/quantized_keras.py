"""``edgebnn convert --to keras``: the same layers, with each quantized kernel holding its quantized values
(+-1, or +-s per channel), for tools that read weights without running larq."""

from __future__ import annotations

from edgebnn.models.introspection import QUANTIZED_WEIGHTS, flat_layers


def quantized_keras(model):
    """Return a copy of ``model`` whose quantized kernels hold their quantized values."""
    import numpy as np
    import tf_keras as keras

    baked = keras.models.clone_model(model)
    baked.set_weights(model.get_weights())
    for layer in flat_layers(baked):
        for attr, key in QUANTIZED_WEIGHTS.items():
            quantizer, weight = getattr(layer, key, None), getattr(layer, attr, None)
            if quantizer is not None and weight is not None:
                weight.assign(np.asarray(quantizer(weight.value())))
    return baked
