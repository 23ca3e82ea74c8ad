"""Training: one function from (model name, recipe, dataset) to a run directory.

The model is built and compiled inside a ``tf.distribute`` strategy scope, so the same call
trains on one CPU, on the GPUs of a machine, or across machines (``TF_CONFIG``).

A run is resumable and reproducible: seeds are fixed and TensorFlow's op determinism is on,
the input pipeline is a pure function of (seed, epoch) (see ``edgebnn.data``), and the
checkpoint holds the model, the optimizer (its step counter drives the learning-rate
schedule) and the callbacks' counters. ``resume`` therefore continues an interrupted run with
the same weights an uninterrupted run would have reached.

The run directory gets ``model.keras`` (the model after the last epoch: what ``convert`` uses),
``best.keras`` (the best validation accuracy), ``logs/metrics.csv`` (per-epoch metrics with the
overall ``flip_ratio``), ``logs/flips.csv`` (per-layer flip ratios), ``logs/tensorboard/`` and
``checkpoints/``.
"""

from __future__ import annotations

import functools
import json
import os
from pathlib import Path
from typing import Any, Sequence

from edgebnn.errors import EdgebnnError, UsageError
from edgebnn.rundir import RunDir

CHECKPOINTS = "checkpoints"
BEST_MODEL = "best.keras"


def make_strategy(kind: str = "auto"):
    """The ``tf.distribute`` strategy for ``kind``.

    ``auto`` mirrors over the local GPUs when there are several, else the default strategy;
    ``mirrored`` forces MirroredStrategy; ``multiworker`` reads the cluster from ``TF_CONFIG``.
    """
    import tensorflow as tf

    if kind == "multiworker":
        if "TF_CONFIG" not in os.environ:
            raise UsageError("--strategy multiworker needs TF_CONFIG (cluster and task): see README, Training")
        return tf.distribute.MultiWorkerMirroredStrategy()
    if kind == "mirrored" or (kind == "auto" and len(tf.config.list_logical_devices("GPU")) > 1):
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()


def is_chief() -> bool:
    """Whether this process writes the run directory (the chief, or worker 0 without a chief)."""
    config = json.loads(os.environ.get("TF_CONFIG") or "{}")
    task = config.get("task") or {}
    if not task:
        return True
    if task.get("type") == "chief":
        return True
    return task.get("type") == "worker" and int(task.get("index", 0)) == 0 and "chief" not in config.get("cluster", {})


def learning_rate(recipe, steps_per_epoch: int):
    """The recipe's schedule as a Keras LearningRateSchedule (per step), or a float.

    A ``plateau`` schedule is a float that :class:`edgebnn.callbacks.PlateauLR` lowers.
    """
    import tf_keras as keras

    total = recipe.epochs * steps_per_epoch
    warmup = min(recipe.warmup_epochs, recipe.epochs - 1) * steps_per_epoch
    if recipe.schedule == "step":
        boundaries = [m * steps_per_epoch for m in recipe.milestones]
        values = [recipe.lr * recipe.gamma**i for i in range(len(boundaries) + 1)]
        return keras.optimizers.schedules.PiecewiseConstantDecay(boundaries, values)
    if recipe.schedule == "cosine":
        return keras.optimizers.schedules.CosineDecay(
            recipe.lr if not warmup else 0.0,
            decay_steps=max(1, total - warmup),
            warmup_target=recipe.lr if warmup else None,
            warmup_steps=warmup,
        )
    return recipe.lr


def _grouped(cls):
    """``cls`` with a second weight-decay value for the binary layers' latent kernels."""

    class Grouped(cls):
        def __init__(self, *args, binary_weight_decay=None, binary_names=(), **kwargs):
            super().__init__(*args, **kwargs)
            self.binary_weight_decay = binary_weight_decay
            self.binary_names = frozenset(binary_names)

        def _apply_weight_decay(self, variables):
            if self.binary_weight_decay is None:
                return super()._apply_weight_decay(variables)
            binary = [v for v in variables if v.name in self.binary_names]
            super()._apply_weight_decay([v for v in variables if v.name not in self.binary_names])
            decay, self.weight_decay = self.weight_decay, self.binary_weight_decay
            try:  # during tracing: the value is captured as a constant
                super()._apply_weight_decay(binary)
            finally:
                self.weight_decay = decay

    Grouped.__name__ = f"Grouped{cls.__name__}"
    return Grouped


def make_optimizer(recipe, steps_per_epoch: int, *, binary_kernels: Sequence = ()):
    """The recipe's optimizer; weight decay is decoupled, in two groups when the recipe says so."""
    import tf_keras as keras

    lr = learning_rate(recipe, steps_per_epoch)
    common = dict(weight_decay=recipe.weight_decay or None, global_clipnorm=recipe.clip_norm)
    if recipe.weight_decay_binary is not None:
        common.update(binary_weight_decay=recipe.weight_decay_binary, binary_names=[v.name for v in binary_kernels])
    if recipe.optimizer == "sgd":
        cls, args = keras.optimizers.SGD, dict(momentum=recipe.momentum, nesterov=recipe.nesterov)
    elif recipe.optimizer == "adamw":
        cls, args = keras.optimizers.AdamW, dict(beta_1=recipe.momentum)
        common["weight_decay"] = recipe.weight_decay  # AdamW needs a number
    else:
        cls, args = keras.optimizers.Adam, dict(beta_1=recipe.momentum)
    if recipe.weight_decay_binary is not None:
        if not common["weight_decay"]:
            common["weight_decay"] = 0.0
        cls = _grouped(cls)
    return cls(lr, **args, **common)


@functools.cache
def _smoothed_crossentropy():
    """The loss class (defined on first use: TensorFlow is imported lazily)."""
    import tensorflow as tf
    import tf_keras as keras

    @keras.saving.register_keras_serializable(package="edgebnn")
    class SmoothedSparseCrossentropy(keras.losses.Loss):
        """Cross-entropy with integer labels and label smoothing (Keras' sparse loss has none)."""

        def __init__(self, label_smoothing: float = 0.0, name: str = "smoothed_sparse_crossentropy", **kwargs):
            super().__init__(name=name, **kwargs)
            self.label_smoothing = float(label_smoothing)

        def call(self, y_true, y_pred):
            classes = tf.shape(y_pred)[-1]
            labels = tf.one_hot(tf.cast(tf.reshape(y_true, [-1]), tf.int32), classes, dtype=y_pred.dtype)
            return keras.losses.categorical_crossentropy(labels, y_pred, label_smoothing=self.label_smoothing)

        def get_config(self):
            return {**super().get_config(), "label_smoothing": self.label_smoothing}

    return SmoothedSparseCrossentropy


def make_loss(label_smoothing: float = 0.0):
    """Cross-entropy of the model's probabilities with the integer labels, smoothed as the recipe says."""
    import tf_keras as keras

    if not label_smoothing:
        return keras.losses.SparseCategoricalCrossentropy()
    return _smoothed_crossentropy()(label_smoothing)


def compile_model(model, recipe, optimizer, *, num_classes: int) -> None:
    """Compile ``model`` (the student or the distiller) with the recipe's loss and the run's metrics."""
    import tf_keras as keras

    metrics = [keras.metrics.SparseCategoricalAccuracy(name="accuracy")]
    if num_classes > 5:
        metrics.append(keras.metrics.SparseTopKCategoricalAccuracy(5, name="top5"))
    model.compile(optimizer=optimizer, loss=make_loss(recipe.label_smoothing), metrics=metrics)


def restore(checkpoint, prefix: str, *, optimizer, recipe, override_lr: bool = False) -> None:
    """Read a checkpoint of model and optimizer; an explicit learning rate wins over the restored one.

    Constant and plateau schedules keep the learning rate in an optimizer variable, which the
    checkpoint restores (with the plateau's reductions): ``--resume --lr X`` sets X after reading.
    Step and cosine schedules are rebuilt from the recipe, so X is in them already.
    """
    checkpoint.read(prefix).assert_existing_objects_matched()
    if override_lr and recipe.schedule in ("constant", "plateau"):
        optimizer.learning_rate = recipe.lr


def _binary_layers(model) -> dict[str, Any]:
    """The binary layers (``converters.report.binary_layers``) that have a ``kernel``, by name."""
    from edgebnn.converters.report import binary_layers

    names = set(binary_layers(model))
    return {layer.name: layer for layer in model._flatten_layers(include_self=False, recursive=True)
            if layer.name in names and hasattr(layer, "kernel")}


def binary_kernels(model) -> dict[str, Any]:
    """Latent kernel variables of the binary layers (``converters.report.binary_layers``), by layer name."""
    return {name: layer.kernel for name, layer in _binary_layers(model).items()}


def _end_epoch(model, validation, callbacks: Sequence[Any], epoch: int, train_logs: dict[str, float]) -> None:
    """What fit() does after an epoch's last batch: validate, then the callbacks' epoch end.

    For a run stopped in its validation: the epoch's training metrics come from the checkpoint.
    """
    import tf_keras as keras

    hooks = keras.callbacks.CallbackList(list(callbacks), model=model)
    hooks.on_train_begin()
    hooks.on_epoch_begin(epoch)
    val_logs = model.evaluate(validation, verbose=0, return_dict=True, callbacks=hooks)
    hooks.on_epoch_end(epoch, {**train_logs, **{f"val_{k}": v for k, v in val_logs.items()}})
    hooks.on_train_end()


def _add_bipolar(model, kernels: dict[str, Any], lam: float) -> None:
    """Tang et al.'s regularizer lambda * sum(1 - w^2), for kernels that carry no regularizer."""
    import tensorflow as tf

    layers = {layer.name: layer for layer in model._flatten_layers(include_self=False, recursive=True)}
    for name, kernel in kernels.items():
        if getattr(layers[name], "kernel_regularizer", None) is None:
            model.add_loss(lambda k=kernel: lam * tf.reduce_sum(1.0 - tf.square(k)))


def check_fresh(path: str | Path) -> None:
    """Refuse to start a new run over an unfinished one (its checkpoints would be lost).

    Raises:
        UsageError: ``path`` holds a run that stopped before its last epoch.
    """
    from edgebnn.callbacks import read_state

    state = read_state(Path(path) / CHECKPOINTS)
    if state and not state.get("finished"):
        raise UsageError(
            f"{path} holds an unfinished run (checkpoint after epoch {state['epoch']}): continue it with "
            f"`edgebnn train --resume {path}`, or choose another --out"
        )


def train(
    run: RunDir,
    *,
    model_name: str,
    recipe,
    data_spec: str,
    strategy: str = "auto",
    model_options: dict[str, Any] | None = None,
    verbose: int = 1,
    seed: int = 0,
    teachers: Sequence[str] = (),
    resume: bool = False,
    override_lr: bool = False,
    callbacks: Sequence[Any] = (),
) -> dict[str, Any]:
    """Train ``model_name`` by ``recipe`` on ``data_spec`` and save the run.

    Args:
        run: the run directory. A fresh run (not ``resume``) writes its manifest itself, and
            only once the data, the teachers and the model have loaded: a bad ``data_spec`` or
            teacher leaves a previous run in the directory untouched.
        model_name: a registered model.
        recipe: the resolved :class:`edgebnn.recipes.Recipe`.
        data_spec: ``imagenet:DIR``, ``cifar10:DIR``, ``cifar100:DIR``, ``digits``, ``synthetic``.
        strategy: ``auto``, ``mirrored`` or ``multiworker``.
        model_options: family options for the builder.
        verbose: Keras verbosity (0 silent, 1 progress bar, 2 one line per epoch).
        seed: the seed of initialization, shuffling and augmentation.
        teachers: saved Keras models or run directories to distil from (see ``edgebnn.distill``).
        resume: continue from the run's last checkpoint (a finished one when ``recipe.epochs``
            is larger); otherwise start afresh, dropping the directory's old checkpoints and logs
            (the CLI calls :func:`check_fresh` first).
        override_lr: on ``resume``, ``recipe.lr`` was given explicitly and replaces the learning
            rate the checkpoint restores (see :func:`restore`).
        callbacks: extra Keras callbacks.

    Returns:
        The final metrics (``val_accuracy``, ``val_loss``, ``accuracy``, ``loss``, ``epochs``...).

    Raises:
        EdgebnnError: a NaN loss (the last good checkpoint is kept), an interruption by a signal
            (a checkpoint is written first), unreadable data.
    """
    import tensorflow as tf
    import tf_keras as keras

    from edgebnn import callbacks as cb
    from edgebnn.data import Augment, data_errors, load_dataset
    from edgebnn.models.stats import model_stats
    from edgebnn.registry import create_model, get_card

    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()
    card = get_card(model_name)
    chief = is_chief()
    ckpt_dir = run.path / CHECKPOINTS
    state = cb.read_state(ckpt_dir) if resume else None
    if resume and state is None:
        raise EdgebnnError(f"no checkpoint in {ckpt_dir}: nothing to resume; start the run again without --resume")
    start_epoch, start_step = (state["epoch"], state["step"]) if state else (0, 0)
    if state and state.get("finished") and start_epoch >= recipe.epochs:
        raise UsageError(f"the run in {run.path} already finished its {start_epoch} epochs: "
                         "raise --epochs to continue it")
    if start_epoch >= recipe.epochs:
        raise UsageError(f"the checkpoint in {ckpt_dir} is at epoch {start_epoch}: raise --epochs above it to continue")

    dist = make_strategy(strategy)
    augment = Augment(recipe.randaugment_ops, recipe.randaugment_magnitude, recipe.randaugment_std)
    dataset = load_dataset(data_spec, input_shape=card.input_shape, batch_size=recipe.batch_size, seed=seed,
                           preprocessing=card.preprocessing, augment=augment)
    steps = dataset.steps_per_epoch
    with dist.scope():
        student = create_model(
            card.name, input_shape=card.input_shape, num_classes=dataset.num_classes, **(model_options or {})
        )
        layers = _binary_layers(student)
        kernels = {name: layer.kernel for name, layer in layers.items()}
        lam = float(recipe.extra.get("bipolar_lambda", 0.0))
        if lam:
            _add_bipolar(student, kernels, lam)
        optimizer = make_optimizer(recipe, steps, binary_kernels=list(kernels.values()))
        model = student
        if teachers:
            from edgebnn.distill import Distiller, load_teacher

            model = Distiller(student, [load_teacher(t) for t in teachers], alpha=recipe.distill_alpha,
                              temperature=recipe.distill_temperature)
        compile_model(model, recipe, optimizer, num_classes=dataset.num_classes)
        optimizer.build(student.trainable_variables)
        checkpoint = tf.train.Checkpoint(model=student, optimizer=optimizer)
    if state:
        restore(checkpoint, str(ckpt_dir / state["prefix"]), optimizer=optimizer, recipe=recipe,
                override_lr=override_lr)
    elif chief:
        # Data, teachers and model have loaded: only now is a previous run here replaced. Other
        # workers write nothing into the run directory.
        RunDir.create(run.path, {"model": card.name, "data": data_spec})
        _clear_previous(run)

    logs = run.path / "logs"
    if chief:
        logs.mkdir(parents=True, exist_ok=True)
        if resume:
            for name in ("metrics.csv", "flips.csv"):
                cb.truncate_csv(logs / name, start_epoch)
    best = cb.BestModel(student, run.path / BEST_MODEL, is_chief=chief)
    stateful: dict[str, Any] = {"best_model": best}
    run_callbacks: list[Any] = [cb.FlipRatio(layers, logs / "flips.csv", write=chief), best]
    if recipe.schedule == "plateau":
        plateau = cb.PlateauLR(monitor="loss", factor=recipe.gamma, patience=recipe.plateau_patience,
                               min_lr=recipe.lr * 1e-4, verbose=0)
        stateful["plateau"] = plateau
        run_callbacks.append(plateau)
    if teachers:
        run_callbacks.insert(0, cb.DistillRound(model, recipe.epochs))
    if state:
        for name, item in stateful.items():
            item.load_state(state.get(name) or {})
    if chief:
        run_callbacks += [
            keras.callbacks.CSVLogger(str(logs / "metrics.csv"), append=True),
            keras.callbacks.TensorBoard(str(logs / "tensorboard"), write_graph=False, profile_batch=0),
        ]
    run_callbacks += list(callbacks)
    saver = cb.Checkpointer(ckpt_dir, checkpoint, initial_epoch=start_epoch, initial_step=start_step,
                            partial=(state or {}).get("partial"), epochs=recipe.epochs, stateful=stateful,
                            is_chief=chief)
    run_callbacks.append(saver)

    if chief:
        run.update(
            card=card.to_dict(),
            model_options=model_options or {},
            recipe=recipe.to_dict(),
            dataset=dataset.describe(),
            data=data_spec,
            seed=seed,
            strategy=strategy,
            teachers=[str(Path(t).resolve()) for t in teachers],
            input_shape=list(card.input_shape),
            num_classes=dataset.num_classes,
            status="training",
        )
    saver.install_signal_handlers()
    try:
        with data_errors():
            epoch = start_epoch
            if start_step >= steps:  # stopped in the validation: only it and the epoch's end are left
                _end_epoch(model, dataset.val, run_callbacks, epoch, state["partial"]["means"])
                epoch += 1
            elif start_step:  # finish the interrupted epoch first
                model.fit(dataset.train_epochs(epoch, epoch + 1, skip_batches=start_step),
                          validation_data=dataset.val, initial_epoch=epoch, epochs=epoch + 1,
                          steps_per_epoch=steps - start_step, callbacks=run_callbacks, verbose=verbose)
                epoch += 1
            if epoch < recipe.epochs:
                model.fit(dataset.train_epochs(epoch, recipe.epochs), validation_data=dataset.val,
                          initial_epoch=epoch, epochs=recipe.epochs, steps_per_epoch=steps,
                          callbacks=run_callbacks, verbose=verbose)
    except cb.NanLoss as e:
        _stopped(run, chief, "nan")
        raise EdgebnnError(
            f"{e}: the run stopped; the last good checkpoint (after epoch {e.last_epoch}) is kept in {ckpt_dir}. "
            f"Resume with a lower learning rate: `edgebnn train --resume {run.path} --lr ...`"
        ) from None
    except cb.Interrupted as e:
        _stopped(run, chief, "interrupted")
        raise EdgebnnError(f"interrupted by {e}: checkpoint saved; continue with `edgebnn train --resume {run.path}`") from None
    finally:
        saver.restore_signal_handlers()

    final = dict(saver.last_logs)
    final["epochs"] = recipe.epochs
    from edgebnn.callbacks import save_model

    save_model(student, run.keras_path, is_chief=chief)
    # Every worker computes the statistics: reading the distributed BN statistics is a collective.
    stats = model_stats(student)
    if not chief:
        return final
    run.record_file(run.keras_path)
    if (run.path / BEST_MODEL).exists():
        run.record_file(run.path / BEST_MODEL)
    final_state = {**(cb.read_state(ckpt_dir) or {}), "finished": True}
    from edgebnn import atomic

    atomic.write_json(ckpt_dir / cb.STATE, final_state)
    run.update(
        stats=stats,
        metrics=final,
        best={"val_accuracy": best.state()["best"], "epoch": best.best_epoch, "file": BEST_MODEL},
        flips=cb.flip_summary(logs / "flips.csv"),
        status="finished",
    )
    return final


def _clear_previous(run: RunDir) -> None:
    """A fresh run over a finished one: drop its checkpoints and logs (they would mix)."""
    import shutil

    shutil.rmtree(run.path / CHECKPOINTS, ignore_errors=True)
    for name in ("metrics.csv", "flips.csv"):
        (run.path / "logs" / name).unlink(missing_ok=True)
    (run.path / BEST_MODEL).unlink(missing_ok=True)


def _stopped(run: RunDir, chief: bool, status: str) -> None:
    if chief:
        run.update(status=status)


def resume(path: str | Path, *, overrides: dict[str, Any] | None = None, settings: Sequence[str] = (),
           strategy: str | None = None, verbose: int = 1, callbacks: Sequence[Any] = ()) -> tuple[RunDir, dict]:
    """Continue the run in ``path``: model, recipe, data, seed and teachers come from its manifest.

    Args:
        path: the run directory.
        overrides: recipe fields to change (``{"lr": 1e-4}`` after a NaN, ``{"epochs": 200}`` to
            extend a finished run). An explicit ``lr`` (here or in ``settings``) replaces the
            learning rate the checkpoint restores.
        settings: ``--set key=value`` strings.
        strategy: a different strategy than the manifest's.

    Returns:
        ``(run, final metrics)``.
    """
    from edgebnn.recipes import Recipe

    run = RunDir.open(path)
    manifest = run.manifest
    if "recipe" not in manifest or "data" not in manifest:
        raise EdgebnnError(f"{path} has no recorded recipe or data: it was not made by `edgebnn train`")
    overrides = overrides or {}
    recipe = Recipe.from_dict(manifest["recipe"]).with_settings(list(settings)).override(**overrides)
    override_lr = overrides.get("lr") is not None or any(s.partition("=")[0].strip() == "lr" for s in settings)
    metrics = train(
        run, model_name=manifest["model"], recipe=recipe, data_spec=manifest["data"],
        strategy=strategy or manifest.get("strategy", "auto"), model_options=manifest.get("model_options") or {},
        verbose=verbose, seed=int(manifest.get("seed", 0)), teachers=manifest.get("teachers") or (),
        resume=True, override_lr=override_lr, callbacks=callbacks,
    )
    return run, metrics


def evaluate(run: RunDir, *, data_spec: str, batch_size: int = 256, which: str = "last") -> dict[str, Any]:
    """Top-1 / top-5 accuracy of the run's model on ``data_spec``'s validation split.

    Args:
        run: a trained run directory.
        data_spec: the dataset (its validation split is used).
        batch_size: evaluation batch size.
        which: ``last`` (``model.keras``) or ``best`` (``best.keras``).

    Returns:
        ``{"top1", "top5", "images", "data", "model_file"}``; also saved as ``manifest.evaluation``.
    """
    import numpy as np
    import tensorflow as tf

    from edgebnn.data import data_errors, load_dataset

    manifest = run.manifest
    card = manifest.get("card") or {}
    model_file = run.keras_path if which == "last" else run.path / BEST_MODEL
    if which == "best":
        if not model_file.exists():
            raise EdgebnnError(f"no {BEST_MODEL} in {run.path}: evaluate the last model (without --best)")
        import edgebnn.models  # noqa: F401
        import tf_keras as keras

        model = keras.models.load_model(model_file, compile=False)
    else:
        model = run.load_model()
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
              "images": total, "data": data_spec, "model_file": model_file.name}
    run.update(evaluation=result)
    return result
