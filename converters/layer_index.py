"""One walk of a converted model's layers, and which flatbuffer ops implement each layer.

Every conversion check (parity, sign flips, the explanation, the size report) reads the same
layers and the same attribution of ops to layers: :class:`LayerIndex` walks the model once per
conversion and attributes the ops once, and each check is handed it.

The flatbuffer's tensor names carry the Keras layer names (``model/quant_conv2d_3/...``,
several locations joined by ``;`` when ops were fused, cut at 50 characters), so every
operator is attributed to the layers its outputs name (:meth:`LayerIndex.ops_of`).
"""

from __future__ import annotations

from functools import cached_property

from edgebnn.models.introspection import flat_layers, inbound_layers, is_binary, nested_models

BCONV = "LceBconv2d"
# Ops whose first input, not their output, carries the name of the layer they implement:
# LCE names a binary convolution's output after the BatchNorm fused into it.
NAMED_BY_INPUT = {BCONV, "LceBMaxPool2d"}
NAME_LIMIT = 50  # LCE cuts tensor names here; a component at the cut may be partial


class LayerIndex:
    """A model's layers, walked once (when first asked for), and its flatbuffer's ops.

    Attributes:
        model: the Keras model that was converted.
        flatbuffer: its flatbuffer.
        ops: :func:`edgebnn.converters.flatbuffer.operators` of the flatbuffer.
        layers: every leaf layer (nested models expanded), in model order.
        by_name: those layers by name.
        model_names: the model's name and its nested models'.
    """

    def __init__(self, model, flatbuffer: bytes, ops: list[dict] | None = None):
        from edgebnn.converters.flatbuffer import operators

        self.model, self.flatbuffer = model, flatbuffer
        self.ops = ops if ops is not None else operators(flatbuffer)

    # The walks are made when a check first asks (a float model's parity needs none).
    @cached_property
    def layers(self) -> list:
        return flat_layers(self.model)

    @cached_property
    def by_name(self) -> dict:
        return {layer.name: layer for layer in self.layers}

    @cached_property
    def model_names(self) -> set[str]:
        return {self.model.name} | {m.name for m in nested_models(self.model)}

    @cached_property
    def computing(self) -> list:
        """The layers that compute (no ``InputLayer``), in model order."""
        return [layer for layer in self.layers if type(layer).__name__ != "InputLayer"]

    @cached_property
    def binary(self) -> list:
        """The binary layers (:func:`edgebnn.models.introspection.is_binary`), in model order."""
        return [layer for layer in self.layers if is_binary(layer)]

    @cached_property
    def ops_of(self) -> dict[str, list[int]]:
        """Each layer name mapped to the indices of the ops that implement it.

        An op belongs to the layers named in its output tensors (an ``LceBconv2d`` to the binary
        conv behind the BatchNorm its output is named after, or else the one its input names; an
        ``LceBMaxPool2d`` to its input's); the final op, whose output is named after the
        signature, belongs to the model's output layer.
        """
        names = set(self.by_name)

        def named_in(tensors):
            return set().union(*(layer_names_in(t, self.model_names) for t in tensors)) & names if tensors else set()

        found: dict[str, list[int]] = {}
        for i, op in enumerate(self.ops):
            layers = named_in(op["outputs"])
            if op["op"] == BCONV and op["inputs"]:
                # A binary conv's output usually carries the name of the BatchNorm fused into it:
                # step back to the conv that feeds it. Its input (the LceQuantize output) names the
                # conv too, but one quantized input may feed several convs (BNext's parallel 1x1s).
                layers = {_binary_producer(self.by_name[n]) for n in layers} - {None} or named_in(op["inputs"][:1])
            elif op["op"] in NAMED_BY_INPUT and op["inputs"]:
                layers = named_in(op["inputs"][:1])
            if not layers and any(t.startswith(("StatefulPartitionedCall", "Identity")) for t in op["outputs"]):
                layers = {self.model.output_names[0]} & names if getattr(self.model, "output_names", None) else set()
                layers = layers or {self.model.layers[-1].name}
            for name in layers:
                found.setdefault(name, []).append(i)
        return found


def layer_names_in(tensor_name: str, model_names: set[str]) -> set[str]:
    # Each ';'-segment is a location "model/[nested model/]layer/op...": the layer is the first
    # component that is not a model name (op names such as "add" must not count as layers).
    found = set()
    segments = tensor_name.split(";")
    for k, segment in enumerate(segments):
        comps = [c for c in segment.split("/") if c]
        if k == len(segments) - 1 and len(tensor_name) >= NAME_LIMIT:
            comps = comps[:-1]  # possibly cut mid-name
        rest = [c for c in comps if c not in model_names]
        if rest and len(rest) < len(comps):
            found.add(rest[0])
    return found


def _binary_producer(layer):
    """The binary conv whose output the BatchNorm ``layer`` normalizes (LCE folds it into the
    conv), else None. (An output named after a binary conv may be the next conv's bit-packed
    input, written by the previous conv: not evidence of which conv this is.)"""
    inbound = inbound_layers(layer)
    if type(layer).__name__ == "BatchNormalization" and len(inbound) == 1 and not isinstance(inbound[0], list):
        return inbound[0].name if is_binary(inbound[0]) else None
    return None
