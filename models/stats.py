"""Model statistics: binary and float parameters, MACs and memory, and their cache.

Counted by the rules of larq's profiler (``larq.models.ModelProfile``, larq 0.14; a test
compares the two), but here: larq's profiler fails on a quantizer that declares no precision
(a plain function such as ``lambda x: tf.where(x >= 0, 1.0, -1.0)``, which LCE converts), and
statistics must never block a conversion. Every quantizer is classified by
:func:`edgebnn.models.introspection.bit_width`; a weight or MAC whose quantizer cannot be
classified is counted as unknown, and its layer is named.

This module imports no TensorFlow: ``edgebnn models`` answers from the cache without it.
"""

from __future__ import annotations

import inspect
import json
import os
from pathlib import Path

import edgebnn
from edgebnn import atomic
from edgebnn.models.introspection import FLOAT_BITS, bit_width, flat_layers, unclassified_quantizers
from edgebnn.registry import create_model
from edgebnn.run.rundir import sha256_of


def _weight_bits(weight) -> int | None:
    # A larq QuantizedVariable carries its quantizer; any other weight is float.
    if not hasattr(weight, "latent_variable"):
        return FLOAT_BITS
    declared = getattr(weight, "precision", None)
    return declared if isinstance(declared, int) else bit_width(getattr(weight, "quantizer", None))


def _output_pixels(layer) -> int | None:
    """Pixels of one output feature map (1 for a dense layer), as larq counts them; None when
    the layer has no single static output shape."""
    try:
        shape = layer.output_shape
    except (AttributeError, RuntimeError):
        return None
    if isinstance(shape, list):
        if len(shape) != 1:
            return None
        shape = shape[0]
    spatial = tuple(shape[1:-1])
    if any(d is None for d in spatial) or len(shape) not in (2, 3, 4):
        return None
    pixels = 1
    for d in spatial:
        pixels *= int(d)
    return pixels


def _counted_weights(layer) -> list:
    """The weights larq counts: a BatchNorm's beta and gamma fold into its moving statistics."""
    weights = list(layer.weights)
    if type(layer).__name__ == "BatchNormalization":
        names = [w.name.split("/")[-1].replace(":0", "") for w in weights]
        for kept, folded in (("beta", "moving_mean"), ("gamma", "moving_variance")):
            if kept in names and folded in names:
                weights = [w for w, n in zip(weights, names) if n != kept]
                names = [n for n in names if n != kept]
    return weights


def model_stats(model) -> dict:
    """Parameter, MAC and memory counts of a Keras model.

    Binary means 1-bit: a parameter whose quantizer has 1-bit precision (declared, or probed
    for a plain function), a MAC whose two operands are both 1-bit.

    Returns:
        A JSON-ready dict: ``params``, ``binary_params``, ``float_params``, ``unknown_params``,
        ``binary_macs``, ``float_macs``, ``unknown_macs``, ``binary_mac_share`` (of all counted
        MACs), ``ops``, ``memory_bytes`` (weights at their bit widths, unknown ones at 32),
        ``float_memory_bytes`` (all weights at 32 bits) and ``unknown_layers`` (layers with a
        quantizer edgebnn cannot classify, e.g. ``{"name": "input_quantizer"}``).
    """
    import tf_keras as keras

    mac_layers = (keras.layers.Conv2D, keras.layers.SeparableConv2D, keras.layers.DepthwiseConv2D,
                  keras.layers.Dense, keras.layers.Conv1D, keras.layers.SeparableConv1D)
    params = int(model.count_params())
    binary_params = unknown_params = 0
    macs = {1: 0, FLOAT_BITS: 0, None: 0}
    memory_bits = float_memory_bits = 0
    unknown_layers = {}
    for layer in flat_layers(model):
        unclassified = unclassified_quantizers(layer)
        if unclassified:
            unknown_layers[layer.name] = ", ".join(unclassified)
        weights = _counted_weights(layer)
        bits = [_weight_bits(w) for w in weights]
        counts = [int(w.shape.num_elements() or 0) for w in weights]
        for b, n in zip(bits, counts):
            binary_params += n if b == 1 else 0
            unknown_params += n if b is None else 0
            memory_bits += n * (b or FLOAT_BITS)
            float_memory_bits += n * FLOAT_BITS
        pixels = _output_pixels(layer) if isinstance(layer, mac_layers) else None
        if not pixels:
            continue
        quantizer = getattr(layer, "input_quantizer", None)
        input_bits = bit_width(quantizer) if quantizer is not None else FLOAT_BITS
        for w, b, n in zip(weights, bits, counts):
            if "bias" in w.name:
                continue
            operands = max(input_bits, b) if input_bits is not None and b is not None else None
            macs[1 if operands == 1 else (None if operands is None else FLOAT_BITS)] += n * pixels
    all_macs = sum(macs.values())
    return {
        "params": params,
        "binary_params": binary_params,
        "float_params": params - binary_params - unknown_params,
        "unknown_params": unknown_params,
        "binary_macs": macs[1],
        "float_macs": macs[FLOAT_BITS],
        "unknown_macs": macs[None],
        "binary_mac_share": round(macs[1] / all_macs, 4) if all_macs else 0.0,
        # BNext's "OPs": binary MACs / 64 + float MACs.
        "ops": int(macs[1] / 64 + macs[FLOAT_BITS]),
        "memory_bytes": int(memory_bits / 8),
        "float_memory_bytes": int(float_memory_bits / 8),
        "unknown_layers": unknown_layers,
    }


def cache_path(cache_dir=None) -> Path:
    """The statistics cache of this edgebnn version (``~/.cache/edgebnn`` or ``$EDGEBNN_CACHE``)."""
    root = Path(cache_dir or os.environ.get("EDGEBNN_CACHE") or Path.home() / ".cache" / "edgebnn")
    return root / f"model-stats-{edgebnn.__version__}.json"


def cache_key(card, *, input_shape=None, options=None) -> str:
    """The key of a registered model's statistics: name, input, classes, options, and for a
    model defined outside edgebnn (a plugin, a ``--model-file``) the sha256 of the file that
    defines it, so an edited file is counted again."""
    shape = tuple(input_shape or card.input_shape)
    key = f"{card.name}@{'x'.join(map(str, shape))}/{card.num_classes}"
    if options:
        key += "?" + "&".join(f"{k}={v!r}" for k, v in sorted(options.items()))
    if card.origin != "edgebnn":
        key += f"#{_source_hash(card.entrypoint)}"
    return key


def _source_hash(fn) -> str:
    try:
        return sha256_of(Path(inspect.getfile(fn)))[:16]
    except (OSError, TypeError):
        return "unhashed"


def card_stats(card, *, cache_dir=None, input_shape=None, options=None) -> dict:
    """``model_stats`` of a registered model (at its default input shape, or ``input_shape`` and
    builder ``options``), cached.

    Building the largest models takes seconds and gigabytes, so results are kept in
    :func:`cache_path`, keyed by :func:`cache_key`; a cached answer needs no TensorFlow.
    """
    path = cache_path(cache_dir)
    try:
        cache = json.loads(path.read_text())
    except (OSError, ValueError):
        cache = {}
    key = cache_key(card, input_shape=input_shape, options=options)
    if not isinstance(cache.get(key), dict):
        import tf_keras as keras

        model = create_model(card.name, input_shape=tuple(input_shape or card.input_shape), **(options or {}))
        cache[key] = model_stats(model)
        del model
        keras.backend.clear_session()
        try:
            atomic.write_json(path, cache)
        except OSError:
            pass  # an unwritable cache only costs time
    return cache[key]
