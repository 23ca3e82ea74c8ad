"""Small Keras layers the paper models share, registered so that saved models load again."""

from __future__ import annotations

import larq as lq
import tensorflow as tf
import tf_keras as keras

register = lq.utils.register_keras_custom_object


class _PerChannel(keras.layers.Layer):
    """A layer with one learnable value per channel (the last axis)."""

    initial_value = 0.0

    def build(self, input_shape):
        self.value = self.add_weight(
            "value", (int(input_shape[-1]),), initializer=keras.initializers.Constant(self.initial_value),
            constraint=self._constraint(),
        )
        super().build(input_shape)

    def _constraint(self):
        return None


@register
class LearnableBias(_PerChannel):
    """x + beta, one learnable shift per channel (ReActNet's and BNext's "move")."""

    def call(self, inputs):
        return inputs + self.value


@register
class ChannelScale(_PerChannel):
    """x * gamma, one learnable scale per channel (Tang et al.'s scale layer before the output)."""

    initial_value = 1.0

    def call(self, inputs):
        return inputs * self.value


@register
class Recouple(_PerChannel):
    """BNext's Info-Recoupling mix: s * a + (1 - s) * b, s per channel, starts at 0.5, kept in [0, 1]."""

    initial_value = 0.5

    def _constraint(self):
        return UnitInterval()

    def build(self, input_shape):
        super().build(input_shape[0])

    def call(self, inputs):
        a, b = inputs
        return self.value * a + (1.0 - self.value) * b

    def compute_output_shape(self, input_shape):
        return input_shape[0]


@register
class UnitInterval(keras.constraints.Constraint):
    """Keeps a weight in [0, 1]."""

    def __call__(self, w):
        return tf.clip_by_value(w, 0.0, 1.0)


@register
class ChannelGroupMean(keras.layers.Layer):
    """Mean over groups of consecutive channels: C -> C / groups, parameter free.

    The real-valued shortcut of a binary 1x1 conv that reduces the width (SA-BNN ResNet-50).
    """

    def __init__(self, groups: int, **kwargs):
        super().__init__(**kwargs)
        self.groups = int(groups)

    def call(self, inputs):
        shape = tf.shape(inputs)
        channels = inputs.shape[-1]
        grouped = tf.reshape(inputs, tf.concat([shape[:-1], [channels // self.groups, self.groups]], 0))
        return tf.reduce_mean(grouped, axis=-1)

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], input_shape[-1] // self.groups)

    def get_config(self):
        return {**super().get_config(), "groups": self.groups}


@register
class Rotate180(keras.layers.Layer):
    """The image turned by 180 degrees (height and width reversed): one REVERSE_V2 op in TFLite.

    At a BNext model's input, with every 3x3 kernel turned the same way, it makes TensorFlow's
    "same" stride-2 padding (bottom/right only) see what PyTorch's symmetric padding sees (see
    ``edgebnn.models.bnext_weights``); the global pool before the classifier undoes the turn.
    """

    def call(self, inputs):
        return tf.reverse(inputs, axis=[1, 2])
