"""Layer introspection shared by training, the converters and the statistics.

The one place that walks a model's layers and the one door to Keras' private attributes
(``_inbound_nodes``, ``_outbound_nodes``): flat layer walks with nested models expanded,
"is this a binary layer", a layer's kernel quantizer and its bit width, and its graph neighbours.

A quantizer's bit width is the ``precision`` it declares (larq's and edgebnn's quantizers do).
A plain function declares none (LCE's own tests binarize with
``lambda x: tf.where(x >= 0, 1.0, -1.0)``), so :func:`bit_width` probes it on a few values:
exactly +-v everywhere is 1 bit (LCE turns such a layer into ``LceBconv2d``), the identity is
float; anything else cannot be classified and is reported as unknown, never guessed.
"""

from __future__ import annotations

import weakref

# A larq layer's quantized main weight -> the attribute of its quantizer.
QUANTIZED_WEIGHTS = {"kernel": "kernel_quantizer", "depthwise_kernel": "depthwise_quantizer",
                     "pointwise_kernel": "pointwise_quantizer"}


def flat_layers(model) -> list:
    """Every leaf layer of ``model`` (nested models expanded), in model order."""
    found = []
    for layer in model.layers:
        found += flat_layers(layer) if hasattr(layer, "layers") else [layer]
    return found


def nested_models(model) -> list:
    """The models nested in ``model``, at any depth."""
    found = []
    for layer in model.layers:
        if hasattr(layer, "layers"):
            found += [layer, *nested_models(layer)]
    return found


def kernel_quantizer(layer):
    """The quantizer of a layer's main weights (kernel, or depthwise kernel), or None."""
    for key in ("kernel_quantizer", "depthwise_quantizer"):
        q = getattr(layer, key, None)
        if q is not None:
            return q
    return None


def precision(quantizer) -> int | None:
    """The bit width a larq quantizer declares (None for none, or one that declares none)."""
    return getattr(quantizer, "precision", None) if quantizer is not None else None


FLOAT_BITS = 32
PROBE = tuple(x / 10 for x in range(-20, 21))  # -2.0 ... 2.0, zero included (ties matter for signs)
_probed: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def probe_bit_width(quantizer) -> int | None:
    """What ``quantizer`` does to :data:`PROBE`: 1 when every output is +-v (v > 0), 32 for the
    identity, None when it is neither or fails on a 1-D float tensor."""
    import numpy as np
    import tensorflow as tf

    x = np.asarray(PROBE, dtype="float32")
    try:
        y = np.asarray(quantizer(tf.constant(x)), dtype="float64")
    except Exception:  # a quantizer written for other shapes or types: not classifiable here
        return None
    if y.shape != x.shape or not np.all(np.isfinite(y)):
        return None
    if np.allclose(y, x, rtol=0, atol=1e-7):
        return FLOAT_BITS
    magnitudes = np.unique(np.abs(y))
    return 1 if len(magnitudes) == 1 and magnitudes[0] > 0 else None


def bit_width(quantizer) -> int | None:
    """The bit width of a quantizer: 32 without one, its declared ``precision``, else probed
    (:func:`probe_bit_width`); None when edgebnn cannot classify it."""
    if quantizer is None:
        return FLOAT_BITS
    declared = precision(quantizer)
    if isinstance(declared, int):
        return declared
    if not callable(quantizer):
        return None
    try:
        return _probed[quantizer]
    except (KeyError, TypeError):
        pass
    found = probe_bit_width(quantizer)
    try:
        _probed[quantizer] = found
    except TypeError:  # not weakly referenceable: probed again next time
        pass
    return found


def unclassified_quantizers(layer) -> list[str]:
    """The attributes of ``layer`` (``input_quantizer``, ``kernel_quantizer``...) holding a
    quantizer whose bit width edgebnn cannot tell."""
    keys = ("input_quantizer", *QUANTIZED_WEIGHTS.values())
    return [key for key in keys if getattr(layer, key, None) is not None and bit_width(getattr(layer, key)) is None]


def quantizer_name(quantizer) -> str:
    """A quantizer as a user wrote it: a class name, or a function's name."""
    if quantizer is None:
        return "None"
    return getattr(quantizer, "__name__", None) or type(quantizer).__name__


def is_binary(layer) -> bool:
    """A larq layer whose main weights are quantized to 1 bit (declared, or probed for a function)."""
    return bit_width(kernel_quantizer(layer)) == 1 if kernel_quantizer(layer) is not None else False


def binary_layers(model) -> list:
    """The binary layers of ``model`` (nested models included), in model order."""
    return [layer for layer in flat_layers(model) if is_binary(layer)]


def binary_layer_names(model) -> list[str]:
    return [layer.name for layer in binary_layers(model)]


def binary_kernel_layers(model) -> dict:
    """The binary layers that have a ``kernel`` (whose flips and decay training tracks), by name."""
    return {layer.name: layer for layer in binary_layers(model) if hasattr(layer, "kernel")}


def quantizer_class(layer) -> str:
    """The class name of a layer's kernel quantizer (``"NoneType"`` without one)."""
    return type(getattr(layer, "kernel_quantizer", None)).__name__


def inbound_layers(layer) -> list:
    """For each call of ``layer``, the layer(s) feeding it (a list for multi-input calls)."""
    return [node.inbound_layers for node in layer._inbound_nodes]


def outbound_layers(layer) -> list:
    """The layers that consume ``layer``'s outputs."""
    return [node.outbound_layer for node in layer._outbound_nodes]


def non_float32_layer(model):
    """The first layer (the model itself included) computing in another dtype than float32, or None.

    LCE converts float32 models only: a float16 or mixed-precision policy must be cast first.
    """
    for layer in [model, *flat_layers(model)]:
        policy = getattr(layer, "dtype_policy", None)
        if getattr(policy, "name", "float32") != "float32" and getattr(policy, "compute_dtype", "float32") != "float32":
            return layer
        if any(getattr(w.dtype, "name", str(w.dtype)).startswith("float16") for w in getattr(layer, "weights", [])):
            return layer
    return None
