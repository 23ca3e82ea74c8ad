"""The float twin of a BNN: the same architecture with every quantizer removed.

The baseline that latency and training-cost comparisons need (``edgebnn convert --to
tflite-float``, ``benchmarks/``): larq layers become their Keras parents with the same
configuration, zero padding instead of LCE's one-padding, and the latent weights as weights.
"""

from __future__ import annotations

QUANTIZER_KEYS = ("input_quantizer", "kernel_quantizer", "depthwise_quantizer", "pointwise_quantizer",
                  "kernel_constraint", "depthwise_constraint", "pointwise_constraint", "pad_values", "metrics")


def _float_layer(layer):
    import larq as lq

    if not isinstance(layer, lq.layers_base.QuantizerBase):
        return layer.__class__.from_config(layer.get_config())
    parent = next(c for c in type(layer).__mro__[1:] if c.__module__.startswith("tf_keras"))
    config = {k: v for k, v in layer.get_config().items() if k not in QUANTIZER_KEYS}
    return parent.from_config(config)


def float_twin(model):
    """Return a float copy of ``model``: larq layers replaced by their Keras parents.

    Weights are copied (latent weights for quantized kernels), so the twin is ready to run.
    Works for functional and sequential models (every Larq Zoo and edgebnn model).
    """
    import tf_keras as keras

    twin = keras.models.clone_model(model, clone_function=_float_layer)
    twin.set_weights(model.get_weights())
    return twin
