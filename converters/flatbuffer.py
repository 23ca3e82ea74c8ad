"""Read a TFLite flatbuffer's operators from the flatbuffer itself, through its schema."""

from __future__ import annotations

from collections import Counter

from edgebnn.errors import EdgebnnError


def _builtin_names() -> dict[int, str]:
    from tensorflow.lite.python import schema_py_generated as schema

    return {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}


def _text(value) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else (value or "")


def operators(flatbuffer: bytes) -> list[dict]:
    """Every operator of every subgraph in execution order.

    Reads through the schema's accessor API (not the object API), so a 20 MB flatbuffer's
    weights are never copied into Python lists.

    Returns:
        A list of ``{"op": name, "inputs": [...], "outputs": [...], "constants": [...]}``
        with tensor names; ``constants`` holds ``(buffer index, bytes)`` of the op's inputs
        that carry data (weights, biases, multipliers). Custom operators (``LceBconv2d``,
        ``LceQuantize``...) appear under their custom code.

    Raises:
        EdgebnnError: the bytes are not a TFLite flatbuffer.
    """
    from tensorflow.lite.python import schema_py_generated as schema

    if len(flatbuffer) < 8 or flatbuffer[4:8] != b"TFL3":
        raise EdgebnnError("not a TFLite flatbuffer (no TFL3 identifier): re-run `edgebnn convert`")
    model = schema.Model.GetRootAsModel(flatbuffer, 0)
    names = _builtin_names()
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
                    "constants": constants,
                }
            )
    return found


def op_counts(flatbuffer: bytes) -> dict[str, int]:
    """How many times each operator occurs, most frequent first."""
    return dict(Counter(op["op"] for op in operators(flatbuffer)).most_common())
