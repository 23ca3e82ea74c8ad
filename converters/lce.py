"""The LCE conversion itself: a Keras model in, flatbuffer bytes out; the caller writes files."""

from __future__ import annotations

from edgebnn.errors import EdgebnnError, UsageError

TARGETS = ("arm", "xcore")
LCE_OPS = ("LceQuantize", "LceDequantize", "LceBconv2d", "LceBMaxPool2d")


def check_float32(model) -> None:
    """Refuse a model with a float16 / mixed-precision policy, which LCE cannot convert.

    Raises:
        EdgebnnError: naming the first such layer and the fix.
    """
    from edgebnn.models.introspection import non_float32_layer

    layer = non_float32_layer(model)
    if layer is not None:
        name = getattr(getattr(layer, "dtype_policy", None), "name", "float16")
        raise EdgebnnError(
            f"layer {layer.name!r} of {model.name!r} uses the {name} dtype policy, which LCE "
            "rejects: cast the model to float32 first (rebuild it after "
            "keras.mixed_precision.set_global_policy('float32') and copy the weights with "
            "set_weights), then convert"
        )


def convert(model, *, target: str = "arm", int8: bool = False, int8_ranges: dict | None = None) -> bytes:
    """Convert ``model`` with LCE's converter into a TFLite flatbuffer.

    Binary convolutions (sign activations and +-s kernels) become ``LceBconv2d``; the model is
    first passed through :func:`edgebnn.converters.rewrites.prepare_for_lce`, which makes
    paper-specific quantizers deployable.

    Args:
        model: a Keras model with larq layers.
        target: ``arm`` (default) or ``xcore``.
        int8: int8 input and output types (needs ``int8_ranges`` or fake-quantization ops in
            the model).
        int8_ranges: per-layer output ranges from :func:`edgebnn.converters.int8.calibrate`;
            when given, the float parts become int8 (see :mod:`edgebnn.converters.int8`).

    Returns:
        The flatbuffer.

    Raises:
        UsageError: an unknown target, or int8 types without ranges.
        EdgebnnError: the converter rejected the model.
    """
    if target not in TARGETS:
        raise UsageError(f"unknown conversion target {target!r}: choose one of {', '.join(TARGETS)}")
    import warnings

    import larq_compute_engine as lce
    import tensorflow as tf

    from edgebnn.converters.rewrites import prepare_for_lce

    check_float32(model)
    if int8 and int8_ranges is None:
        from edgebnn.converters.int8 import has_fake_quant

        if not has_fake_quant(model):
            raise UsageError("int8 input/output types need int8 ranges: pass --int8 with --data to calibrate")
    prepared = prepare_for_lce(model)
    if int8_ranges is not None:
        from edgebnn.converters.int8 import with_fake_quant

        prepared = with_fake_quant(prepared, int8_ranges)
    io_type = tf.int8 if int8 else tf.float32
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "falling back to graphdef-based conversion" is routine
            flatbuffer = lce.convert_keras_model(
                prepared,
                inference_input_type=io_type,
                inference_output_type=io_type,
                target=target,
            )
    except Exception as e:  # the MLIR converter raises ConverterError, ValueError, ...
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise EdgebnnError(
            f"LCE could not convert {model.name!r}: {first[:300]}; run `edgebnn convert ... --explain` "
            "on a smaller part of the model, or replace the layer the message names"
        ) from e
    check_runnable(prepared, flatbuffer)
    return flatbuffer


def check_runnable(model, flatbuffer: bytes) -> None:
    """Refuse a flatbuffer holding TensorFlow ops that no TFLite or LCE kernel runs.

    LCE's converter does not fail on such ops: it leaves them as custom ops (``Svd``...)
    that the interpreter and ``lce_benchmark_model`` then reject at load time.

    Raises:
        EdgebnnError: naming the ops and the layers they come from.
    """
    from edgebnn.converters.flatbuffer import builtin_names, operators
    from edgebnn.converters.layer_index import LayerIndex

    ops = operators(flatbuffer)
    builtins = set(builtin_names().values())
    bad = {i for i, op in enumerate(ops) if op["op"] not in builtins and op["op"] not in LCE_OPS}
    if not bad:
        return
    layers = sorted(name for name, idx in LayerIndex(model, flatbuffer, ops).ops_of.items() if bad & set(idx))
    names = sorted({ops[i]["op"] for i in bad})
    raise EdgebnnError(
        f"LCE could not convert {model.name!r}: TensorFlow op(s) {', '.join(names)} (layer(s) "
        f"{', '.join(layers) or 'unknown'}) have no TFLite or LCE kernel, so no runtime can run the "
        "flatbuffer: replace those layers with supported operations"
    )


def convert_float(model, *, int8: bool = False, int8_io: bool = False, representative=None) -> bytes:
    """Convert a float model (no larq layers) with the plain TFLite converter.

    Args:
        model: e.g. :func:`edgebnn.converters.twin.float_twin` of a BNN.
        int8: int8 quantization: post-training with ``representative`` inputs, or from the
            model's own fake-quantization ops when ``representative`` is None.
        int8_io: int8 input and output types too.
        representative: an array of inputs (N, H, W, C) for calibration.
    """
    import tensorflow as tf

    check_float32(model)
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    if int8:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        if representative is not None:
            converter.representative_dataset = lambda: ([x[None]] for x in representative)
            converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        if int8_io:
            converter.inference_input_type = converter.inference_output_type = tf.int8
    try:
        return converter.convert()
    except Exception as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise EdgebnnError(f"TFLite could not convert the float twin of {model.name!r}: {first[:300]}") from e
