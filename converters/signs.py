"""Sign flips: where a binary network's flatbuffer and its Keras model binarize differently.

A binary layer's dot product is an integer, so its pre-activation lands exactly on a tie, or
within float rounding of zero, far more often than in a float network; LCE computes the same
values in another order (BatchNorm folded into the convolution's output transform, thresholds
for bit-packed outputs), and a value at rounding of zero may take the other sign. One flip
moves the next binary layer's dot product by exactly 2, and an untrained or deep network
amplifies it: the outputs differ, though no op was converted wrongly. A wrong kernel, or
LCE 0.16's zero-padded binary convolution on a 1x1 or 2x2 map, is a conversion error.

:func:`sign_check` tells them apart:

1. It reads the flatbuffer's binarized input of every layer with a sign-like input quantizer
   (the bit-packed ``INT32`` input of its ``LceBconv2d``, or the +-1 input of a layer LCE kept
   float: ``LceDequantize``'s, or a ``tf.where``'s, before any padding) and compares it with Keras' own: the **flips** of each layer.
2. When parity failed, Keras runs again with each of those input quantizers replaced by the
   flatbuffer's signs, so both engines compute every layer from the same binary activations.
   A flip left in that run (Keras' quantizer disagrees with the flatbuffer's sign) is
   **local**; it is **at rounding** when Keras' value lies within :data:`TIE` of zero,
   relative to the largest magnitude of that layer's input in that sample.
3. It compares that forced run's outputs with the flatbuffer's.

Verdict: ``rounding`` when every local flip is at rounding and the forced outputs agree;
``wrong`` otherwise, naming the layer (as the user wrote it: a binary convolution, not the
BatchNorm LCE folded into it) that computes differently from the same binary inputs, and
LCE's zero-padding limit when it applies.
"""

from __future__ import annotations

from contextlib import contextmanager

import numpy as np

from edgebnn.converters.layer_index import LayerIndex

# A value within this share of its layer input's largest magnitude is at float rounding of
# zero (float32 carries 7 digits, and BatchNorm folding reorders a few ops); int8 rounds every
# tensor to 1/255 of its range.
TIE = 1e-4
TIE_INT8 = 2e-2
MAX_INPUTS = 16  # one Keras batch: each forced sign array is given whole
MAIN_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "TRANSPOSE_CONV")
ZERO_PADDING_LIMIT = ("LCE 0.16's zero-padded binary convolution is wrong on input maps of 1x1 or 2x2 "
                      "(README, Two measured limits)")


def binarized_layers(index: LayerIndex) -> list[tuple[object, int, int]]:
    """``(layer, tensor index, op index)`` of every layer with a sign-like input quantizer: the
    tensor holding its binarized input in the flatbuffer and the op that reads it, in execution
    order. Layers whose input the flatbuffer does not hold on its own are left out."""
    from edgebnn.models.introspection import bit_width

    ops = index.ops
    producer = {t: i for i, op in enumerate(ops) for t in op["output_ids"]}
    found = []
    for layer in index.layers:
        quantizer = getattr(layer, "input_quantizer", None)
        if quantizer is None or bit_width(quantizer) != 1:
            continue
        mine = index.ops_of.get(layer.name, [])
        bconvs = [i for i in mine if ops[i]["op"] == "LceBconv2d"]
        if len(bconvs) == 1:
            found.append((layer, ops[bconvs[0]]["input_ids"][0], bconvs[0]))
            continue
        mains = [i for i in mine if ops[i]["op"] in MAIN_OPS and ops[i]["input_ids"]]
        if bconvs or not mains:
            continue
        # A layer LCE kept float reads its +-1 input (LceDequantize's, or a tf.where's) after any padding.
        tensor = ops[mains[0]]["input_ids"][0]
        while tensor in producer and ops[producer[tensor]]["op"] in ("PAD", "PADV2") and ops[producer[tensor]]["input_ids"]:
            tensor = ops[producer[tensor]]["input_ids"][0]
        found.append((layer, tensor, mains[0]))
    return sorted(found, key=lambda f: f[2])


def unpack_signs(words: np.ndarray, shape: tuple) -> np.ndarray | None:
    """LCE's bit-packed activations as +-1: 32 channels per int32 word, channel 32k+j in bit j
    of word k, a set bit for -1. None when they do not hold ``shape``."""
    w = np.asarray(words).astype(np.int64) & 0xFFFFFFFF
    bits = ((w[..., None] >> np.arange(32)) & 1).reshape(*w.shape[:-1], -1)[..., :shape[-1]]
    if bits.size != int(np.prod(shape)):
        return None
    return np.where(bits == 1, -1.0, 1.0).reshape(shape)


@contextmanager
def _hooked(layers, make):
    """Each layer's input quantizer replaced by ``make(layer, quantizer)`` while inside.

    Set on the instance without Keras' attribute tracking, so the model's tracked layers and
    weights are untouched; an eager call reads the attribute each time.
    """
    saved = [(layer, layer.input_quantizer) for layer in layers]
    try:
        for layer, quantizer in saved:
            object.__setattr__(layer, "input_quantizer", make(layer, quantizer))
        yield
    finally:
        for layer, quantizer in saved:
            object.__setattr__(layer, "input_quantizer", quantizer)


def _recording(records):
    def make(layer, quantizer):
        def hook(x):
            y = quantizer(x)
            records.setdefault(layer.name, (np.asarray(x), np.asarray(y)))
            return y
        return hook
    return make


def _forcing(signs, records):
    import tensorflow as tf

    def make(layer, quantizer):
        wanted = signs[layer.name]

        def hook(x):
            records.setdefault(layer.name, (np.asarray(x), np.asarray(quantizer(x))))
            return tf.constant(wanted[: x.shape[0]].reshape(x.shape), dtype=x.dtype)
        return hook
    return make


def _layer_for_op(index: LayerIndex, op: int):
    """The layer the user wrote that op ``op`` implements: a binary layer before anything
    else, never a BatchNormalization folded into a convolution when the convolution is named."""
    from edgebnn.models.introspection import is_binary

    layers = index.by_name
    owners = [layers[name] for name, idx in index.ops_of.items() if op in idx and name in layers]
    owners.sort(key=lambda l: (not is_binary(l), type(l).__name__ == "BatchNormalization"))
    return owners[0] if owners else None


def _zero_padding_limit(layer) -> str | None:
    """The LCE limit's wording when ``layer`` is a zero-padded binary conv on a 1x1 or 2x2 map."""
    import larq as lq

    if not isinstance(layer, lq.layers.QuantConv2D) or getattr(layer, "padding", "") != "same":
        return None
    if getattr(layer, "pad_values", 0.0) == 1.0 or max(layer.kernel_size) == 1:
        return None
    height, width = layer.input_shape[1:3]
    if height is None or width is None or min(height, width) > 2:
        return None
    return (f"{ZERO_PADDING_LIMIT}; this layer's input is {height}x{width}: use pad_values=1.0 (one-padding), "
            "or an input large enough that every binary map stays at 3x3 or more")


def sign_check(index: LayerIndex, inputs: np.ndarray, *, parity_ok: bool, tolerance: dict,
               int8: bool = False) -> dict | None:
    """Sign flips per binarized layer, and, when parity failed, whether they explain it.

    Args:
        index: the converted model's layers and LCE's flatbuffer with its ops.
        inputs: the parity inputs (the first :data:`MAX_INPUTS` are used).
        parity_ok: whether the outputs were within ``tolerance``.
        tolerance: the parity tolerance, applied to the forced run as well.
        int8: the float parts are int8 (values round to 1/255 of their range: :data:`TIE_INT8`).

    Returns:
        None for a model without binarized layers the flatbuffer exposes; else ``verdict``
        (``ok``, ``rounding`` or ``wrong``), ``flips`` (total), ``layers`` (per layer:
        ``layer``, ``flips``, ``values``, and after a failed parity ``local`` and
        ``at_rounding``), ``inputs``, ``tie``; after a failed parity ``forced`` (parity of the
        forced run) and for ``wrong`` a ``culprit`` (``layer``, ``type``, ``reason``).
    """
    from edgebnn.converters.flatbuffer import tensors
    from edgebnn.converters.parity import (
        checked,
        compare_results,
        first_divergence,
        flatbuffer_results,
        keras_results,
        logits_tensor,
        within,
    )

    found = binarized_layers(index)
    if not found:
        return None
    model, flatbuffer = index.model, index.flatbuffer
    inputs = inputs[:MAX_INPUTS]
    types = {t["index"]: t["type"] for t in tensors(flatbuffer)}
    logits = logits_tensor(index)
    actual, values = flatbuffer_results(flatbuffer, inputs, logits, [tensor for _, tensor, _ in found])
    natural: dict = {}
    with _hooked([layer for layer, _, _ in found], _recording(natural)):
        keras_results(model, inputs, None)
    rows, signs = [], {}
    for (layer, tensor, op), value in zip(found, values):
        if layer.name not in natural:
            continue
        x, y = natural[layer.name]
        if types.get(tensor) == "INT32":
            s = unpack_signs(value, x.shape)
        elif value.size == x.size and np.all(np.abs(value) == 1):  # a float tensor holding +-1 only
            s = value.reshape(x.shape)
        else:
            continue  # not the layer's binarized input (a float op LCE did not binarize)
        if s is None:
            continue
        signs[layer.name] = s
        rows.append({"layer": layer.name, "flips": int(np.sum(np.sign(y) != s)), "values": int(s.size),
                     "_op": op, "_tensor": tensor})
    if not rows:
        return None
    tie = TIE_INT8 if int8 else TIE
    result = {"verdict": "ok" if parity_ok else None, "flips": sum(r["flips"] for r in rows), "inputs": len(inputs),
              "tie": tie, "layers": rows}
    if not parity_ok:
        forced_records: dict = {}
        binarized = [layer for layer, _, _ in found if layer.name in signs]
        with _hooked(binarized, _forcing(signs, forced_records)):
            forced = compare_results(keras_results(model, inputs, logits), actual)
            result["forced"] = forced
            far = None
            for row in rows:
                x, y = forced_records[row["layer"]]
                local = np.sign(y) != signs[row["layer"]]
                scale = np.abs(x).reshape(len(x), -1).max(axis=1).reshape(-1, *([1] * (x.ndim - 1)))
                at_rounding = local & (np.abs(x) <= tie * scale)
                row.update(local=int(local.sum()), at_rounding=int(at_rounding.sum()))
                if far is None and row["local"] > row["at_rounding"]:
                    far = row
            explained = far is None and within(checked(forced), tolerance)
            result["verdict"] = "rounding" if explained else "wrong"
            if not explained:
                diverging = first_divergence(model, flatbuffer, inputs, tolerance=tolerance, index=index)
                result["culprit"] = _culprit(index, far, diverging)
    for row in rows:
        del row["_op"], row["_tensor"]
    return result


def _culprit(index: LayerIndex, far: dict | None, diverging: dict | None) -> dict | None:
    """The earliest op computing differently from the same binary inputs, as the user's layer.

    ``far``: the first binarized layer with a local flip away from zero (the op that wrote its
    binarized input is wrong); ``diverging``: the first float tensor out of tolerance in the
    forced run (:func:`edgebnn.converters.parity.first_divergence`).
    """
    ops = index.ops
    producer = {t: i for i, op in enumerate(ops) for t in op["output_ids"]}
    candidates = []
    if far is not None:
        candidates.append((producer.get(far["_tensor"], far["_op"]),
                           f"{far['local'] - far['at_rounding']} of the binarized input values of {far['layer']} "
                           "take the other sign away from zero"))
    if diverging is not None:
        candidates.append((producer.get(diverging["tensor"], len(ops)),
                           f"its output differs (max rel error {diverging['parity']['max_rel_error']:.2e})"))
    if not candidates:
        return None
    op, evidence = min(candidates, key=lambda c: c[0])
    layer = _layer_for_op(index, op) if op < len(ops) else None
    if layer is None:
        return {"layer": diverging["layer"] if diverging else far["layer"], "type": None, "reason": evidence}
    reason = _zero_padding_limit(layer) or (
        f"it computes differently in the flatbuffer than in Keras from the same binary inputs ({evidence}): "
        f"a conversion error in its {ops[op]['op']} op")
    return {"layer": layer.name, "type": type(layer).__name__, "reason": reason, "evidence": evidence}
