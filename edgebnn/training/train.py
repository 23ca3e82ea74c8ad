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

import contextlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import tensorflow as tf
import tf_keras as keras

from edgebnn.data.pipelines import Augment, load_dataset
from edgebnn.data.spec import DataSpec
from edgebnn.errors import EdgebnnError, UsageError, shell_command
from edgebnn.registry import get_card
from edgebnn.run.rundir import RunDir, file_record
from edgebnn.run.trust import teacher_records
from edgebnn.training import callbacks as cb
from edgebnn.training.launch import is_chief
from edgebnn.training.optim import make_strategy
from edgebnn.training.steps import (
    CHECKPOINTS,
    build,
    clear_previous,
    finish,
    fit,
    full_disk,
    make_callbacks,
    restore,
    start_point,
    stopped,
)


def check_fresh(path: str | Path, *, held: bool = False) -> None:
    """Refuse to start a new run over an unfinished one (its checkpoints would be lost).

    Args:
        held: this process holds the run already (:meth:`RunDir.held_for_training`), or
            does not need to (a worker that is not the chief).

    Raises:
        UsageError: ``path`` holds a run that stopped before its last epoch, or another process
            is training into it.
    """

    if not held and is_chief():  # other workers of a multi-worker job share the chief's --out
        RunDir(path).check_not_held()
    state = cb.read_state(Path(path) / CHECKPOINTS)
    if state and not state.get("finished"):
        raise UsageError(
            f"{path} holds an unfinished run (checkpoint after epoch {state['epoch']}): continue it with "
            f"`{shell_command('edgebnn', 'train', '--resume', path)}`, or choose another --out"
        )


def train(
    run: RunDir,
    *,
    model_name: str,
    recipe,
    data_spec: DataSpec | str,
    strategy: str = "auto",
    model_options: dict[str, Any] | None = None,
    input_shape: Sequence[int] | None = None,
    verbose: int = 1,
    seed: int = 0,
    teachers: Sequence[str] = (),
    trust_code: bool = False,
    resume: bool = False,
    override_lr: bool = False,
    callbacks: Sequence[Any] = (),
    weights: str | None = None,
    weights_source: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Train ``model_name`` by ``recipe`` on ``data_spec`` and save the run.

    The steps: where to start (a checkpoint when resuming) -> load the data -> build the models
    in the strategy's scope -> restore the checkpoint, or write the new run's manifest -> fit
    the epochs left -> save the model and the final sections of the manifest.

    Args:
        run: the run directory. A fresh run (not ``resume``) writes its manifest itself, and
            only once the data, the teachers and the model have loaded: a bad ``data_spec`` or
            teacher leaves a previous run in the directory untouched.
        model_name: a registered model.
        recipe: the resolved :class:`edgebnn.training.recipes.Recipe`.
        data_spec: a :class:`edgebnn.data.spec.DataSpec`, or its text (``imagenet:DIR``,
            ``cifar10:DIR``, ``cifar100:DIR``, ``digits``, ``synthetic``).
        strategy: ``auto``, ``mirrored`` or ``multiworker``.
        model_options: family options for the builder (``width``, ``padding``...).
        input_shape: (H, W, C) instead of the card's default (``--input-size``).
        verbose: Keras verbosity (0 silent, 1 progress bar, 2 one line per epoch).
        seed: the seed of initialization, shuffling and augmentation.
        teachers: saved Keras models or run directories to distil from (see
            :mod:`edgebnn.training.distill`), recorded with their sha256.
        trust_code: ``--trust-code``: a teacher file may carry code that loading runs.
        resume: continue from the run's last checkpoint (a finished one when ``recipe.epochs``
            is larger); otherwise start afresh, dropping the directory's old checkpoints and logs
            (the CLI calls :func:`check_fresh` first).
        override_lr: on ``resume``, ``recipe.lr`` was given explicitly and replaces the learning
            rate the checkpoint restores (see :func:`restore`).
        callbacks: extra Keras callbacks.
        weights: a fresh run's starting weights: a Keras weights file, or a PyTorch checkpoint
            of the BNext authors' (the model built with
            :func:`edgebnn.run.sources.checkpoint_spec`'s options); see
            :func:`edgebnn.run.sources.load_weights`.
        weights_source: their provenance, recorded as the manifest's ``weights_source``.

    Returns:
        The final metrics (``val_accuracy``, ``val_loss``, ``accuracy``, ``loss``, ``epochs``...).

    Raises:
        UsageError: another process is training into ``run`` (the chief holds the run for its lifetime).
        EdgebnnError: a NaN loss (the last good checkpoint is kept), an interruption by a signal
            (a checkpoint is written first), unreadable data, a full disk.
    """

    chief = is_chief()
    # Only the chief writes the run directory; other workers of a multi-worker job share its --out.
    with run.held_for_training() if chief else contextlib.nullcontext():
        if chief and not resume:  # again, now that no other edgebnn can start here
            check_fresh(run.path, held=True)
        try:
            return _train(run, model_name=model_name, recipe=recipe, data_spec=data_spec, strategy=strategy,
                          model_options=model_options, input_shape=input_shape, verbose=verbose, seed=seed,
                          teachers=teachers, trust_code=trust_code, resume=resume, override_lr=override_lr,
                          weights=weights, weights_source=weights_source,
                          callbacks=callbacks, chief=chief)
        except Exception as e:
            if full_disk(e):
                raise EdgebnnError(
                    f"the disk holding {run.path} is full: free some space there, then continue with "
                    f"`{shell_command('edgebnn', 'train', '--resume', run.path)}` (the last checkpoint is kept)"
                ) from None
            raise


def _train(run: RunDir, *, model_name, recipe, data_spec, strategy, model_options, input_shape, verbose, seed,
           teachers, trust_code, resume, override_lr, callbacks, chief, weights, weights_source) -> dict[str, Any]:
    """:func:`train`'s steps, with the run held."""

    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()
    card = get_card(model_name)
    shape = tuple(input_shape or card.input_shape)
    state, start_epoch, start_step = start_point(run, recipe, resume=resume)
    dist = make_strategy(strategy)  # before any other TensorFlow op: collectives are set up at start-up
    augment = Augment(recipe.randaugment_ops, recipe.randaugment_magnitude, recipe.randaugment_std)
    dataset = load_dataset(data_spec, input_shape=shape, batch_size=recipe.batch_size, seed=seed,
                           preprocessing=card.preprocessing, augment=augment)
    built = build(card, dataset, recipe, strategy=dist, teachers=teachers, model_options=model_options or {},
                   input_shape=shape, trust_code=trust_code)
    sections = {
        "card": card.to_dict(), "model_options": model_options or {}, "recipe": recipe.to_dict(),
        "dataset": dataset.describe(), "data": str(data_spec), "seed": seed, "strategy": strategy,
        "teachers": teacher_records(teachers), "input_shape": list(shape),
        "num_classes": dataset.num_classes, "status": "training",
    }
    if weights and not state:
        from edgebnn.run.sources import load_weights

        load_weights(built.student, weights, card=card, source=weights_source)
        sections["weights_source"] = weights_source or {"format": "keras", "file": Path(weights).name,
                                                        **file_record(Path(weights))}
    if state:
        restore(built.checkpoint, str(run.path / CHECKPOINTS / state["prefix"]), optimizer=built.optimizer,
                recipe=recipe, override_lr=override_lr)
        if chief:
            run.update(**sections)
    elif chief:
        # Data, teachers and model have loaded: only now is a previous run here replaced. Other
        # workers write nothing into the run directory.
        RunDir.create(run.path, {"model": card.name, **sections})
        clear_previous(run)
    run_callbacks, best = make_callbacks(run, built, recipe, state=state, start_epoch=start_epoch,
                                     start_step=start_step, chief=chief, distilling=bool(teachers), extra=callbacks)
    saver = run_callbacks[-1]
    saver.install_signal_handlers()
    resume_command = shell_command("edgebnn", "train", "--resume", run.path)
    try:
        fit(built, dataset, run_callbacks, epochs=recipe.epochs, start_epoch=start_epoch, start_step=start_step,
             state=state, verbose=verbose)
    except cb.NanLoss as e:
        stopped(run, chief, "nan")
        raise EdgebnnError(
            f"{e}: the run stopped; the last good checkpoint (after epoch {e.last_epoch}) is kept in "
            f"{run.path / CHECKPOINTS}. Resume with a lower learning rate: `{resume_command} --lr ...`"
        ) from None
    except cb.Interrupted as e:
        stopped(run, chief, "interrupted")
        raise EdgebnnError(f"interrupted by {e}: checkpoint saved; continue with `{resume_command}`") from None
    finally:
        saver.restore_signal_handlers()
    return finish(run, built, saver, best, epochs=recipe.epochs, chief=chief)
