"""Output parity: the flatbuffer run by LCE's interpreter against Keras on the same inputs.

Binary networks amplify rounding: a value that lands on the other side of zero at a sign
flips a bit, and a saturated softmax turns a small logit difference into a 0-vs-1 jump. So
the tolerance is checked on the logits (the input of a final SOFTMAX) when the model ends in
one, read from the flatbuffer by marking that tensor as an extra output. When parity fails,
:func:`first_divergence` marks every intermediate tensor that carries a Keras layer's name as
an output, runs the unchanged kernels once, and names the first layer out of tolerance.
"""

from __future__ import annotations

import numpy as np
import tf_keras as keras
from larq_compute_engine.tflite.python.interpreter import Interpreter

from edgebnn.converters.flatbuffer import tensors, with_outputs
from edgebnn.converters.layer_index import LayerIndex, layer_names_in
from edgebnn.models.introspection import outbound_layers

# Mean error relative to the largest Keras magnitude. Not the max: a pre-activation within
# rounding of zero flips sign in one engine and not the other (LCE folds BatchNorm into the
# binary convolution's output transform, which rounds differently), moving a few values by a
# visible amount; a conversion bug moves most of them. int8 rounds every tensor to 1/255 of
# its range and the errors add up through the network.
FLOAT_TOLERANCE = {"mean_rel_error": 1e-2}
INT8_TOLERANCE = {"mean_rel_error": 5e-2}
QUANTIZE_OPS = ("LceQuantize", "LceDequantize")


def run_flatbuffer(flatbuffer: bytes, inputs: np.ndarray) -> list[np.ndarray]:
    """Run ``flatbuffer`` with LCE's interpreter; every output, int8 ones dequantized."""
    interpreter = Interpreter(flatbuffer, num_threads=1)
    x = inputs
    if interpreter.input_types[0] == np.int8:
        scale, zero = interpreter.input_scales[0], interpreter.input_zero_points[0]
        x = np.clip(np.round(inputs / scale + zero), -128, 127).astype(np.int8)
    outputs = interpreter.predict(x)
    outputs = outputs if isinstance(outputs, list) else [outputs]
    found = []
    for k, y in enumerate(outputs):
        if interpreter.output_types[k] == np.int8:
            scale, zero = interpreter.output_scales[k], interpreter.output_zero_points[k]
            y = (y.astype("float64") - zero) * np.asarray(scale)
        found.append(np.asarray(y, dtype="float64"))
    return found


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


def within(result: dict, tolerance: dict) -> bool:
    """Whether every error named in ``tolerance`` is at most its bound."""
    return all(result[key] <= bound for key, bound in tolerance.items())


def _keras_outputs(model, inputs, batch_size: int = 32) -> list[np.ndarray]:
    """Every output of ``model`` on ``inputs``, called eagerly in batches (as predict batches).

    Not ``model.predict``: it traces a new tf.function for every (probe) model, a second trace
    of the whole network after LCE's own SavedModel export, and costs more than running the
    few parity inputs (measured: 4.3 s against 0.5 s for QuickNet at 224 on 8 inputs).
    """
    batches = []
    for start in range(0, len(inputs), batch_size):
        out = model(inputs[start:start + batch_size], training=False)
        batches.append([np.asarray(y) for y in (out if isinstance(out, (list, tuple)) else [out])])
    return [np.concatenate(ys) for ys in zip(*batches)]


def _layer_outputs(model, layers: list, inputs) -> list[np.ndarray]:
    probe = keras.Model(model.inputs, [l.output for l in layers])
    return _keras_outputs(probe, inputs)


def tensor_layers(index: LayerIndex) -> list[tuple[int, object]]:
    """``(tensor index, Keras layer)`` pairs: op outputs in execution order and the layer
    whose output each one holds.

    A tensor carries the name of the layer that produced it; when the following layers were
    folded into it (a BatchNormalization into a convolution), it holds the last folded
    layer's output, so the chain of consumers without ops of their own is followed.
    """
    # Bit-packed activations (INT32 outputs of LceQuantize) hold no layer output.
    readable = {t["index"] for t in tensors(index.flatbuffer) if t["type"] in ("FLOAT32", "INT8")}
    layers = {l.name: l for l in index.computing}
    has_ops = set(index.ops_of)
    last: dict[str, tuple[int, int, object]] = {}  # layer name -> (op position, tensor, layer)
    for position, op in enumerate(index.ops):
        if op["op"] in QUANTIZE_OPS:
            continue  # named after the binary layer whose input it holds (binarized), not its output
        for tensor, name in zip(op["output_ids"], op["outputs"]):
            if tensor not in readable:
                continue
            found = layer_names_in(name.split(";")[0] + (";" if ";" in name else ""), index.model_names)
            layer = layers.get(next(iter(found))) if found else None
            while layer is not None:
                consumers = [c for c in outbound_layers(layer) if c.name in layers]
                if len(consumers) == 1 and consumers[0].name not in has_ops:
                    layer = consumers[0]
                else:
                    break
            if layer is not None and not isinstance(layer.output, (list, tuple)):
                # A layer LCE splits into several ops (a conv, then its ReLU) holds its output in the last.
                last[layer.name] = (position, tensor, layer)
    return [(tensor, layer) for _, tensor, layer in sorted(last.values(), key=lambda t: t[0])]


def _pre_activation(model, layer, inputs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The outputs, and ``layer``'s output before its (softmax) activation, which TFLite splits off."""
    probs = _keras_outputs(model, inputs)[0]
    activation, layer.activation = layer.activation, keras.activations.linear
    try:  # an eager call reads the attribute each time (no traced function keeps the old one)
        logits = _keras_outputs(model, inputs)[0]
    finally:
        layer.activation = activation
    return probs, logits


def logits_tensor(index: LayerIndex) -> tuple[int, object] | None:
    """``(tensor index, Keras layer)`` of the logits when the flatbuffer ends in a SOFTMAX whose
    input a Keras layer holds, else None."""
    ops = index.ops
    if ops and ops[-1]["op"] == "SOFTMAX" and ops[-1]["input_ids"]:
        tensor = ops[-1]["input_ids"][0]
        pairs = [p for p in tensor_layers(index) if p[0] == tensor]
        if pairs:
            return pairs[0]
    return None


def keras_results(model, inputs: np.ndarray, logits: tuple[int, object] | None) -> tuple[np.ndarray, np.ndarray | None]:
    """Keras' outputs on ``inputs`` and, with ``logits`` (:func:`logits_tensor`), its logits."""
    if logits is None:
        return _keras_outputs(model, inputs)[0], None
    layer = logits[1]
    if getattr(getattr(layer, "activation", None), "__name__", "") == "softmax":
        return _pre_activation(model, layer, inputs)  # Dense(activation="softmax")
    probs, found = _layer_outputs(model, [model.layers[-1], layer], inputs)
    return probs, found


def compare_results(expected: tuple, actual: tuple) -> dict:
    """:func:`compare` of outputs and, when both sides have them, of logits (``checked_on``)."""
    result = compare(expected[0], actual[0])
    if expected[1] is not None and actual[1] is not None:
        result["logits"] = compare(expected[1], actual[1])
        result["checked_on"] = "logits"
    else:
        result["checked_on"] = "outputs"
    return result


def flatbuffer_results(flatbuffer: bytes, inputs: np.ndarray, logits: tuple[int, object] | None,
                       extra: list[int] = ()) -> tuple[tuple, list[np.ndarray]]:
    """The flatbuffer's outputs and logits (as :func:`keras_results`), and the tensors ``extra``,
    from one run of the unchanged kernels."""
    wanted = ([logits[0]] if logits else []) + list(extra)
    if not wanted:
        return (run_flatbuffer(flatbuffer, inputs)[0], None), []
    marked, positions = with_outputs(flatbuffer, wanted)
    found = run_flatbuffer(marked, inputs)
    if logits:
        return (found[0], found[positions[0]]), [found[p] for p in positions[1:]]
    return (found[0], None), [found[p] for p in positions]


def parity(model, flatbuffer: bytes, inputs: np.ndarray, *, index: LayerIndex | None = None) -> dict:
    """Compare Keras and the LCE interpreter on ``inputs`` (``index``: the conversion's, when the caller has it).

    Returns:
        ``max_abs_error``, ``mean_abs_error``, ``max_rel_error``, ``mean_rel_error`` (over the
        largest Keras output magnitude) and ``top1_agreement`` of the outputs; when the model
        ends in a softmax, ``logits`` holds the same figures for its input, and
        ``checked_on`` says which of the two the tolerance applies to.
    """
    logits = logits_tensor(index or LayerIndex(model, flatbuffer))
    actual, _ = flatbuffer_results(flatbuffer, inputs, logits)
    return compare_results(keras_results(model, inputs, logits), actual)


def checked(result: dict) -> dict:
    """The figures the tolerance applies to (the logits' when present)."""
    return result["logits"] if result.get("checked_on") == "logits" else result


def first_divergence(model, flatbuffer: bytes, inputs: np.ndarray, *, tolerance: dict,
                     index: LayerIndex | None = None) -> dict | None:
    """The first layer, in execution order, whose output in the flatbuffer is out of tolerance
    (``index``: the conversion's, when the caller has it).

    Returns:
        ``{"layer", "type", "tensor", "parity"}`` or None when every named intermediate
        tensor is within tolerance.
    """
    pairs = tensor_layers(index or LayerIndex(model, flatbuffer))
    if not pairs:
        return None
    inputs = inputs[:2]  # every intermediate tensor of a 224x224 model adds up quickly
    marked, positions = with_outputs(flatbuffer, [i for i, _ in pairs])
    actual = run_flatbuffer(marked, inputs)
    expected = _layer_outputs(model, [layer for _, layer in pairs], inputs)
    for (tensor, layer), want, position in zip(pairs, expected, positions):
        got = actual[position]
        if np.size(want) != np.size(got):
            continue  # a tensor whose layout TFLite changed
        result = compare(want, got)
        if not within(result, tolerance):
            return {"layer": layer.name, "type": type(layer).__name__, "tensor": int(tensor), "parity": result}
    return None
