"""The steps of a training run: where it starts, its models, callbacks and epochs, its end.

:func:`edgebnn.training.train.train` runs them in order with the run held; each is one job.
"""

from __future__ import annotations

import errno
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import tf_keras as keras

from edgebnn import atomic
from edgebnn.data.pipelines import data_errors
from edgebnn.errors import EdgebnnError, UsageError
from edgebnn.models.introspection import binary_kernel_layers
from edgebnn.models.stats import model_stats
from edgebnn.registry import create_model
from edgebnn.run.rundir import BEST_MODEL, RunDir, file_record
from edgebnn.training import callbacks as cb
from edgebnn.training.optim import add_bipolar, compile_model, make_optimizer

CHECKPOINTS = "checkpoints"


def restore(checkpoint, prefix: str, *, optimizer, recipe, override_lr: bool = False) -> None:
    """Read a checkpoint of model and optimizer; an explicit learning rate wins over the restored one.

    Constant and plateau schedules keep the learning rate in an optimizer variable, which the
    checkpoint restores (with the plateau's reductions): ``--resume --lr X`` sets X after reading.
    Step and cosine schedules are rebuilt from the recipe, so X is in them already.
    """
    checkpoint.read(prefix).assert_existing_objects_matched()
    if override_lr and recipe.schedule in ("constant", "plateau"):
        optimizer.learning_rate = recipe.lr


def end_epoch(model, validation, callbacks: Sequence[Any], epoch: int, train_logs: dict[str, float]) -> None:
    """What fit() does after an epoch's last batch: validate, then the callbacks' epoch end.

    For a run stopped in its validation: the epoch's training metrics come from the checkpoint.
    """
    hooks = keras.callbacks.CallbackList(list(callbacks), model=model)
    hooks.on_train_begin()
    hooks.on_epoch_begin(epoch)
    val_logs = model.evaluate(validation, verbose=0, return_dict=True, callbacks=hooks)
    hooks.on_epoch_end(epoch, {**train_logs, **{f"val_{k}": v for k, v in val_logs.items()}})
    hooks.on_train_end()


def start_point(run: RunDir, recipe, *, resume: bool) -> tuple[dict | None, int, int]:
    """``(checkpoint state, epoch, batch)`` this run starts from; checks a resume makes sense."""

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
    return state, start_epoch, start_step


@dataclass
class Built:
    """The models of a run, built in the strategy's scope."""

    student: Any  # the BNN being trained (what is saved)
    model: Any  # what fit() runs: the student, or the distiller around it
    layers: dict  # the student's binary layers with a kernel, by name
    optimizer: Any
    checkpoint: Any


def build(card, dataset, recipe, *, strategy, teachers: Sequence[str], model_options: dict, input_shape,
           trust_code: bool = False) -> Built:
    """Student (with the recipe's regularizer), optional distiller, optimizer and checkpoint."""
    import tensorflow as tf

    with strategy.scope():
        student = create_model(card.name, input_shape=input_shape, num_classes=dataset.num_classes, **model_options)
        layers = binary_kernel_layers(student)
        kernels = {name: layer.kernel for name, layer in layers.items()}
        lam = float(recipe.extra.get("bipolar_lambda", 0.0))
        if lam:
            add_bipolar(student, kernels, lam)
        optimizer = make_optimizer(recipe, dataset.steps_per_epoch, binary_kernels=list(kernels.values()))
        model = student
        if teachers:
            from edgebnn.training.distill import Distiller, load_teacher

            model = Distiller(student, [load_teacher(t, trust_code=trust_code) for t in teachers], alpha=recipe.distill_alpha,
                              temperature=recipe.distill_temperature)
        compile_model(model, recipe, optimizer, num_classes=dataset.num_classes)
        optimizer.build(student.trainable_variables)
        checkpoint = tf.train.Checkpoint(model=student, optimizer=optimizer)
    return Built(student, model, layers, optimizer, checkpoint)


def make_callbacks(run: RunDir, built: Built, recipe, *, state, start_epoch: int, start_step: int, chief: bool,
               distilling: bool, extra: Sequence[Any]):
    """The run's callbacks; the last one is the :class:`Checkpointer` that owns the resumable state."""

    logs = run.path / "logs"
    if chief:
        logs.mkdir(parents=True, exist_ok=True)
        if state:
            for name in ("metrics.csv", "flips.csv"):
                cb.truncate_csv(logs / name, start_epoch)
    best = cb.BestModel(built.student, run.path / BEST_MODEL, is_chief=chief, on_save=run.record_file)
    stateful: dict[str, Any] = {"best_model": best}
    found: list[Any] = [cb.FlipRatio(built.layers, logs / "flips.csv", write=chief), best]
    if recipe.schedule == "plateau":
        plateau = cb.PlateauLR(monitor="loss", factor=recipe.gamma, patience=recipe.plateau_patience,
                               min_lr=recipe.lr * 1e-4, verbose=0)
        stateful["plateau"] = plateau
        found.append(plateau)
    if distilling:
        found.insert(0, cb.DistillRound(built.model, recipe.epochs))
    if state:
        for name, item in stateful.items():
            item.load_state(state.get(name) or {})
    if chief:
        found += [
            keras.callbacks.CSVLogger(str(logs / "metrics.csv"), append=True),
            keras.callbacks.TensorBoard(str(logs / "tensorboard"), write_graph=False, profile_batch=0),
        ]
    found += list(extra)
    found.append(cb.Checkpointer(run.path / CHECKPOINTS, built.checkpoint, initial_epoch=start_epoch,
                                 initial_step=start_step, partial=(state or {}).get("partial"),
                                 epochs=recipe.epochs, stateful=stateful, is_chief=chief))
    return found, best


def fit(built: Built, dataset, callbacks, *, epochs: int, start_epoch: int, start_step: int, state, verbose: int):
    """Run the epochs left: the rest of an interrupted epoch (or its validation) first."""
    steps, model = dataset.steps_per_epoch, built.model
    with data_errors():
        epoch = start_epoch
        if start_step >= steps:  # stopped in the validation: only it and the epoch's end are left
            end_epoch(model, dataset.val, callbacks, epoch, state["partial"]["means"])
            epoch += 1
        elif start_step:  # finish the interrupted epoch first
            model.fit(dataset.train_epochs(epoch, epoch + 1, skip_batches=start_step),
                      validation_data=dataset.val, initial_epoch=epoch, epochs=epoch + 1,
                      steps_per_epoch=steps - start_step, callbacks=callbacks, verbose=verbose)
            epoch += 1
        if epoch < epochs:
            model.fit(dataset.train_epochs(epoch, epochs), validation_data=dataset.val,
                      initial_epoch=epoch, epochs=epochs, steps_per_epoch=steps,
                      callbacks=callbacks, verbose=verbose)


def full_disk(error: BaseException) -> bool:
    """An ENOSPC, as Python's OSError or as a TensorFlow/HDF5 error that only says so in words."""
    return (isinstance(error, OSError) and error.errno == errno.ENOSPC) or "No space left on device" in str(error)


def finish(run: RunDir, built: Built, saver, best, *, epochs: int, chief: bool) -> dict[str, Any]:
    """Save the model, mark the checkpoint finished, and write the run's final sections once."""
    final = {**saver.last_logs, "epochs": epochs}
    cb.save_model(built.student, run.keras_path, is_chief=chief)
    # Every worker computes the statistics: reading the distributed BN statistics is a collective.
    stats = model_stats(built.student)
    if not chief:
        return final
    ckpt_dir = run.path / CHECKPOINTS
    atomic.write_json(ckpt_dir / cb.STATE, {**(cb.read_state(ckpt_dir) or {}), "finished": True})
    files = {p.name: file_record(p) for p in (run.keras_path, run.path / BEST_MODEL) if p.exists()}

    def final_sections(data: dict) -> None:
        data.setdefault("files", {}).update(files)
        data.update(stats=stats, metrics=final, status="finished",
                    best={"val_accuracy": best.state()["best"], "epoch": best.best_epoch, "file": BEST_MODEL},
                    flips=cb.flip_summary(run.path / "logs" / "flips.csv"))

    run.edit(final_sections)
    return final


def clear_previous(run: RunDir) -> None:
    """A fresh run over a finished one: drop its checkpoints and logs (they would mix)."""

    shutil.rmtree(run.path / CHECKPOINTS, ignore_errors=True)
    for name in ("metrics.csv", "flips.csv"):
        (run.path / "logs" / name).unlink(missing_ok=True)
    (run.path / BEST_MODEL).unlink(missing_ok=True)


def stopped(run: RunDir, chief: bool, status: str) -> None:
    if chief:
        run.update(status=status)
