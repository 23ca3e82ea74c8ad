"""The LCE conversion itself: a Keras model in, flatbuffer bytes out; the caller writes files."""

from __future__ import annotations

from edgebnn.errors import EdgebnnError, UsageError

TARGETS = ("arm", "xcore")


def convert(model, *, target: str = "arm", int8: bool = False) -> bytes:
    """Convert ``model`` with LCE's converter into a TFLite flatbuffer.

    Binary convolutions (sign activations and +-s kernels) become ``LceBconv2d``; the model is
    first passed through :func:`edgebnn.converters.rewrites.prepare_for_lce`, which makes
    paper-specific quantizers deployable.

    Args:
        model: a Keras model with larq layers.
        target: ``arm`` (default) or ``xcore``.
        int8: int8 input and output types (the float parts need fake-quant ranges).

    Returns:
        The flatbuffer.

    Raises:
        UsageError: an unknown target.
        EdgebnnError: the converter rejected the model.
    """
    if target not in TARGETS:
        raise UsageError(f"unknown conversion target {target!r}: choose one of {', '.join(TARGETS)}")
    import larq_compute_engine as lce
    import tensorflow as tf

    from edgebnn.converters.rewrites import prepare_for_lce

    if model.dtype_policy.name != "float32" if hasattr(model, "dtype_policy") else False:
        raise EdgebnnError(
            f"model {model.name!r} uses the {model.dtype_policy.name} policy, which LCE rejects: "
            "rebuild it under the float32 policy before converting"
        )
    io_type = tf.int8 if int8 else tf.float32
    try:
        return lce.convert_keras_model(
            prepare_for_lce(model),
            inference_input_type=io_type,
            inference_output_type=io_type,
            target=target,
        )
    except Exception as e:  # the MLIR converter raises ConverterError, ValueError, ...
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise EdgebnnError(f"LCE could not convert {model.name!r}: {first[:300]}") from e
