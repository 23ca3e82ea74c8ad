"""The conversion report: which binary layers became LCE binary kernels, sizes, parity."""

from __future__ import annotations

from edgebnn.converters.explain import BCONV
from edgebnn.models.introspection import binary_layer_names


def conversion_report(model, flatbuffer: bytes, *, parity_inputs=None, int8: bool = False) -> dict:
    """Everything ``edgebnn convert --to tflite`` records in the manifest.

    Args:
        model: the Keras model that was converted.
        flatbuffer: the converter's output.
        parity_inputs: inputs for the parity check (random when None).
        int8: the float parts were converted to int8 (sets the size minimum and tolerance).

    Returns:
        ``op_counts``, ``binary_layers``, ``bconv`` (LceBconv2d ops: a layer may give several,
        as Tang's K-term convolutions do), ``bconv_coverage`` (the share of binary layers that
        became LceBconv2d, per layer, from ``explain``), ``tflite_bytes``, ``parity`` (with
        ``tolerance`` and ``ok``), ``size`` and ``explain``.
    """
    from edgebnn.converters.explain import explain
    from edgebnn.converters.flatbuffer import operators
    from edgebnn.converters.parity import FLOAT_TOLERANCE, INT8_TOLERANCE, checked, parity, within
    from edgebnn.converters.size import size_report
    from edgebnn.data.samples import random_inputs

    ops = operators(flatbuffer)
    counts: dict[str, int] = {}
    for op in ops:
        counts[op["op"]] = counts.get(op["op"], 0) + 1
    counts = dict(sorted(counts.items(), key=lambda kv: -kv[1]))
    binary = binary_layer_names(model)
    inputs = parity_inputs if parity_inputs is not None else random_inputs(model.input_shape[1:])
    tolerance = INT8_TOLERANCE if int8 else FLOAT_TOLERANCE
    result = parity(model, flatbuffer, inputs, ops=ops)
    explained = explain(model, ops)
    on_bconv = len(binary) - len(explained["float_binary_layers"])
    return {
        "op_counts": counts,
        "binary_layers": len(binary),
        "bconv": counts.get(BCONV, 0),
        "bconv_coverage": round(on_bconv / len(binary), 4) if binary else None,
        "tflite_bytes": len(flatbuffer),
        "parity": {**result, "tolerance": tolerance, "ok": within(checked(result), tolerance)},
        "size": size_report(model, ops, len(flatbuffer), int8=int8),
        "explain": explained,
    }
