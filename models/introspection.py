"""Layer introspection shared by training, the converters and the statistics.

The one place that walks a model's layers and the one door to Keras' private attributes
(``_inbound_nodes``, ``_outbound_nodes``): flat layer walks with nested models expanded,
"is this a binary layer", a layer's kernel quantizer, and its graph neighbours.
"""

from __future__ import annotations

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


def is_binary(layer) -> bool:
    """A larq layer whose main weights are quantized to 1 bit."""
    return precision(kernel_quantizer(layer)) == 1


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
