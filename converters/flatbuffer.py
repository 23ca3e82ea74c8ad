"""Read a TFLite flatbuffer's operators from the flatbuffer itself, through its schema."""

from __future__ import annotations

from collections import Counter

from edgebnn.errors import EdgebnnError


def _builtin_names() -> dict[int, str]:
    from tensorflow.lite.python import schema_py_generated as schema

    return {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}


def operators(flatbuffer: bytes) -> list[dict]:
    """Every operator of every subgraph in execution order.

    Returns:
        A list of ``{"op": name, "inputs": [...], "outputs": [...]}`` with tensor names;
        custom operators (``LceBconv2d``, ``LceQuantize``...) appear under their custom code.

    Raises:
        EdgebnnError: the bytes are not a TFLite flatbuffer.
    """
    from tensorflow.lite.python import schema_py_generated as schema

    if len(flatbuffer) < 8 or flatbuffer[4:8] != b"TFL3":
        raise EdgebnnError("not a TFLite flatbuffer (no TFL3 identifier): re-run `edgebnn convert`")
    model = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(flatbuffer, 0))
    names = _builtin_names()
    found = []
    for subgraph in model.subgraphs:
        tensor_names = [t.name.decode() if isinstance(t.name, bytes) else t.name for t in subgraph.tensors]
        for op in subgraph.operators or []:
            code = model.operatorCodes[op.opcodeIndex]
            if code.customCode:
                name = code.customCode.decode() if isinstance(code.customCode, bytes) else code.customCode
            else:
                # Codes above 127 live in builtinCode; older files only fill the deprecated field.
                name = names.get(max(code.builtinCode, code.deprecatedBuiltinCode), "UNKNOWN")
            found.append(
                {
                    "op": name,
                    "inputs": [tensor_names[i] for i in op.inputs if i >= 0],
                    "outputs": [tensor_names[i] for i in op.outputs if i >= 0],
                }
            )
    return found


def op_counts(flatbuffer: bytes) -> dict[str, int]:
    """How many times each operator occurs, most frequent first."""
    return dict(Counter(op["op"] for op in operators(flatbuffer)).most_common())
