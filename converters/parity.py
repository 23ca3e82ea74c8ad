"""Output parity: the flatbuffer run by LCE's interpreter against Keras on the same inputs."""

from __future__ import annotations

import numpy as np


def random_inputs(input_shape, n: int = 4, seed: int = 0) -> np.ndarray:
    """``n`` inputs uniform in [-1, 1] at ``input_shape`` (H, W, C)."""
    return np.random.default_rng(seed).uniform(-1, 1, size=(n, *input_shape)).astype("float32")


def parity(model, flatbuffer: bytes, inputs: np.ndarray) -> dict:
    """Compare Keras and the LCE interpreter on ``inputs``.

    Returns:
        ``max_abs_error``, ``mean_abs_error``, ``max_rel_error`` (max error over the largest
        Keras output magnitude), ``top1_agreement`` and the number of inputs.
    """
    from larq_compute_engine.tflite.python.interpreter import Interpreter

    expected = np.asarray(model.predict(inputs, verbose=0), dtype="float64")
    actual = np.asarray(Interpreter(flatbuffer, num_threads=1).predict(inputs), dtype="float64")
    actual = actual.reshape(expected.shape)
    diff = np.abs(actual - expected)
    scale = max(float(np.abs(expected).max()), 1e-12)
    agree = float(np.mean(actual.argmax(-1) == expected.argmax(-1))) if expected.ndim > 1 else 1.0
    return {
        "inputs": int(len(inputs)),
        "max_abs_error": float(diff.max()),
        "mean_abs_error": float(diff.mean()),
        "max_rel_error": float(diff.max() / scale),
        "top1_agreement": agree,
    }
