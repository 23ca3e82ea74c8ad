"""Output parity: the flatbuffer run by LCE's interpreter against Keras on the same inputs.

When parity fails, :func:`first_divergence` finds the first layer whose output diverges by
converting the model truncated at a layer and comparing that layer's output, bisecting over
the layers in model order (a handful of small conversions instead of one per layer).
"""

from __future__ import annotations

import numpy as np

# Relative to the largest Keras output magnitude. Float kernels agree to rounding; int8
# rounds every tensor to 1/255 of its range, and the errors add up through the network.
FLOAT_TOLERANCE = {"max_rel_error": 1e-3}
INT8_TOLERANCE = {"mean_rel_error": 0.05}


def random_inputs(input_shape, n: int = 4, seed: int = 0) -> np.ndarray:
    """``n`` inputs uniform in [-1, 1] at ``input_shape`` (H, W, C)."""
    return np.random.default_rng(seed).uniform(-1, 1, size=(n, *input_shape)).astype("float32")


def run_flatbuffer(flatbuffer: bytes, inputs: np.ndarray) -> np.ndarray:
    """Run ``flatbuffer`` with LCE's interpreter; int8 inputs/outputs are (de)quantized here."""
    from larq_compute_engine.tflite.python.interpreter import Interpreter

    interpreter = Interpreter(flatbuffer, num_threads=1)
    x = inputs
    if interpreter.input_types[0] == np.int8:
        scale, zero = interpreter.input_scales[0], interpreter.input_zero_points[0]
        x = np.clip(np.round(inputs / scale + zero), -128, 127).astype(np.int8)
    y = interpreter.predict(x)
    y = y[0] if isinstance(y, list) else y
    if interpreter.output_types[0] == np.int8:
        y = (y.astype("float64") - interpreter.output_zero_points[0]) * interpreter.output_scales[0]
    return np.asarray(y, dtype="float64")


def compare(expected: np.ndarray, actual: np.ndarray) -> dict:
    """Max/mean absolute and relative error and top-1 agreement of two output batches."""
    expected = np.asarray(expected, dtype="float64")
    actual = np.asarray(actual, dtype="float64").reshape(expected.shape)
    diff = np.abs(actual - expected)
    scale = max(float(np.abs(expected).max()), 1e-12)
    flat_e, flat_a = expected.reshape(len(expected), -1), actual.reshape(len(actual), -1)
    return {
        "inputs": int(len(expected)),
        "max_abs_error": float(diff.max()),
        "mean_abs_error": float(diff.mean()),
        "max_rel_error": float(diff.max() / scale),
        "mean_rel_error": float(diff.mean() / scale),
        "top1_agreement": float(np.mean(flat_a.argmax(-1) == flat_e.argmax(-1))),
    }


def parity(model, flatbuffer: bytes, inputs: np.ndarray) -> dict:
    """Compare Keras and the LCE interpreter on ``inputs``.

    Returns:
        ``max_abs_error``, ``mean_abs_error``, ``max_rel_error`` and ``mean_rel_error`` (over
        the largest Keras output magnitude), ``top1_agreement`` and the number of inputs.
    """
    expected = model.predict(inputs, verbose=0)
    return compare(expected, run_flatbuffer(flatbuffer, inputs))


def within(result: dict, tolerance: dict) -> bool:
    """Whether every error named in ``tolerance`` is at most its bound."""
    return all(result[key] <= bound for key, bound in tolerance.items())


def first_divergence(model, inputs: np.ndarray, *, convert_fn, tolerance: dict) -> dict | None:
    """The first layer (in model order) whose converted output is out of ``tolerance``.

    Args:
        model: the Keras model (functional).
        inputs: the parity inputs.
        convert_fn: ``fn(keras_model) -> flatbuffer`` with the same settings as the failing
            conversion.
        tolerance: as for :func:`within`.

    Returns:
        ``{"layer", "type", "parity"}`` or None when no truncated model diverges (the
        divergence is then in the final layers' fusion, or the model is not functional).
    """
    import tf_keras as keras

    layers = [
        l for l in model.layers
        if type(l).__name__ != "InputLayer" and not isinstance(getattr(l, "output", None), (list, tuple))
    ]

    def check(i):
        try:
            sub = keras.Model(model.inputs, layers[i].output)
            result = parity(sub, convert_fn(sub), inputs)
        except Exception:  # a cut LCE cannot convert (e.g. inside a fused pattern): skip it
            return None
        return result if not within(result, tolerance) else False

    lo, hi, found = 0, len(layers) - 1, None
    while lo <= hi:
        mid = (lo + hi) // 2
        result = check(mid)
        if result:
            found, hi = (mid, result), mid - 1
        else:
            lo = mid + 1
    if found is None:
        return None
    return {"layer": layers[found[0]].name, "type": type(layers[found[0]]).__name__, "parity": found[1]}
