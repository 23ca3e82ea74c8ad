"""What every Keras layer became in the flatbuffer, and why a binary layer stayed float.

Every operator is attributed to the layers its tensors name
(:attr:`edgebnn.converters.layer_index.LayerIndex.ops_of`). A binary layer is one whose kernel
quantizer has precision 1; it is fast only when it became an ``LceBconv2d``. For one that did
not, :func:`diagnose` inspects the layer (quantizers probed on real values, the quantized
kernel, padding, layer type) and says what to change.
"""

from __future__ import annotations

import numpy as np

from edgebnn.converters.layer_index import BCONV, LayerIndex
from edgebnn.converters.rewrites import small_zero_padded
from edgebnn.models.introspection import (
    QUANTIZED_WEIGHTS,
    bit_width,
    is_binary,
    kernel_quantizer,
    precision,
    quantizer_name,
)


def _probe(quantizer, values) -> np.ndarray:
    import tensorflow as tf

    return np.asarray(quantizer(tf.constant(values, dtype=tf.float32)))


def _qname(quantizer) -> str:
    if quantizer is None or isinstance(quantizer, str) or not hasattr(quantizer, "get_config"):
        return quantizer_name(quantizer) if not isinstance(quantizer, str) else quantizer
    config = quantizer.get_config() if hasattr(quantizer, "get_config") else {}
    args = ", ".join(f"{k}={v}" for k, v in config.items() if k not in ("name", "trainable", "dtype", "metrics"))
    return f"{type(quantizer).__name__}({args})" if args else type(quantizer).__name__


def _input_reason(layer) -> str | None:
    q = getattr(layer, "input_quantizer", None)
    if q is None:
        return ("no activation quantizer (input_quantizer=None): the input stays float, so the "
                "convolution is float; add input_quantizer='ste_sign'")
    try:
        values = _probe(q, np.linspace(-2.0, 2.0, 41))
    except Exception:  # a function written for other shapes: edgebnn cannot look inside
        return (f"activation quantizer {_qname(q)} fails on a 1-D probe tensor, so edgebnn cannot tell "
                "whether it is sign-like (LCE needs exactly -1/+1): use 'ste_sign'")
    if not np.all(np.isin(values, (-1.0, 1.0))):
        seen = ", ".join(f"{v:g}" for v in np.unique(values)[:5])
        return (f"activation quantizer {_qname(q)} is not sign-like (outputs {seen}...; LCE needs "
                "exactly -1/+1): use 'ste_sign', 'approx_sign' or 'swish_sign'")
    return None


def _kernel_reason(layer) -> str | None:
    q = kernel_quantizer(layer)
    weights = getattr(layer, "depthwise_kernel", None)
    if weights is None:
        weights = getattr(layer, "kernel", None)
    if weights is None:
        return None
    w = _probe(q, np.asarray(weights)).reshape(-1, np.asarray(weights).shape[-1])
    zeros = int(np.sum(np.any(w == 0, axis=0)))
    if zeros:
        return (f"the quantized kernel has zeros in {zeros} of {w.shape[1]} output channels "
                f"({_qname(q)}): LCE needs +-s per output channel; use 'ste_sign' or "
                "'magnitude_aware_sign'")
    mags = np.abs(w)
    uneven = int(np.sum(~np.isclose(mags.max(axis=0), mags.min(axis=0), rtol=1e-5)))
    if uneven:
        return (f"the quantized kernel is not +-s per output channel in {uneven} of {w.shape[1]} "
                f"channels (asymmetric scales, {_qname(q)}): make each output channel +-s, or "
                "move the scales into a following BatchNorm or multiply")
    return None


def diagnose(layer, *, became_bconv: bool) -> tuple[list[str], list[str]]:
    """Why a binary layer did not become ``LceBconv2d`` (reasons), and what slows it (warnings).

    Returns:
        ``(reasons, warnings)``; reasons are empty for a layer that became ``LceBconv2d``.
    """
    import larq as lq

    reasons, warnings = [], []
    kind = type(layer).__name__
    if isinstance(layer, lq.layers.QuantDense):
        reasons.append("QuantDense has no binary kernel in LCE: use a 1x1 QuantConv2D on a 1x1 "
                       "spatial input (Reshape to (1, 1, C)) instead")
    elif not isinstance(layer, lq.layers.QuantConv2D):
        reasons.append(f"{kind} has no binary kernel in LCE (only QuantConv2D becomes LceBconv2d): "
                       "use QuantConv2D, or keep this layer float on purpose")
    else:
        for reason in (_input_reason(layer), _kernel_reason(layer)):
            if reason:
                reasons.append(reason)
        if getattr(layer, "padding", "valid") not in ("same", "valid"):
            reasons.append(f"padding {layer.padding!r} is not supported: use 'same' or 'valid'")
        in_channels = int(layer.input_shape[-1])
        out_channels = int(layer.filters)
        groups = int(getattr(layer, "groups", 1) or 1)
        if in_channels % 32:
            warnings.append(f"{in_channels} input channels are not a multiple of 32: the bit-packed "
                            "words are padded, wasting compute; use multiples of 32")
        if out_channels % 8:
            warnings.append(f"{out_channels} output channels are not a multiple of 8: the optimized "
                            "kernels fall back to slower paths; use multiples of 8")
        if groups > 1 and (in_channels // groups) % 32:
            warnings.append(f"{in_channels // groups} input channels per group are not a multiple of 32")
        if small_zero_padded(layer):
            warnings.append(f"LCE 0.16's zero-padded binary convolution is wrong on this "
                            f"{layer.input_shape[1]}x{layer.input_shape[2]} map (smaller than the kernel): converted "
                            "as a one-padded convolution minus the padding's constant, which LCE computes exactly")
        elif getattr(layer, "padding", "") == "same" and getattr(layer, "pad_values", 0.0) != 1.0:
            warnings.append("padding 'same' with pad_values=0 needs LCE's padding correction; "
                            "pad_values=1.0 is the fast path")
    q = getattr(layer, "input_quantizer", None)
    if not became_bconv and not reasons and q is not None and not isinstance(precision(q), int):
        reasons.append(f"the activation quantizer {_qname(q)} is a plain function that is sign-like on probe "
                       "values, but LCE did not match its ops as a sign (LCE 0.16 matches larq's sign quantizers "
                       "and tf.where(x >= 0, 1.0, -1.0) with scalar branches, not tf.ones_like ones): use "
                       "input_quantizer='ste_sign'")
    if not became_bconv and not reasons:
        reasons.append("no cause found by edgebnn: the converter did not match the pattern "
                       "(look at the ops listed for this layer)")
    return (reasons if not became_bconv else []), warnings


def explain(index: LayerIndex) -> dict:
    """The per-layer explanation stored in ``manifest["conversion"]["explain"]``.

    Args:
        index: the converted model's layers and its flatbuffer's ops.

    Returns:
        ``{"layers": [...], "float_binary_layers": [names], "warnings": n}``; each layer has
        ``name``, ``type``, ``binary``, ``ops`` (op types attributed to it, empty when it was
        folded into a neighbour), and for binary layers ``bconv``, ``reasons``, ``warnings``.
    """
    rows, float_binary, n_warnings = [], [], 0
    for layer in index.computing:
        became = [index.ops[i]["op"] for i in index.ops_of.get(layer.name, [])]
        row = {"name": layer.name, "type": type(layer).__name__, "binary": is_binary(layer), "ops": became}
        classified = _classified(layer)
        if classified:
            row["quantizers"] = classified
        if row["binary"]:
            bconv = BCONV in became
            reasons, warnings = diagnose(layer, became_bconv=bconv)
            row.update(bconv=bconv, reasons=reasons, warnings=warnings)
            n_warnings += len(warnings)
            if not bconv:
                float_binary.append(layer.name)
        rows.append(row)
    return {"layers": rows, "float_binary_layers": float_binary, "warnings": n_warnings}


def _classified(layer) -> dict[str, str]:
    """How edgebnn classified each quantizer of ``layer`` that declares no bit width (a plain
    function): ``"1-bit (probed)"``, ``"float (probed)"`` or ``"unknown"``."""
    found = {}
    for key in ("input_quantizer", *QUANTIZED_WEIGHTS.values()):
        q = getattr(layer, key, None)
        if q is None or isinstance(precision(q), int):
            continue
        bits = bit_width(q)
        if bits == 32 and type(q).__name__ == "NoOp":
            continue  # larq's pass-through, float by definition
        found[key] = {1: "1-bit (probed)", 32: "float (probed)"}.get(bits, "unknown")
    return found


def format_explanation(explanation: dict) -> str:
    """The explanation as text lines: one per layer, reasons and warnings indented below."""
    lines = []
    for row in explanation["layers"]:
        became = ", ".join(row["ops"]) if row["ops"] else "(folded into a neighbouring op)"
        mark = ""
        if row["binary"]:
            mark = "  [binary: LceBconv2d]" if row["bconv"] else "  [binary: STAYED FLOAT]"
        lines.append(f"{row['name']} ({row['type']}) -> {became}{mark}")
        for key, how in row.get("quantizers", {}).items():
            if how == "unknown":
                lines.append(f"    note: {key} declares no bit width and is neither sign-like nor the identity "
                             "on probe values: counted as unknown in the statistics (neither binary nor float)")
            else:
                lines.append(f"    note: {key} declares no bit width; probed: {how.split(' ')[0]}")
        for reason in row.get("reasons", []):
            lines.append(f"    why: {reason}")
        for warning in row.get("warnings", []):
            lines.append(f"    warning: {warning}")
    return "\n".join(lines)
