"""Flatbuffer size against its theoretical minimum, per layer and in total.

The minimum is what the weights need at their precision: 1 bit per binary weight, 4 bytes per
float parameter (1 byte per int8 kernel weight when the float parts are int8). BatchNorm's
moving statistics are not counted: at inference a BatchNorm is a per-channel scale and offset.
"""

from __future__ import annotations

import math

from edgebnn.converters.layer_index import LayerIndex
from edgebnn.models.introspection import is_binary, kernel_quantizer

INT8_KERNELS = ("kernel", "depthwise_kernel", "pointwise_kernel")


def _weight_kind(layer, weight) -> str:
    short = weight.name.split("/")[-1].split(":")[0]
    if short in ("moving_mean", "moving_variance"):
        return "folded"
    if is_binary(layer) and short in INT8_KERNELS and kernel_quantizer(layer) is not None:
        return "binary"
    return "kernel" if short in INT8_KERNELS else "float"


def minimum_bytes(layer, *, int8: bool = False) -> int:
    """Theoretical minimum bytes of ``layer``'s parameters."""
    bits = 0
    for weight in layer.weights:
        n = math.prod(weight.shape)
        kind = _weight_kind(layer, weight)
        bits += {"binary": 1, "folded": 0, "kernel": 8 if int8 else 32, "float": 32}[kind] * n
    return math.ceil(bits / 8)


def size_report(index: LayerIndex, *, int8: bool = False) -> dict:
    """Flatbuffer bytes vs theoretical minimum.

    Args:
        index: the converted model's layers and its flatbuffer's ops.
        int8: whether the float parts were converted to int8.

    Returns:
        ``minimum_bytes``, ``tflite_bytes``, ``ratio`` (target <= 1.10), ``constant_bytes``
        (weights in the file), and ``layers``: per layer with parameters, ``minimum_bytes``,
        ``tflite_bytes`` (the constants of the ops attributed to it) and ``ratio``.
    """
    ops, flatbuffer_bytes = index.ops, len(index.flatbuffer)
    layers = [l for l in index.layers if l.weights]
    minimum = {l.name: minimum_bytes(l, int8=int8) for l in layers}
    by_layer = {k: v for k, v in index.ops_of.items() if k in minimum}
    # An op naming several layers (fused conv + BN + ReLU) is charged to the heaviest one.
    owner: dict[int, str] = {}
    for name in sorted(by_layer, key=lambda n: -minimum[n]):
        for i in by_layer[name]:
            owner.setdefault(i, name)
    actual = {l.name: 0 for l in layers}
    seen: set[int] = set()
    constant_total = 0
    for i, op in enumerate(ops):
        for buffer, nbytes in op["constants"]:
            if buffer in seen:
                continue
            seen.add(buffer)
            constant_total += nbytes
            if i in owner:
                actual[owner[i]] += nbytes
    rows = [
        {
            "name": l.name,
            "minimum_bytes": minimum[l.name],
            "tflite_bytes": actual[l.name],
            "ratio": round(actual[l.name] / minimum[l.name], 3) if minimum[l.name] else None,
        }
        for l in layers
    ]
    total_min = sum(minimum.values())
    return {
        "minimum_bytes": total_min,
        "tflite_bytes": flatbuffer_bytes,
        "constant_bytes": constant_total,
        "ratio": round(flatbuffer_bytes / total_min, 4) if total_min else None,
        "layers": rows,
    }
