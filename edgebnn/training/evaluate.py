"""Top-1 / top-5 accuracy of a trained run on a validation split."""

from __future__ import annotations

from typing import Any

from edgebnn.data.spec import DataSpec, parse_spec
from edgebnn.errors import EdgebnnError, UsageError
from edgebnn.run.rundir import BEST_MODEL, RunDir
from edgebnn.run.trust import Trust


def evaluate_source(src: str, *, data: str | None = None, batch_size: int = 256, which: str = "last",
                    out: str | None = None, weights: str | None = None, trust: Trust = Trust(),
                    model_flags: dict | None = None) -> dict[str, Any]:
    """:func:`evaluate` ``src``: a run directory, a Keras file, or a model name with ``weights``.

    The dataset defaults to the one the run trained on. Everything given is checked before
    TensorFlow loads.

    Raises:
        UsageError: no run there, no dataset given or recorded, a bad spec, a model name without
            ``weights`` (random weights have nothing to evaluate).
    """
    from edgebnn.run.sources import parse_source, resolve_source

    source = parse_source(src, weights=weights, **(model_flags or {}))
    if source.random_weights:
        raise UsageError(f"{src} is a model name: give its weights with --weights PATH (or imagenet for Larq Zoo), "
                         "or evaluate a trained run directory")
    data_spec = parse_spec(data) if data else None
    if isinstance(batch_size, bool) or batch_size < 1:
        raise UsageError(f"bad --batch-size {batch_size}: give at least 1")
    run = resolve_source(source, out=out, trust=trust)
    if data_spec is None:
        recorded = run.manifest.get("data")
        if not recorded:
            raise UsageError(f"{src} records no dataset: give --data")
        data_spec = parse_spec(recorded)
    return {**evaluate(run, data_spec=data_spec, batch_size=batch_size, which=which, trust=trust), "run": str(run.path)}


def evaluate(run: RunDir, *, data_spec: DataSpec, batch_size: int = 256, which: str = "last",
             trust: Trust = Trust()) -> dict[str, Any]:
    """Top-1 / top-5 accuracy of the run's model on ``data_spec``'s validation split.

    Args:
        run: a trained run directory.
        data_spec: the dataset (its validation split is used).
        batch_size: evaluation batch size.
        which: ``last`` (``model.keras``) or ``best`` (``best.keras``).
        trust: what the user allowed on this command (:class:`edgebnn.run.trust.Trust`).

    Returns:
        ``{"top1", "top5", "images", "data", "model_file"}``; also saved as ``manifest.evaluation``.
    """
    import numpy as np
    import tensorflow as tf

    from edgebnn.data.pipelines import data_errors, load_dataset

    card = run.section("card")
    model_file = run.keras_path if which == "last" else run.path / BEST_MODEL
    if which == "best" and not model_file.exists():
        raise EdgebnnError(f"no {BEST_MODEL} in {run.path}: evaluate the last model (without --best)")
    model = run.load_model(model_file.name, trust=trust)
    shape = tuple(model.input_shape[1:])
    dataset = load_dataset(data_spec, input_shape=shape, batch_size=batch_size,
                           preprocessing=card.get("preprocessing") or {})
    classes = model.output_shape[-1]
    if dataset.num_classes != classes:
        raise EdgebnnError(f"the model predicts {classes} classes, {data_spec} has {dataset.num_classes}: wrong dataset?")
    top1 = top5 = total = 0
    k = min(5, classes)
    with data_errors():
        for x, y in dataset.val:
            probs = model(x, training=False)
            y = tf.cast(y, tf.int32)
            top1 += int(tf.reduce_sum(tf.cast(tf.math.in_top_k(y, probs, 1), tf.int32)))
            top5 += int(tf.reduce_sum(tf.cast(tf.math.in_top_k(y, probs, k), tf.int32)))
            total += int(np.shape(y)[0])
    result = {"top1": top1 / max(1, total), f"top{k}" if k != 5 else "top5": top5 / max(1, total),
              "images": total, "data": str(data_spec), "model_file": model_file.name}
    run.update(evaluation=result)
    return result
