"""Read a TFLite flatbuffer's operators from the flatbuffer itself, through its schema."""

from __future__ import annotations

from collections import Counter

import numpy as np
from tensorflow.lite.python import schema_py_generated as schema

from edgebnn.errors import EdgebnnError


def builtin_names() -> dict[int, str]:
    return {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}


def _text(value) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else (value or "")


def operators(flatbuffer: bytes) -> list[dict]:
    """Every operator of every subgraph in execution order.

    Reads through the schema's accessor API (not the object API), so a 20 MB flatbuffer's
    weights are never copied into Python lists.

    Returns:
        A list of ``{"op": name, "inputs": [...], "outputs": [...], "input_ids": [...],
        "output_ids": [...], "constants": [...]}`` with tensor names and indices (of the
        main subgraph's tensors for subgraph 0); ``constants`` holds ``(buffer index, bytes)`` of the op's inputs
        that carry data (weights, biases, multipliers). Custom operators (``LceBconv2d``,
        ``LceQuantize``...) appear under their custom code.

    Raises:
        EdgebnnError: the bytes are not a TFLite flatbuffer.
    """
    if len(flatbuffer) < 8 or flatbuffer[4:8] != b"TFL3":
        raise EdgebnnError("not a TFLite flatbuffer (no TFL3 identifier): re-run `edgebnn convert`")
    model = schema.Model.GetRootAsModel(flatbuffer, 0)
    if model.Version() != 3 or not model.SubgraphsLength():  # zeros behind the identifier, say
        raise EdgebnnError(f"not a TFLite flatbuffer: the identifier is there but no model is (schema version "
                           f"{model.Version()}, {model.SubgraphsLength()} subgraphs)")
    names = builtin_names()
    codes = []
    for i in range(model.OperatorCodesLength()):
        code = model.OperatorCodes(i)
        if code.CustomCode():
            codes.append(_text(code.CustomCode()))
        else:
            # Codes above 127 live in BuiltinCode; older files only fill the deprecated field.
            codes.append(names.get(max(code.BuiltinCode(), code.DeprecatedBuiltinCode()), "UNKNOWN"))
    buffer_bytes = []
    for i in range(model.BuffersLength()):
        buffer = model.Buffers(i)
        # Files over 2 GB keep data outside the flatbuffer (offset/size) instead of inline.
        buffer_bytes.append(buffer.DataLength() or int(buffer.Size()))
    found = []
    for s in range(model.SubgraphsLength()):
        subgraph = model.Subgraphs(s)
        tensors = [subgraph.Tensors(t) for t in range(subgraph.TensorsLength())]
        tensor_names = [_text(t.Name()) for t in tensors]
        for o in range(subgraph.OperatorsLength()):
            op = subgraph.Operators(o)
            inputs = [int(i) for i in op.InputsAsNumpy()] if op.InputsLength() else []
            outputs = [int(i) for i in op.OutputsAsNumpy()] if op.OutputsLength() else []
            constants = [
                (tensors[i].Buffer(), buffer_bytes[tensors[i].Buffer()])
                for i in inputs
                if i >= 0 and tensors[i].Buffer() and buffer_bytes[tensors[i].Buffer()]
            ]
            found.append(
                {
                    "op": codes[op.OpcodeIndex()],
                    "inputs": [tensor_names[i] for i in inputs if i >= 0],
                    "outputs": [tensor_names[i] for i in outputs if i >= 0],
                    "input_ids": [i for i in inputs if i >= 0],
                    "output_ids": [i for i in outputs if i >= 0],
                    "constants": constants,
                }
            )
    return found


def op_counts(flatbuffer: bytes) -> dict[str, int]:
    """How many times each operator occurs, most frequent first."""
    return dict(Counter(op["op"] for op in operators(flatbuffer)).most_common())


def tensors(flatbuffer: bytes) -> list[dict]:
    """The main subgraph's tensors: ``index``, ``name``, ``type`` (``FLOAT32``, ``INT8``...), ``shape``."""
    if len(flatbuffer) < 8 or flatbuffer[4:8] != b"TFL3":
        raise EdgebnnError("not a TFLite flatbuffer (no TFL3 identifier): re-run `edgebnn convert`")
    types = {v: k for k, v in vars(schema.TensorType).items() if not k.startswith("_")}
    subgraph = schema.Model.GetRootAsModel(flatbuffer, 0).Subgraphs(0)
    found = []
    for i in range(subgraph.TensorsLength()):
        t = subgraph.Tensors(i)
        shape = [int(d) for d in t.ShapeAsNumpy()] if t.ShapeLength() else []
        found.append({"index": i, "name": _text(t.Name()), "type": types.get(t.Type(), "UNKNOWN"), "shape": shape})
    return found


NUMPY_TYPES = {"FLOAT32": "float32", "FLOAT16": "float16", "INT8": "int8", "UINT8": "uint8", "INT32": "int32"}


def constant(flatbuffer: bytes, index: int):
    """The data of the main subgraph's tensor ``index`` as a numpy array of its shape, or None
    when it is not a constant (computed at run time) or of a type edgebnn does not read."""
    model = schema.Model.GetRootAsModel(flatbuffer, 0)
    tensor = model.Subgraphs(0).Tensors(index)
    types = {v: k for k, v in vars(schema.TensorType).items() if not k.startswith("_")}
    dtype = NUMPY_TYPES.get(types.get(tensor.Type(), ""))
    buffer = model.Buffers(tensor.Buffer())
    if dtype is None or not tensor.Buffer() or not buffer.DataLength():
        return None
    data = buffer.DataAsNumpy().view(dtype)
    shape = [int(d) for d in tensor.ShapeAsNumpy()] if tensor.ShapeLength() else []
    return data.reshape(shape) if int(np.prod(shape)) == data.size else None


def with_outputs(flatbuffer: bytes, indices: list[int]) -> tuple[bytes, list[int]]:
    """A copy of ``flatbuffer`` whose main subgraph also outputs the tensors ``indices``.

    The operators and kernels are untouched (no re-conversion), so the intermediate values are
    exactly those the deployed model computes; used to find where outputs diverge.

    Returns:
        The flatbuffer and, for each of ``indices``, its position among the outputs.
    """
    import flatbuffers

    model = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(flatbuffer, 0))
    subgraph = model.subgraphs[0]
    existing = [int(i) for i in subgraph.outputs]
    outputs = existing + [i for i in dict.fromkeys(indices) if i not in existing]
    subgraph.outputs = outputs
    builder = flatbuffers.Builder(len(flatbuffer) + 4096)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output()), [outputs.index(i) for i in indices]
