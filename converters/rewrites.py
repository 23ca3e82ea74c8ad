"""Rewrites applied before conversion so that paper quantizers reach LCE's binary kernels.

LCE turns a convolution into ``LceBconv2d`` only when its activations come from a sign-like
quantizer and every output channel of its kernel is +-s. A trained kernel quantizer is a fixed
function of the latent weights at inference, so its output can be stored as the layer's kernel
(with no quantizer left to run):

- :class:`~edgebnn.models.quantizers.BiHalf` (sort-based): the kernel becomes bi_half(w), +-s
  per filter; no sort reaches the flatbuffer. The ternary variant bakes to a {-s, 0, +s}
  kernel, which LCE keeps as a float conv, as the paper's pruning variant must.
- :class:`~edgebnn.models.quantizers.ScaledSign` (Equal Bits' sign ablation): the kernel becomes
  sign(w) * sqrt(2 / fan_in), +-s per filter.
- :class:`~edgebnn.models.quantizers.StateAwareSign` (SA-BNN, {+a+, -a-} per channel): not a
  +-s filter, so the layer is split into m*sign(w), a binary conv, plus b times the box sum of
  the same binarized input, with m = (a+ + a-)/2 and b = (a+ - a-)/2. The box sum has three
  forms verified with LCE 0.16.0 (``BOX_SUM_FORMS``); ``benchmarks/sabnn_rewrite_forms.py``
  measures them, and :data:`DEFAULT_BOX_SUM` is the fastest there.
"""

from __future__ import annotations

from edgebnn.errors import UsageError
from edgebnn.models.introspection import flat_layers, quantizer_class

# "float": pad the binarized input with its pad value, sum over channels, k x k average pool
#          times k*k (one LceBconv2d per layer, the box sum in float);
# "conv":  a second binary conv with all Cout channels, all-ones kernel, times b;
# "ones8": an all-ones binary conv with 8 output channels, channel 0 sliced, times b.
BOX_SUM_FORMS = ("float", "conv", "ones8")
DEFAULT_BOX_SUM = "float"


def needs_baking(model) -> bool:
    """Whether ``model`` has a layer whose kernel quantizer LCE cannot take as it is."""
    return any(quantizer_class(layer) in ("StateAwareSign", "BiHalf", "ScaledSign") for layer in flat_layers(model))


def _plain_binary_conv(layer, **changes):
    """A QuantConv2D with ``layer``'s configuration, no kernel quantizer or constraint."""
    import larq as lq

    config = layer.get_config()
    config.update(kernel_quantizer=None, kernel_constraint=None, kernel_regularizer=None, **changes)
    return lq.layers.QuantConv2D.from_config(config)


def _make_split_layer():
    import larq as lq
    import tensorflow as tf
    import tf_keras as keras

    class SplitAsymmetricConv(keras.layers.Layer):
        """m*sign(w) as a binary conv plus b * box sum of the binarized input (conversion only)."""

        def __init__(self, source, *, form: str, **kwargs):
            super().__init__(name=source.name, **kwargs)
            self.form = form
            self.main = _plain_binary_conv(source, name=f"{source.name}_sign")
            self.filters = source.filters
            self.kernel_size = tuple(source.kernel_size)
            self.strides = tuple(source.strides)
            self.padding = source.padding
            self.pad_values = float(source.pad_values)
            self.sign = lq.quantizers.get(source.input_quantizer) if source.input_quantizer else None
            if form in ("conv", "ones8"):
                self.box = _plain_binary_conv(
                    source, name=f"{source.name}_box", filters=source.filters if form == "conv" else 8, use_bias=False
                )

        def build(self, input_shape):
            self.b = self.add_weight("b", (self.filters,), initializer="zeros", trainable=False)
            self.main.build(input_shape)
            if self.form != "float":
                self.box.build(input_shape)
            super().build(input_shape)

        def call(self, inputs):
            outputs = self.main(inputs)
            if self.form == "conv":
                box = self.box(inputs)
            elif self.form == "ones8":
                box = self.box(inputs)[..., :1]
            else:
                x = self.sign(inputs) if self.sign is not None else inputs
                if self.padding == "same":
                    x = tf.pad(x, self.main._get_padding_same(x), constant_values=self.pad_values)
                x = tf.reduce_sum(x, axis=-1, keepdims=True)
                box = tf.nn.avg_pool2d(x, self.kernel_size, self.strides, "VALID")
                box = box * float(self.kernel_size[0] * self.kernel_size[1])
            return outputs + box * self.b

    return SplitAsymmetricConv


def bake_kernels(model, *, box_sum: str | None = None):
    """A copy of ``model`` whose BiHalf, ScaledSign and StateAwareSign kernels are baked for LCE.

    Args:
        model: a Keras model (not modified).
        box_sum: the SA-BNN box-sum form, one of :data:`BOX_SUM_FORMS` (default
            :data:`DEFAULT_BOX_SUM`).

    Returns:
        The rewritten model, or None when there is nothing to bake (the rewrite hook's
        convention: the model is used as it is).
    """
    import numpy as np
    import tf_keras as keras

    from edgebnn.models.quantizers import asymmetric_parts, bi_half, scaled_sign

    form = box_sum or DEFAULT_BOX_SUM
    if form not in BOX_SUM_FORMS:
        raise UsageError(f"unknown box-sum form {form!r}: choose one of {', '.join(BOX_SUM_FORMS)}")
    if not needs_baking(model):
        return None
    split_class = _make_split_layer()
    baked = {}  # layer name -> weights of the replacement

    def clone(layer):
        kind = quantizer_class(layer)
        if kind == "BiHalf":
            latent, *rest = layer.get_weights()
            kernel = bi_half(latent, ratio=layer.kernel_quantizer.ratio).numpy()
            baked[layer.name] = [kernel, *rest]
            return _plain_binary_conv(layer)
        if kind == "ScaledSign":
            latent, *rest = layer.get_weights()
            baked[layer.name] = [scaled_sign(latent).numpy(), *rest]
            return _plain_binary_conv(layer)
        if kind == "StateAwareSign":
            q = layer.kernel_quantizer
            m, b = (t.numpy() for t in asymmetric_parts(q.a_plus, q.a_minus))
            signs = np.where(layer.kernel.latent_variable.numpy() >= 0, 1.0, -1.0).astype("float32")
            bias = [layer.bias.numpy()] if layer.use_bias else []
            if not np.any(b):  # a+ = a-: already a +-m kernel
                baked[layer.name] = [signs * m, *bias]
                return _plain_binary_conv(layer)
            box = []
            if form != "float":
                box = [np.ones(layer.kernel.shape[:-1] + (layer.filters if form == "conv" else 8,), "float32")]
            baked[layer.name] = ("split", [b.astype("float32")], [signs * m, *bias], box)
            return split_class(layer, form=form)
        return layer.__class__.from_config(layer.get_config())

    new = keras.models.clone_model(model, clone_function=clone)
    for layer in new.layers:
        if layer.name in baked:
            weights = baked[layer.name]
            if isinstance(weights, tuple):
                _, b, main, box = weights
                layer.b.assign(b[0])
                layer.main.set_weights(main)
                if box:
                    layer.box.set_weights(box)
            else:
                layer.set_weights(weights)
        elif layer.weights:
            layer.set_weights(model.get_layer(layer.name).get_weights())
    return new


# Per-family rewrites: fn(model) -> model or None (None: nothing to rewrite).
REWRITES = [bake_kernels]


def prepare_for_lce(model):
    """Return ``model`` with every registered rewrite applied (the input is not modified)."""
    for rewrite in REWRITES:
        model = rewrite(model) or model
    return model
