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
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgebnn.errors import EdgebnnError, UsageError, shell_command
from edgebnn.run.rundir import RunDir
from edgebnn.run.trust import Trust

CHECKPOINTS = "checkpoints"
BEST_MODEL = "best.keras"


def restore(checkpoint, prefix: str, *, optimizer, recipe, override_lr: bool = False) -> None:
    """Read a checkpoint of model and optimizer; an explicit learning rate wins over the restored one.

    Constant and plateau schedules keep the learning rate in an optimizer variable, which the
    checkpoint restores (with the plateau's reductions): ``--resume --lr X`` sets X after reading.
    Step and cosine schedules are rebuilt from the recipe, so X is in them already.
    """
    checkpoint.read(prefix).assert_existing_objects_matched()
    if override_lr and recipe.schedule in ("constant", "plateau"):
        optimizer.learning_rate = recipe.lr


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


def check_fresh(path: str | Path, *, held: bool = False) -> None:
    """Refuse to start a new run over an unfinished one (its checkpoints would be lost).

    Args:
        held: this process holds the run already (:meth:`RunDir.held_for_training`), or
            does not need to (a worker that is not the chief).

    Raises:
        UsageError: ``path`` holds a run that stopped before its last epoch, or another process
            is training into it.
    """
    from edgebnn.training.callbacks import read_state
    from edgebnn.training.optim import is_chief

    if not held and is_chief():  # other workers of a multi-worker job share the chief's --out
        RunDir(path).check_not_held()
    state = read_state(Path(path) / CHECKPOINTS)
    if state and not state.get("finished"):
        raise UsageError(
            f"{path} holds an unfinished run (checkpoint after epoch {state['epoch']}): continue it with "
            f"`{shell_command('edgebnn', 'train', '--resume', path)}`, or choose another --out"
        )


def _start_point(run: RunDir, recipe, *, resume: bool) -> tuple[dict | None, int, int]:
    """``(checkpoint state, epoch, batch)`` this run starts from; checks a resume makes sense."""
    from edgebnn.training import callbacks as cb

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
class _Built:
    """The models of a run, built in the strategy's scope."""

    student: Any  # the BNN being trained (what is saved)
    model: Any  # what fit() runs: the student, or the distiller around it
    layers: dict  # the student's binary layers with a kernel, by name
    optimizer: Any
    checkpoint: Any


def _build(card, dataset, recipe, *, strategy, teachers: Sequence[str], model_options: dict, input_shape,
           trust_code: bool = False) -> _Built:
    """Student (with the recipe's regularizer), optional distiller, optimizer and checkpoint."""
    import tensorflow as tf

    from edgebnn.models.introspection import binary_kernel_layers
    from edgebnn.registry import create_model
    from edgebnn.training.optim import add_bipolar, compile_model, make_optimizer

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
    return _Built(student, model, layers, optimizer, checkpoint)


def _callbacks(run: RunDir, built: _Built, recipe, *, state, start_epoch: int, start_step: int, chief: bool,
               distilling: bool, extra: Sequence[Any]):
    """The run's callbacks; the last one is the :class:`Checkpointer` that owns the resumable state."""
    import tf_keras as keras

    from edgebnn.training import callbacks as cb

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


def _fit(built: _Built, dataset, callbacks, *, epochs: int, start_epoch: int, start_step: int, state, verbose: int):
    """Run the epochs left: the rest of an interrupted epoch (or its validation) first."""
    from edgebnn.data.pipelines import data_errors

    steps, model = dataset.steps_per_epoch, built.model
    with data_errors():
        epoch = start_epoch
        if start_step >= steps:  # stopped in the validation: only it and the epoch's end are left
            _end_epoch(model, dataset.val, callbacks, epoch, state["partial"]["means"])
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


def train(
    run: RunDir,
    *,
    model_name: str,
    recipe,
    data_spec: str,
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
        data_spec: ``imagenet:DIR``, ``cifar10:DIR``, ``cifar100:DIR``, ``digits``, ``synthetic``.
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
    from edgebnn.training.optim import is_chief

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


def full_disk(error: BaseException) -> bool:
    """An ENOSPC, as Python's OSError or as a TensorFlow/HDF5 error that only says so in words."""
    import errno

    return (isinstance(error, OSError) and error.errno == errno.ENOSPC) or "No space left on device" in str(error)


def _train(run: RunDir, *, model_name, recipe, data_spec, strategy, model_options, input_shape, verbose, seed,
           teachers, trust_code, resume, override_lr, callbacks, chief, weights, weights_source) -> dict[str, Any]:
    """:func:`train`'s steps, with the run held."""
    import tensorflow as tf
    import tf_keras as keras

    from edgebnn.data.pipelines import Augment, load_dataset
    from edgebnn.registry import get_card
    from edgebnn.run.rundir import file_record
    from edgebnn.run.trust import teacher_records
    from edgebnn.training import callbacks as cb
    from edgebnn.training.optim import make_strategy

    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()
    card = get_card(model_name)
    shape = tuple(input_shape or card.input_shape)
    state, start_epoch, start_step = _start_point(run, recipe, resume=resume)
    dist = make_strategy(strategy)  # before any other TensorFlow op: collectives are set up at start-up
    augment = Augment(recipe.randaugment_ops, recipe.randaugment_magnitude, recipe.randaugment_std)
    dataset = load_dataset(data_spec, input_shape=shape, batch_size=recipe.batch_size, seed=seed,
                           preprocessing=card.preprocessing, augment=augment)
    built = _build(card, dataset, recipe, strategy=dist, teachers=teachers, model_options=model_options or {},
                   input_shape=shape, trust_code=trust_code)
    sections = {
        "card": card.to_dict(), "model_options": model_options or {}, "recipe": recipe.to_dict(),
        "dataset": dataset.describe(), "data": data_spec, "seed": seed, "strategy": strategy,
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
        _clear_previous(run)
    run_callbacks, best = _callbacks(run, built, recipe, state=state, start_epoch=start_epoch,
                                     start_step=start_step, chief=chief, distilling=bool(teachers), extra=callbacks)
    saver = run_callbacks[-1]
    saver.install_signal_handlers()
    resume_command = shell_command("edgebnn", "train", "--resume", run.path)
    try:
        _fit(built, dataset, run_callbacks, epochs=recipe.epochs, start_epoch=start_epoch, start_step=start_step,
             state=state, verbose=verbose)
    except cb.NanLoss as e:
        _stopped(run, chief, "nan")
        raise EdgebnnError(
            f"{e}: the run stopped; the last good checkpoint (after epoch {e.last_epoch}) is kept in "
            f"{run.path / CHECKPOINTS}. Resume with a lower learning rate: `{resume_command} --lr ...`"
        ) from None
    except cb.Interrupted as e:
        _stopped(run, chief, "interrupted")
        raise EdgebnnError(f"interrupted by {e}: checkpoint saved; continue with `{resume_command}`") from None
    finally:
        saver.restore_signal_handlers()
    return _finish(run, built, saver, best, epochs=recipe.epochs, chief=chief)


def _finish(run: RunDir, built: _Built, saver, best, *, epochs: int, chief: bool) -> dict[str, Any]:
    """Save the model, mark the checkpoint finished, and write the run's final sections once."""
    from edgebnn import atomic
    from edgebnn.models.stats import model_stats
    from edgebnn.run.rundir import file_record
    from edgebnn.training import callbacks as cb

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


def train_new(model: str, *, data: str | None = None, out: str | Path | None = None, recipe: str | None = None,
              settings: Sequence[str] = (), overrides: dict[str, Any] | None = None, teachers: Sequence[str] = (),
              trust_code: bool = False, seed: int = 0, strategy: str = "auto", verbose: int = 1,
              input_size: str | None = None, width: float | None = None, model_args: Sequence[str] = (),
              note: Callable[[str], None] | None = None, weights: str | None = None) -> tuple[RunDir, dict]:
    """Start a new run of ``model``: everything the command line says is checked before TensorFlow loads.

    Args:
        model: a registered model name or alias.
        data: the dataset spec; None: the bundled digits (:data:`edgebnn.data.spec.DEFAULT`).
        out: the run directory (default ``runs/<model>``); refused when it holds an unfinished run.
        recipe: a recipe name instead of the model's.
        settings: ``--set key=value`` strings; ``overrides``: recipe fields (None values ignored).
        teachers, trust_code, seed, strategy, verbose: as for :func:`train`.
        input_size, width, model_args: ``--input-size``, ``--width``, ``--model-arg`` (see
            :func:`edgebnn.registry.model_options`). Without ``input_size``, data far smaller
            than the model's default input is trained at its own size (see :func:`choose_input`).
        note: called with each line telling what data and input size are used, before training
            [printed on stderr].
        weights: the starting weights (``--weights``): a Keras weights file, or the BNext
            authors' ``.pth.tar`` (then the builder options it needs are set, and a checkpoint
            that cannot be imported is refused before anything loads).

    Returns:
        ``(run, final metrics)``.
    """
    from edgebnn.registry import get_card, model_options, parse_input_size
    from edgebnn.training.recipes import get_recipe

    card = get_card(model)
    shape = parse_input_size(input_size, card.input_shape[2])
    options = model_options(card, width=width, model_args=model_args)
    data, shape, lines = choose_input(card, data, shape)
    for line in lines:
        (note or _stderr)(line)
    source = None
    if weights:
        from edgebnn.run.sources import checkpoint_spec, is_checkpoint_file

        if weights == "imagenet" or not Path(weights).is_file():
            raise UsageError(f"no weights file {weights!r}: give a Keras weights file or a BNext .pth.tar to start "
                             "from")
        if is_checkpoint_file(Path(weights)):
            spec = checkpoint_spec(card, shape, options, Path(weights))
            options, source = spec.options, spec.weights_source
    resolved = get_recipe(recipe or card.recipe).with_settings(list(settings)).override(**(overrides or {}))
    path = Path(out) if out else Path("runs") / card.name
    check_fresh(path)
    run = RunDir(path)  # train() writes the manifest once data and teachers have loaded
    return run, train(run, model_name=card.name, recipe=resolved, data_spec=data, strategy=strategy,
                      verbose=verbose, seed=seed, teachers=teachers, trust_code=trust_code, model_options=options,
                      input_shape=shape, weights=weights, weights_source=source)


def choose_input(card, data: str | None, shape: tuple | None) -> tuple[str, tuple | None, list[str]]:
    """The dataset and input shape of a new run, and the lines that say so.

    Without ``data``: the bundled digits, said with the input size. Without ``shape``: the
    card's default, unless the data's images are far smaller (:meth:`edgebnn.data.spec.DataSpec.input_side`),
    then the data's own size, said with why.

    Returns:
        ``(data spec, input shape or None for the card's, note lines)``.

    Raises:
        UsageError: a bad data spec.
    """
    from edgebnn.data.spec import DEFAULT, parse_spec

    spec = parse_spec(data or DEFAULT)
    default = tuple(card.input_shape)
    lines = [f"note: data: {spec.about}"] if data is None else []
    size = lambda s: "x".join(map(str, s))
    if shape is None and (side := spec.input_side(max(default[:2]))):
        shape = (side, side, default[2])
        whose = "the digits'" if spec.kind == "digits" else f"{spec.kind}'s"
        lines.append(f"note: input: {size(shape)}, not {card.name}'s default {size(default)}: {whose} "
                     f"{spec.image_side}x{spec.image_side} images are far smaller (--input-size "
                     f"{size(default[:2]) if default[0] != default[1] else default[0]} builds it at its default)")
    elif data is None:
        lines.append(f"note: input: {size(shape)} (--input-size)" if shape else
                     f"note: input: {size(default)}, {card.name}'s default")
    return data or DEFAULT, shape, lines


def _stderr(line: str) -> None:
    print(line, file=sys.stderr)


def resume(path: str | Path, *, overrides: dict[str, Any] | None = None, settings: Sequence[str] = (),
           strategy: str | None = None, verbose: int = 1, callbacks: Sequence[Any] = (),
           trust: Trust = Trust()) -> tuple[RunDir, dict]:
    """Continue the run in ``path``: model, recipe, data, seed and teachers come from its manifest.

    Args:
        path: the run directory.
        overrides: recipe fields to change (``{"lr": 1e-4}`` after a NaN, ``{"epochs": 200}`` to
            extend a finished run). An explicit ``lr`` (here or in ``settings``) replaces the
            learning rate the checkpoint restores.
        settings: ``--set key=value`` strings.
        strategy: a different strategy than the manifest's.
        trust: what the user allowed: the teachers the manifest records are loaded only when
            named again (``trust.teachers``) or with ``--trust-code`` (see :mod:`edgebnn.run.trust`).

    Returns:
        ``(run, final metrics)``.
    """
    from edgebnn.run.trust import recorded_teachers
    from edgebnn.training.recipes import Recipe

    run = RunDir.open(path)
    manifest = run.manifest
    if manifest.get("weights") == "file":
        raise UsageError(f"{path} holds a model brought from {run.section('source').get('path', 'a file')}: "
                         "train --resume is for runs made by `edgebnn train`; `evaluate`, `convert` and `bench` work")
    if "recipe" not in manifest or "data" not in manifest:
        raise EdgebnnError(f"{path} has no recorded recipe or data: it was not made by `edgebnn train`")
    overrides = overrides or {}
    recipe = Recipe.from_dict(manifest["recipe"]).with_settings(list(settings)).override(**overrides)
    override_lr = overrides.get("lr") is not None or any(s.partition("=")[0].strip() == "lr" for s in settings)
    teachers = recorded_teachers(run.path, run.section("teachers"), trust)
    metrics = train(
        run, model_name=manifest["model"], recipe=recipe, data_spec=manifest["data"],
        strategy=strategy or manifest.get("strategy", "auto"), model_options=run.section("model_options"),
        input_shape=run.section("input_shape") or None,
        verbose=verbose, seed=int(manifest.get("seed", 0)), teachers=teachers, trust_code=trust.code,
        resume=True, override_lr=override_lr, callbacks=callbacks,
    )
    return run, metrics
