"""The conversion report: which binary layers became LCE binary kernels, sizes, parity."""

from __future__ import annotations

from edgebnn.converters.layer_index import BCONV, LayerIndex

# Ops that compute a convolution or a matrix product, and the axis of their weights' output channels.
WEIGHTED_OPS = {"CONV_2D": 0, "FULLY_CONNECTED": 0, "TRANSPOSE_CONV": 0, "DEPTHWISE_CONV_2D": 3}


def binary_kernel(weights) -> bool:
    """Whether every output channel (axis 0) of ``weights`` is +-s: one magnitude, no zeros,
    at least two weights (one weight alone is trivially +-s)."""
    import numpy as np

    w = np.abs(np.asarray(weights, dtype="float64")).reshape(len(weights), -1)
    return w.shape[1] >= 2 and bool(np.all(w.min(axis=1) > 0)) and bool(
        np.allclose(w.max(axis=1), w.min(axis=1), rtol=1e-5, atol=0))


def bconv_coverage(flatbuffer: bytes, ops: list[dict]) -> dict:
    """The one definition of ``LceBconv2d`` coverage, read from the flatbuffer alone (so a run
    made from Keras and the same ``.tflite`` benched on its own give the same figure).

    A binary op is an ``LceBconv2d``, or a float (or int8) convolution or matrix product whose
    constant kernel is binary (+-s per output channel, :func:`binary_kernel`): a binary layer
    LCE kept float (a ``QuantDense``, a first layer without an activation quantizer...). Float
    layers proper (a stem, 1x1 shortcuts, the classifier) are not binary ops.

    Returns:
        ``bconv`` (``LceBconv2d`` ops), ``binary_ops`` and ``bconv_coverage`` (their ratio, or
        None without binary ops).
    """
    from edgebnn.converters.flatbuffer import constant

    bconv = sum(op["op"] == BCONV for op in ops)
    kept_float = 0
    for op in ops:
        axis = WEIGHTED_OPS.get(op["op"])
        if axis is None or len(op["input_ids"]) < 2:
            continue
        weights = constant(flatbuffer, op["input_ids"][1])
        if weights is not None and weights.ndim > axis and binary_kernel(weights.swapaxes(0, axis)):
            kept_float += 1
    binary = bconv + kept_float
    return {"bconv": bconv, "binary_ops": binary, "bconv_coverage": round(bconv / binary, 4) if binary else None}


def conversion_report(model, flatbuffer: bytes, *, parity_inputs=None, int8: bool = False,
                      index: LayerIndex | None = None) -> dict:
    """Everything ``edgebnn convert --to tflite`` records in the manifest.

    Args:
        model: the Keras model that was converted.
        flatbuffer: the converter's output.
        parity_inputs: inputs for the parity check (random when None).
        int8: the float parts were converted to int8 (sets the size minimum and tolerance).
        index: ``model``'s layers and ``flatbuffer``'s ops, when the caller has them
            (:class:`edgebnn.converters.layer_index.LayerIndex`): every check reads this one.

    Returns:
        ``op_counts``, ``binary_layers``, ``bconv`` (LceBconv2d ops: a layer may give several,
        as Tang's K-term convolutions do), ``binary_ops`` and ``bconv_coverage``
        (:func:`bconv_coverage`), ``tflite_bytes``, ``parity`` (with
        ``tolerance``, ``ok`` and, for a binary network, ``signs``: the sign flips per binarized
        layer and their verdict, :func:`edgebnn.converters.signs.sign_check`), ``size`` and ``explain``.
    """
    from edgebnn.converters.explain import explain
    from edgebnn.converters.parity import FLOAT_TOLERANCE, INT8_TOLERANCE, checked, parity, within
    from edgebnn.converters.signs import sign_check
    from edgebnn.converters.size import size_report
    from edgebnn.data.samples import random_inputs

    index = index or LayerIndex(model, flatbuffer)
    ops = index.ops
    counts: dict[str, int] = {}
    for op in ops:
        counts[op["op"]] = counts.get(op["op"], 0) + 1
    counts = dict(sorted(counts.items(), key=lambda kv: -kv[1]))
    inputs = parity_inputs if parity_inputs is not None else random_inputs(model.input_shape[1:])
    tolerance = INT8_TOLERANCE if int8 else FLOAT_TOLERANCE
    result = parity(model, flatbuffer, inputs, index=index)
    result.update(tolerance=tolerance, ok=within(checked(result), tolerance))
    signs = sign_check(index, inputs, parity_ok=result["ok"], tolerance=tolerance, int8=int8)
    if signs is not None:
        result["signs"] = signs
    explained = explain(index)
    return {
        "op_counts": counts,
        "binary_layers": len(index.binary),
        **bconv_coverage(flatbuffer, ops),
        "tflite_bytes": len(flatbuffer),
        "parity": result,
        "size": size_report(index, int8=int8),
        "explain": explained,
    }
