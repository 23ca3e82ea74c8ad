"""The float twin of a BNN: the same architecture with every quantizer removed.

The baseline that latency and training-cost comparisons need (``edgebnn convert --to
tflite-float``, ``benchmarks/``): larq layers become their Keras parents with the same
configuration, zero padding instead of LCE's one-padding, and the latent weights as weights.
Weights that belong to a quantizer (SA-BNN's a+ and a-) have no place in the twin and are left out.
"""

from __future__ import annotations

import inspect

# Config keys of Keras' base Layer, passed through **kwargs and so absent from signatures.
LAYER_KEYS = ("name", "trainable", "dtype", "batch_input_shape")


def _float_layer(layer):
    import larq as lq

    if not isinstance(layer, lq.layers_base.QuantizerBase):
        return layer.__class__.from_config(layer.get_config())
    parent = next(c for c in type(layer).__mro__[1:] if c.__module__.startswith("tf_keras"))
    # Keep only what the Keras parent takes: drops the quantizers, pad_values, metrics and the
    # options of edgebnn's own subclasses (MultiBinaryConv2D's ``terms``).
    accepted = set(inspect.signature(parent.__init__).parameters) | set(LAYER_KEYS)
    return parent.from_config({k: v for k, v in layer.get_config().items() if k in accepted})


def _short(weight) -> str:
    return weight.name.split("/")[-1]


def float_twin(model):
    """Return a float copy of ``model``: larq layers replaced by their Keras parents.

    Weights are copied by name, layer by layer (latent weights for quantized kernels), so the
    twin is ready to run. Works for functional and sequential models (every Larq Zoo and
    edgebnn model).
    """
    import tf_keras as keras

    from edgebnn.models.introspection import flat_layers

    twin = keras.models.clone_model(model, clone_function=_float_layer)
    for source, target in zip(flat_layers(model), flat_layers(twin), strict=True):
        if not target.weights:
            continue
        by_name = {_short(w): w for w in source.weights}
        target.set_weights([by_name[_short(w)].numpy() for w in target.weights])
    return twin
