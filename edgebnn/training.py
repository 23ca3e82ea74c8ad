"""Training: one function from (model name, recipe, dataset) to a run directory.

The model is built and compiled inside a ``tf.distribute`` strategy scope, so the same call
trains on one CPU, on the GPUs of a machine, or across machines.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from edgebnn.rundir import RunDir


def make_strategy(kind: str = "auto"):
    """The ``tf.distribute`` strategy for ``kind``.

    ``auto`` mirrors over the local GPUs when there are several, else the default strategy;
    ``mirrored`` forces MirroredStrategy; ``multiworker`` reads the cluster from ``TF_CONFIG``.
    """
    import tensorflow as tf

    if kind == "multiworker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    if kind == "mirrored" or (kind == "auto" and len(tf.config.list_logical_devices("GPU")) > 1):
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()


def learning_rate(recipe, steps_per_epoch: int):
    """The recipe's schedule as a Keras LearningRateSchedule (per step)."""
    import tf_keras as keras

    total = recipe.epochs * steps_per_epoch
    warmup = recipe.warmup_epochs * steps_per_epoch
    if recipe.schedule == "step":
        boundaries = [m * steps_per_epoch for m in recipe.milestones]
        values = [recipe.lr * recipe.gamma**i for i in range(len(boundaries) + 1)]
        base = keras.optimizers.schedules.PiecewiseConstantDecay(boundaries, values)
    elif recipe.schedule == "cosine":
        base = keras.optimizers.schedules.CosineDecay(
            recipe.lr if not warmup else 0.0,
            decay_steps=max(1, total - warmup),
            warmup_target=recipe.lr if warmup else None,
            warmup_steps=warmup,
        )
    else:
        return recipe.lr
    return base


def make_optimizer(recipe, steps_per_epoch: int):
    import tf_keras as keras

    lr = learning_rate(recipe, steps_per_epoch)
    if recipe.optimizer == "sgd":
        return keras.optimizers.SGD(lr, momentum=recipe.momentum, nesterov=True)
    if recipe.optimizer == "adamw":
        return keras.optimizers.AdamW(lr, weight_decay=recipe.weight_decay)
    return keras.optimizers.Adam(lr)


def train(
    run: RunDir,
    *,
    model_name: str,
    recipe,
    data_spec: str,
    strategy: str = "auto",
    model_options: dict[str, Any] | None = None,
    verbose: int = 1,
) -> dict[str, Any]:
    """Train ``model_name`` by ``recipe`` on ``data_spec`` and save the run.

    Checkpoints are written every epoch (model and optimizer) with Keras' BackupAndRestore, so
    calling this again on the same run directory resumes where an interrupted run stopped.

    Returns:
        The final metrics (``val_accuracy``, ``val_loss``, ``accuracy``, ``loss``, ``epochs``).
    """
    import tf_keras as keras

    from edgebnn.data import load_dataset
    from edgebnn.models.stats import model_stats
    from edgebnn.registry import create_model, get_card

    card = get_card(model_name)
    dist = make_strategy(strategy)
    dataset = load_dataset(data_spec, input_shape=card.input_shape, batch_size=recipe.batch_size)
    steps = max(1, math.ceil(dataset.train_size / recipe.batch_size))
    with dist.scope():
        model = create_model(
            card.name, input_shape=card.input_shape, num_classes=dataset.num_classes, **(model_options or {})
        )
        model.compile(
            optimizer=make_optimizer(recipe, steps),
            loss=keras.losses.SparseCategoricalCrossentropy(),
            metrics=["accuracy"],
        )
    logs = run.path / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    callbacks = [
        keras.callbacks.BackupAndRestore(str(run.path / "checkpoints")),
        keras.callbacks.CSVLogger(str(logs / "metrics.csv"), append=True),
        keras.callbacks.TensorBoard(str(logs / "tensorboard"), write_graph=False, profile_batch=0),
        keras.callbacks.TerminateOnNaN(),
    ]
    history = model.fit(
        dataset.train,
        validation_data=dataset.val,
        epochs=recipe.epochs,
        callbacks=callbacks,
        verbose=verbose,
    )
    final = {k: float(v[-1]) for k, v in history.history.items()}
    final["epochs"] = recipe.epochs
    run.save_model(model)
    run.update(
        card=card.to_dict(),
        model_options=model_options or {},
        recipe=recipe.to_dict(),
        dataset=dataset.describe(),
        input_shape=list(card.input_shape),
        num_classes=dataset.num_classes,
        stats=model_stats(model),
        metrics=final,
    )
    return final
