"""The BNext authors' released weights (PyTorch ``.pth.tar``) in edgebnn's BNext.

The authors (hpi-xnor/BNext) released BNext-Tiny/Small/Middle/Large checkpoints saved by their
training script: ``{"epoch", "state_dict", ...}`` with the state_dict of a DataParallel model
(names start with ``module.``). :func:`check_checkpoint` reads one without TensorFlow (and
without PyTorch, :mod:`edgebnn.models.torch_checkpoint`) and refuses it before anything is
built; :func:`load_checkpoint` puts every tensor into a model built with
:func:`checkpoint_options`. What the import does, and why (papers.md, BNext):

- every tensor the forward pass uses is mapped by name; a missing one, one of the wrong shape,
  or one this model has no place for is an error naming it. The authors define parameters they
  never use (the stem's ``prelu``, ``activation1`` of every plain unit): they are ignored, as
  are the activations' ``temperature`` (their sign does not depend on it) and BN's
  ``num_batches_tracked``;
- a binary conv computes with sign(w) only once its ``temperature`` is below 1e-7; a checkpoint
  with a larger one (an early epoch) holds weights that are not binary yet, and is refused;
- PyTorch's BN epsilon (1e-5) is folded into gamma for Keras' (1e-3): exact in inference;
- kernels go from OIHW to HWIO;
- PyTorch pads a stride-2 3x3 conv by one pixel on every side, TensorFlow's "same" only at the
  bottom/right of an even map, so each sees the image shifted by a pixel. The model turns its
  input by 180 degrees (``rotate_input``, one reverse op; users feed images as they are) and
  every 3x3 kernel is turned by 180 degrees here: then every stride-2 conv sees what PyTorch's
  sees, and every other layer (1x1 convs, stride-1 3x3 convs, 2x2/2 pools on even maps, SE, the
  global pool before the classifier) commutes with the turn, so the logits are the authors'.
  Exact for inputs whose side is a multiple of 32 (every stride-2 layer on an even map).

``torch.sign(0)`` is 0 where larq's sign is +1: the two differ only on a latent weight or a
pre-activation of exactly zero.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edgebnn.errors import EdgebnnError, UsageError
from edgebnn.models.bnext import SIZES as WIDTHS
from edgebnn.models.bnext import se_width, stage_widths

SIZES = {"bnext-tiny": "tiny", "bnext-small": "small", "bnext-middle": "middle", "bnext-large": "large"}
BINARY_TEMPERATURE = 1e-7  # HardBinaryConv: sign(w) once temperature < 1e-7, else clamp(w / T, -1, 1)
TORCH_BN_EPSILON = 1e-5
# The builder options the authors' weights need (and that a user may not change).
OPTIONS = {"padding": "zero", "rotate_input": True, "stem_stride": 2}
# Buffers of the authors' checkpoints that do not change what the model computes.
IGNORED_BUFFERS = (".binary_activation.temperature", ".num_batches_tracked")  # sign(x / T) = sign(x)
UNIT_PARTS = {  # the authors' unit member -> (edgebnn layer suffix, weight)
    "move.bias": ("move", "value"),
    "binary_conv.weight": ("conv", "kernel"),
    "norm1": ("bn1", "bn"),
    "activation2.weight": ("prelu", "alpha"),
    "scale": ("recouple", "value"),
    "se.se.1.weight": ("se_reduce", "kernel"),
    "se.se.1.bias": ("se_reduce", "bias"),
    "se.se.3.weight": ("se_expand", "kernel"),
    "se.se.3.bias": ("se_expand", "bias"),
    "norm2": ("bn2", "bn"),
}
BN_PARTS = {"weight": "gamma", "bias": "beta", "running_mean": "moving_mean", "running_var": "moving_variance"}


def checkpoint_options(card, options: dict[str, Any], input_shape) -> dict[str, Any]:
    """The builder options for the authors' weights: ``options`` plus :data:`OPTIONS`.

    Raises:
        UsageError: not a BNext size with released weights, an option that contradicts the
            authors' network, or an input side that is not a multiple of 32.
    """
    if card.name not in SIZES:
        raise UsageError(f"a PyTorch checkpoint imports into {', '.join(SIZES)} (the BNext authors' released "
                         f"weights); {card.name} has no importer: give a Keras weights file")
    for key, value in OPTIONS.items():
        if key in options and options[key] != value:
            raise UsageError(f"the BNext authors' weights need {key}={value!r} (given {options[key]!r}): "
                             f"drop --model-arg {key}")
    height, width = (input_shape or card.input_shape)[:2]
    if height % 32 or width % 32:
        raise UsageError(f"the BNext authors' weights need an input side that is a multiple of 32 (every stride-2 "
                         f"layer on an even map, as in PyTorch), not {height}x{width}: give --input-size "
                         f"{max(32, round(height / 32) * 32)}")
    return {**options, **OPTIONS}


def check_checkpoint(path: str | Path, *, card, options: dict[str, Any], input_shape=None,
                     num_classes: int | None = None) -> dict[str, Any]:
    """Read the checkpoint at ``path`` (no TensorFlow) and refuse one that cannot be imported into
    ``card``'s model at ``options`` (those of :func:`checkpoint_options`).

    Returns:
        What it is: ``format`` (``pytorch``), ``layout`` (``state_dict`` or ``training dict``),
        ``epoch`` (the training script's, or None).

    Raises:
        UsageError: no such file.
        EdgebnnError: unreadable, code in its pickle, binary convs not binary yet, or a tensor
            missing, of the wrong shape or without a place in the model (named).
    """
    from edgebnn.models.torch_checkpoint import read_checkpoint

    path = Path(path)
    if not path.is_file():
        raise UsageError(f"no weights file {str(path)!r}: give the .pth.tar checkpoint")
    checkpoint, archive = read_checkpoint(path)
    try:
        _check_temperature(checkpoint, path)
        plan, unused = _plan(SIZES[card.name], width=options.get("width", 1.0),
                             channels=(input_shape or card.input_shape)[2], num_classes=num_classes or card.num_classes)
        _check_tensors(checkpoint.tensors, plan, unused, path, card, options)
    finally:
        archive.close()
    return {"format": "pytorch", "layout": checkpoint.layout, "epoch": checkpoint.epoch}


def _check_tensors(tensors, plan, unused, path: Path, card, options) -> None:
    for torch_name, (_, _, want) in plan.items():
        if torch_name not in tensors:
            raise EdgebnnError(f"{path.name} lacks {torch_name} (shape {want}), which {card.name} needs: is it a "
                               "checkpoint of another model?")
        got = tuple(tensors[torch_name].shape)
        if got != want:
            raise EdgebnnError(f"{path.name}: {torch_name} has shape {got}, {card.name} here needs {want}"
                               + _width_hint(tensors, plan, card, options))
    extra = sorted(k for k in tensors if k not in plan and k not in unused
                   and not k.endswith(("binary_conv.temperature", *IGNORED_BUFFERS)))
    if extra:
        raise EdgebnnError(f"{path.name} has {len(extra)} tensor(s) {card.name} has no place for, e.g. {extra[0]}: "
                           "is it a checkpoint of another BNext size?")


def _check_temperature(checkpoint, path: Path) -> None:
    temperatures = {k: v for k, v in checkpoint.tensors.items() if k.endswith("binary_conv.temperature")}
    if not temperatures:
        raise EdgebnnError(f"{path} has no binary_conv.temperature buffers: not a checkpoint of the authors' BNext")
    name, largest = max(((k, float(v.numpy().max())) for k, v in temperatures.items()), key=lambda kv: kv[1])
    if not largest < BINARY_TEMPERATURE:
        epoch = f" (epoch {checkpoint.epoch})" if checkpoint.epoch is not None else ""
        raise EdgebnnError(
            f"{path.name}{epoch} is an early checkpoint: its binary convs' temperature is {largest:.3g} ({name}), "
            f"not below {BINARY_TEMPERATURE:g}. The authors' convs use sign(w) only from then on (the temperature "
            "falls x0.9 per epoch, below 1e-7 from about epoch 153); before, their weights are clamp(w / T, -1, 1), "
            "not binary, and cannot become binary convolutions. Give a checkpoint from the end of training "
            "(the released ones are)"
        )


def _plan(size: str, *, width: float, channels: int, num_classes: int):
    """What the model takes from a checkpoint, without TensorFlow.

    Returns:
        ``{authors' tensor name: (edgebnn layer, weight, PyTorch shape)}`` for every tensor the
        model takes, and the names of the parameters the authors' forward pass never uses (the
        stem's ``prelu``, the ``activation1`` of every plain unit).

    Their block ``i`` (from 0 after the stem) is ``feature.<i+1>``; its 3x3 unit is always the
    attribute ``Attention``, an ELM unit on odd ``i`` and a plain ``FFN_3x3`` on even ``i``.
    """
    widths = stage_widths(size, width)
    stem, last = widths[0], widths[-1]
    plan = {"feature.0.conv1.weight": ("stem_conv", "kernel", (stem, channels, 3, 3)),
            "prelu.weight": ("head_prelu", "alpha", (last,)),
            "fc.weight": ("fc", "kernel", (num_classes, last)), "fc.bias": ("fc", "bias", (num_classes,))}
    plan.update({f"feature.0.bn1.{p}": ("stem_bn", keras_part, (stem,)) for p, keras_part in BN_PARTS.items()})
    unused = {"feature.0.prelu.weight"}
    units = []
    for i, (c_in, c_out) in enumerate(zip(widths[:-1], widths[1:])):
        units.append((f"feature.{i + 1}.Attention", f"block{i}_3x3", i % 2 == 1, c_in, 3))
        pairs = [("FFN", "")] if c_out == c_in else [("FFN_1", "a"), ("FFN_2", "b")]
        units += [(f"feature.{i + 1}.{torch_name}", f"block{i}_1x1{ab}", False, c_in, 1) for torch_name, ab in pairs]
    for torch_unit, keras_unit, elm, c, k in units:
        hidden = se_width(c)
        shapes = {"move.bias": (1, c, 1, 1), "binary_conv.weight": (c, c, k, k), "activation2.weight": (c,),
                  "scale": (1, c, 1, 1), "se.se.1.weight": (hidden, c, 1, 1), "se.se.1.bias": (hidden,),
                  "se.se.3.weight": (c, hidden, 1, 1), "se.se.3.bias": (c,), "norm1": (c,), "norm2": (c,)}
        for member, (suffix, weight) in UNIT_PARTS.items():
            parts = {f"{member}.{p}": k for p, k in BN_PARTS.items()} if weight == "bn" else {member: weight}
            for torch_name, part in parts.items():
                plan[f"{torch_unit}.{torch_name}"] = (f"{keras_unit}_{suffix}", part, shapes[member])
        if elm:
            plan[f"{torch_unit}.activation1.weight"] = (f"{keras_unit}_shortcut_prelu", "alpha", (c,))
        else:
            unused.add(f"{torch_unit}.activation1.weight")
    return plan, unused


def _converted(tensor, variable, part: str):
    """A PyTorch tensor in the Keras variable's layout (kernels turned by 180 degrees where 3x3)."""
    import numpy as np

    value = tensor.astype("float32")
    if part == "kernel" and value.ndim == 4:  # OIHW -> HWIO, 3x3 turned with the input
        value = value.transpose(2, 3, 1, 0)
        if value.shape[0] > 1:
            value = value[::-1, ::-1]
    elif part == "kernel":  # Linear (out, in) -> Dense (in, out)
        value = value.T
    return np.ascontiguousarray(value.reshape(variable.shape))


def load_checkpoint(model, path: str | Path, *, card) -> dict[str, Any]:
    """Put the authors' checkpoint at ``path`` into ``model``, built with the options of
    :func:`checkpoint_options`; checks it as :func:`check_checkpoint` does first.

    Returns:
        What was done: ``epoch``, ``layout``, ``tensors`` (mapped), ``ignored`` (their count).

    Raises:
        EdgebnnError: as :func:`check_checkpoint`.
    """
    import numpy as np

    from edgebnn.models.torch_checkpoint import read_checkpoint

    path = Path(path)
    if card.name not in SIZES:
        raise UsageError(f"a PyTorch checkpoint imports into {', '.join(SIZES)}, not {card.name}")
    checkpoint, archive = read_checkpoint(path)
    try:
        _check_temperature(checkpoint, path)
        from edgebnn.models.bnext import SIZES as WIDTHS

        width = model.get_layer("stem_conv").kernel.shape[-1] / WIDTHS[SIZES[card.name]][0][0]
        options = {"width": width}
        plan, unused = _plan(SIZES[card.name], width=width, channels=model.input_shape[-1],
                             num_classes=model.output_shape[-1])
        tensors = checkpoint.tensors
        _check_tensors(tensors, plan, unused, path, card, options)
        for torch_name, (layer_name, part, _) in plan.items():
            variable = getattr(model.get_layer(layer_name), part)
            variable.assign(_converted(tensors[torch_name].numpy(), variable, part))
        for layer_name in {layer for layer, part, _ in plan.values() if part == "moving_variance"}:
            layer = model.get_layer(layer_name)  # gamma * sqrt(var + eps_keras) / sqrt(var + eps_torch)
            var = layer.moving_variance.numpy()
            layer.gamma.assign(layer.gamma.numpy() * np.sqrt(var + layer.epsilon) / np.sqrt(var + TORCH_BN_EPSILON))
        assigned = {id(getattr(model.get_layer(layer), part)) for layer, part, _ in plan.values()}
        missed = [w.name for w in model.weights if id(w) not in assigned]
        if missed:  # the plan and the builder disagree: a bug, never a silently random weight
            raise EdgebnnError(f"internal: the BNext import left {len(missed)} weight(s) unset, e.g. {missed[0]}")
    finally:
        archive.close()
    return {"epoch": checkpoint.epoch, "layout": checkpoint.layout, "tensors": len(plan),
            "ignored": len(tensors) - len(plan)}


def _width_hint(tensors, plan, card, options) -> str:
    """``: give --width X`` when the checkpoint's stem shows another width."""
    stem = tensors.get("feature.0.conv1.weight")
    built = plan["feature.0.conv1.weight"][2][0]
    if stem is None or stem.shape[0] == built:
        return ": is it a checkpoint of another BNext size?"
    return (f" (its stem has {stem.shape[0]} channels, this model {built} at width {options.get('width', 1.0):g}): "
            f"give --width {stem.shape[0] / WIDTHS[SIZES[card.name]][0][0]:g}, or the size it was trained at")
