"""int8 for the float parts of a BNN, calibrated on a representative dataset.

LCE 0.16's ``convert_keras_model`` has no representative-dataset argument: it quantizes a
tensor to int8 only where the graph carries its range in a fake-quantization op (the
quantization-aware-training path), and ``experimental_default_int8_range`` gives one range to
every tensor without one (LCE warns it is meant for latency tests only). So edgebnn does
post-training calibration itself: it runs the Keras model on the representative inputs,
records each layer's output range, and rebuilds the model with a
``fake_quant_with_min_max_args`` after every layer output (and the input), except outputs that
only feed a BatchNormalization or a ReLU, whose fusion into the preceding convolution a
fake-quant would block. The converter then emits int8 kernels for the float layers; binary
layers stay ``LceBconv2d`` and take or give int8 tensors directly.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf
import tf_keras as keras

FUSED_ACTIVATIONS = ("relu", "relu6", "linear")


def has_fake_quant(model) -> bool:
    """Whether ``model``'s graph already carries int8 ranges in fake-quantization ops (a model
    trained with quantization-aware training): then no representative dataset is needed."""
    spec = tf.TensorSpec((1, *model.input_shape[1:]), tf.float32)
    graph = tf.function(lambda x: model(x, training=False)).get_concrete_function(spec).graph
    return any(op.type.startswith("FakeQuantWithMinMax") for op in graph.get_operations())


def calibrate(model, inputs: np.ndarray, *, batch_size: int = 8) -> dict[str, tuple[float, float]]:
    """Output range of every layer (and of the input, under ``"__input__"``) on ``inputs``."""
    layers = [l for l in model.layers if type(l).__name__ != "InputLayer" and not isinstance(l.output, list)]
    probe = keras.Model(model.inputs, [l.output for l in layers])
    outputs = probe.predict(inputs, batch_size=batch_size, verbose=0)
    outputs = outputs if isinstance(outputs, list) else [outputs]
    ranges = {"__input__": _range(inputs)}
    for layer, out in zip(layers, outputs):
        ranges[layer.name] = _range(out)
    return ranges


def _range(values) -> tuple[float, float]:
    # int8 ranges must contain zero (TFLite's quantization spec).
    return float(min(0.0, np.min(values))), float(max(0.0, np.max(values), np.min(values) + 1e-6))


def _fuses_into(consumer) -> bool:
    kind = type(consumer).__name__
    if kind == "BatchNormalization" or kind == "ReLU":
        return True
    return kind == "Activation" and getattr(consumer.activation, "__name__", "") in FUSED_ACTIVATIONS


def _feeds_only_fused(layer) -> bool:
    consumers = [node.outbound_layer for node in layer._outbound_nodes]
    return bool(consumers) and all(_fuses_into(c) for c in consumers)


def with_fake_quant(model, ranges: dict[str, tuple[float, float]]):
    """A model computing like ``model`` with int8 fake-quantization at the calibrated ranges.

    The layers (and their weights) are shared with ``model``, not copied.
    """
    class FakeQuantAfter(keras.layers.Layer):
        """Runs a layer, then fake-quantizes its output to int8 at a fixed range."""

        def __init__(self, inner, lo, hi):
            super().__init__(name=inner.name)
            self.inner, self.lo, self.hi = inner, lo, hi

        def call(self, *args, **kwargs):
            return tf.quantization.fake_quant_with_min_max_args(self.inner(*args, **kwargs), self.lo, self.hi)

    def wrap(layer):
        if layer.name not in ranges or _feeds_only_fused(layer):
            return layer
        return FakeQuantAfter(layer, *ranges[layer.name])

    inner = keras.models.clone_model(model, clone_function=wrap)
    lo, hi = ranges["__input__"]
    inputs = keras.Input(shape=model.input_shape[1:], name="input")
    x = keras.layers.Lambda(lambda t: tf.quantization.fake_quant_with_min_max_args(t, lo, hi), name="input_int8")(inputs)
    return keras.Model(inputs, inner(x), name=model.name)
