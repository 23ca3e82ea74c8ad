"""The conversion report: which binary layers became LCE binary kernels, sizes, parity."""

from __future__ import annotations

BCONV = "LceBconv2d"


def _precision(quantizer) -> int | None:
    return getattr(quantizer, "precision", None) if quantizer is not None else None


def binary_layers(model) -> list[str]:
    """Names of the larq layers with a 1-bit kernel (nested models included)."""
    import larq as lq

    found = []
    for layer in model.layers:
        if hasattr(layer, "layers"):
            found += binary_layers(layer)
        elif isinstance(layer, lq.layers_base.QuantizerBase) and _precision(
            getattr(layer, "kernel_quantizer", None)
        ) == 1:
            found.append(layer.name)
    return found


def conversion_report(model, flatbuffer: bytes, *, parity_inputs=None) -> dict:
    """Everything ``edgebnn convert`` records in the manifest.

    Args:
        model: the Keras model that was converted.
        flatbuffer: the converter's output.
        parity_inputs: inputs for the parity check (random when None).
    """
    from edgebnn.converters.flatbuffer import op_counts
    from edgebnn.converters.parity import parity, random_inputs

    ops = op_counts(flatbuffer)
    binary = binary_layers(model)
    inputs = parity_inputs if parity_inputs is not None else random_inputs(model.input_shape[1:])
    return {
        "op_counts": ops,
        "binary_layers": len(binary),
        "bconv": ops.get(BCONV, 0),
        "bconv_coverage": round(ops.get(BCONV, 0) / len(binary), 4) if binary else None,
        "tflite_bytes": len(flatbuffer),
        "parity": parity(model, flatbuffer, inputs),
    }
