"""Model statistics from larq's profiler: binary and float parameters, MACs and memory."""

from __future__ import annotations

import larq as lq


def model_stats(model) -> dict:
    """Parameter, MAC and memory counts of a Keras model.

    Binary means 1-bit (larq counts a parameter as 1-bit when its quantizer has precision 1,
    and a MAC as binary when both operands are 1-bit).

    Returns:
        A JSON-ready dict: ``params``, ``binary_params``, ``float_params``, ``binary_macs``,
        ``float_macs``, ``binary_mac_share`` (of all counted MACs), ``memory_bytes``
        (weights at their bit widths) and ``float_memory_bytes`` (all weights at 32 bits).
    """
    profile = lq.models.ModelProfile(model)
    params = int(model.count_params())
    binary_params = int(profile.weight_count(bitwidth=1))
    binary_macs = int(profile.op_count("mac", 1) or 0)
    all_macs = int(profile.op_count("mac") or 0)
    float_macs = all_macs - binary_macs
    return {
        "params": params,
        "binary_params": binary_params,
        "float_params": params - binary_params,
        "binary_macs": binary_macs,
        "float_macs": float_macs,
        "binary_mac_share": round(binary_macs / all_macs, 4) if all_macs else 0.0,
        # BNext's "OPs": binary MACs / 64 + float MACs.
        "ops": int(binary_macs / 64 + float_macs),
        "memory_bytes": int(profile.memory / 8),
        "float_memory_bytes": int(profile.fp_equivalent_memory / 8),
    }


def card_stats(card, *, cache_dir=None, input_shape=None, options=None) -> dict:
    """``model_stats`` of a registered model (at its default input shape, or ``input_shape`` and
    builder ``options``), cached.

    Building the largest models takes seconds and gigabytes, so results are kept in
    ``~/.cache/edgebnn`` (or ``$EDGEBNN_CACHE``), keyed by edgebnn's version, size and options.
    """
    import json
    import os
    from pathlib import Path

    import edgebnn
    from edgebnn import atomic
    from edgebnn.registry import create_model

    root = Path(cache_dir or os.environ.get("EDGEBNN_CACHE") or Path.home() / ".cache" / "edgebnn")
    path = root / f"model-stats-{edgebnn.__version__}.json"
    try:
        cache = json.loads(path.read_text())
    except (OSError, ValueError):
        cache = {}
    shape = tuple(input_shape or card.input_shape)
    key = f"{card.name}@{'x'.join(map(str, shape))}/{card.num_classes}"
    if options:
        key += "?" + "&".join(f"{k}={v!r}" for k, v in sorted(options.items()))
    if key not in cache:
        import tf_keras as keras

        model = create_model(card.name, input_shape=shape, **(options or {}))
        cache[key] = model_stats(model)
        del model
        keras.backend.clear_session()
        try:
            atomic.write_json(path, cache)
        except OSError:
            pass  # an unwritable cache only costs time
    return cache[key]
