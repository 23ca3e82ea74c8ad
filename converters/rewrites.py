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

And one for LCE itself: its zero-padded binary conv is wrong on maps smaller than the kernel,
so such a conv becomes the one-padded conv minus the padding's constant contribution
(:func:`correct_small_zero_padding`).
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


def _same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow's "same" padding (before, after) along one axis."""
    total = max((-(-size // stride) - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def small_zero_padded(layer) -> bool:
    """A zero-padded "same" binary conv whose input map is smaller than its kernel.

    LCE 0.16.0's zero-padded LceBconv2d disagrees with TensorFlow there (measured: 1x1 and 2x2
    maps under a 3x3 kernel; exact from 3x3 up).
    """
    if type(layer).__name__ != "QuantConv2D" or layer.padding != "same" or float(layer.pad_values) != 0.0 \
            or layer.input_quantizer is None or len(layer._inbound_nodes) != 1:
        return False
    height, width = layer.input_shape[1:3]
    return bool(height and width and (height < layer.kernel_size[0] or width < layer.kernel_size[1]))


def _make_corrected_layer():
    import larq as lq
    import tf_keras as keras

    class OnePaddedWithCorrection(keras.layers.Layer):
        """A zero-padded binary conv as a constant map minus a one-padded conv (conversion only).

        What the +1 padding adds does not depend on the input: at each output position it is
        the sum of the binary kernel taps that fall on the padding, a constant (H, W, C) map C.
        So conv_zero(x) = conv_one(x) - C = (bias - C) - conv_one(x; -kernel). The constant
        stands first on purpose: LCE 0.16.0 fuses ``bconv + constant`` (and ``bconv - constant``)
        into the bconv's per-channel bias without checking its shape, and the interpreter then
        fails to allocate; ``constant - bconv`` is left as a SUB op.
        """

        def __init__(self, source, **kwargs):
            super().__init__(name=source.name, **kwargs)
            config = source.get_config()
            # The activation (a fused ReLU, say) acts on the corrected sum, so it moves out of the conv.
            config.update(pad_values=1.0, name=f"{source.name}_one_padded", use_bias=False, kernel_quantizer=None,
                          kernel_constraint=None, kernel_regularizer=None, bias_regularizer=None,
                          bias_constraint=None, activation="linear")
            self.main = lq.layers.QuantConv2D.from_config(config)
            self.activation = source.activation
            self.map_shape = tuple(source.output_shape[1:])

        def build(self, input_shape):
            self.constant = self.add_weight("constant", self.map_shape, initializer="zeros", trainable=False)
            self.main.build(input_shape)
            super().build(input_shape)

        def call(self, inputs):
            return self.activation(self.constant - self.main(inputs))

    return OnePaddedWithCorrection


def _binary_kernel(layer):
    """The kernel ``layer`` computes with: its quantizer applied to the latent weights."""
    import tensorflow as tf

    latent = tf.constant(layer.get_weights()[0])
    return (layer.kernel_quantizer(latent) if layer.kernel_quantizer is not None else latent).numpy()


def _padding_correction(layer, kernel):
    """What +1 padding adds to ``layer``'s output: ``kernel`` over the padding alone."""
    import numpy as np
    import tensorflow as tf

    height, width, channels = layer.input_shape[1:]
    pads = [_same_padding(n, k, s) for n, k, s in zip((height, width), layer.kernel_size, layer.strides)]
    ones = np.ones((1, height + sum(pads[0]), width + sum(pads[1]), channels), "float32")
    ones[:, pads[0][0]:pads[0][0] + height, pads[1][0]:pads[1][0] + width] = 0.0  # 1 on the padding only
    return tf.nn.conv2d(ones, kernel, strides=layer.strides, padding="VALID").numpy()[0]


def correct_small_zero_padding(model):
    """A copy of ``model`` whose zero-padded binary convs on maps smaller than their kernel
    (:func:`small_zero_padded`) are one-padded convs minus a constant correction; None when it
    has none. Both compute the same; LCE converts the second exactly."""
    import tf_keras as keras

    if not any(small_zero_padded(layer) for layer in flat_layers(model)):
        return None
    corrected_class = _make_corrected_layer()
    replaced = {}

    def clone(layer):
        if small_zero_padded(layer):
            replaced[layer.name] = layer
            return corrected_class(layer)
        return layer.__class__.from_config(layer.get_config())

    new = keras.models.clone_model(model, clone_function=clone)
    for layer in new.layers:
        if layer.name in replaced:
            source = replaced[layer.name]
            kernel = _binary_kernel(source)
            layer.main.set_weights([-kernel])
            bias = source.bias.numpy() if source.use_bias else 0.0
            layer.constant.assign(bias - _padding_correction(source, kernel))
        elif layer.weights:
            layer.set_weights(model.get_layer(layer.name).get_weights())
    return new


# Rewrites, in order: fn(model) -> model or None (None: nothing to rewrite).
REWRITES = [bake_kernels, correct_small_zero_padding]


def prepare_for_lce(model):
    """Return ``model`` with every registered rewrite applied (the input is not modified)."""
    for rewrite in REWRITES:
        model = rewrite(model) or model
    return model
