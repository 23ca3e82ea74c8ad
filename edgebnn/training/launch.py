"""``edgebnn train``'s entry point: a new run or a resumed one, with everything the command line
says checked before TensorFlow loads (``training.train`` does the work).
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from edgebnn.data.spec import DEFAULT, DataSpec, parse_spec
from edgebnn.errors import EdgebnnError, UsageError
from edgebnn.registry import get_card, load_model_file, model_options, parse_input_size
from edgebnn.run.rundir import RunDir
from edgebnn.run.sources import checkpoint_spec, is_checkpoint_file
from edgebnn.run.trust import Trust, recorded_teachers
from edgebnn.training.recipes import Recipe, get_recipe


def start(model: str | None, *, resume_path: str | Path | None = None, given: Sequence[str] = (),
          model_files: Sequence[str] = (), trust: Trust = Trust(), overrides: dict[str, Any] | None = None,
          settings: Sequence[str] = (), strategy: str | None = None, verbose: int = 1,
          **new_run: Any) -> tuple[RunDir, dict]:
    """``edgebnn train``: continue the run in ``resume_path``, or start a new run of ``model``.

    Args:
        given: the options of a new run that were given (``--data``, ``--recipe``...): a resumed
            run reads them from its manifest, so they are refused with ``resume_path``.
        model_files: ``--model-file`` Python files registering models, imported first.
        new_run: the rest of :func:`train_new`'s arguments.

    Returns:
        ``(run, final metrics)``.
    """
    if resume_path:
        if given:
            raise UsageError("--resume DIR reads the model, its size and options, the recipe, the data and --out "
                             f"from DIR's manifest: drop {'/'.join(given)} (change recipe fields with --set)")
        return resume(resume_path, overrides=overrides, settings=settings, strategy=strategy, verbose=verbose,
                      trust=trust)
    if not model:
        raise UsageError("give a MODEL to train (see `edgebnn models`) or --resume DIR")
    for path in model_files:
        load_model_file(path)
    return train_new(model, overrides=overrides, settings=settings, strategy=strategy or "auto", verbose=verbose,
                     teachers=trust.teachers, trust_code=trust.code, **new_run)


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

    card = get_card(model)
    shape = parse_input_size(input_size, card.input_shape[2])
    options = model_options(card, width=width, model_args=model_args)
    data, shape, lines = choose_input(card, data, shape)
    for line in lines:
        (note or _stderr)(line)
    source = None
    if weights:
        if weights == "imagenet" or not Path(weights).is_file():
            raise UsageError(f"no weights file {weights!r}: give a Keras weights file or a BNext .pth.tar to start "
                             "from")
        if is_checkpoint_file(Path(weights)):
            spec = checkpoint_spec(card, shape, options, Path(weights))
            options, source = spec.options, spec.weights_source
    resolved = get_recipe(recipe or card.recipe).with_settings(list(settings)).override(**(overrides or {}))
    path = Path(out) if out else Path("runs") / card.name
    from edgebnn.training.train import check_fresh, train

    check_fresh(path)
    run = RunDir(path)  # train() writes the manifest once data and teachers have loaded
    return run, train(run, model_name=card.name, recipe=resolved, data_spec=data, strategy=strategy,
                      verbose=verbose, seed=seed, teachers=teachers, trust_code=trust_code, model_options=options,
                      input_shape=shape, weights=weights, weights_source=source)


def choose_input(card, data: str | None, shape: tuple | None) -> tuple[DataSpec, tuple | None, list[str]]:
    """The dataset and input shape of a new run, and the lines that say so.

    Without ``data``: the bundled digits, said with the input size. Without ``shape``: the
    card's default, unless the data's images are far smaller (:meth:`edgebnn.data.spec.DataSpec.input_side`),
    then the data's own size, said with why.

    Returns:
        ``(data spec, input shape or None for the card's, note lines)``.

    Raises:
        UsageError: a bad data spec.
    """
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
    return spec, shape, lines


def _stderr(line: str) -> None:
    print(line, file=sys.stderr)


def is_chief() -> bool:
    """Whether this process writes the run directory (the chief, or worker 0 without a chief)."""
    config = json.loads(os.environ.get("TF_CONFIG") or "{}")
    task = config.get("task") or {}
    if not task:
        return True
    if task.get("type") == "chief":
        return True
    return task.get("type") == "worker" and int(task.get("index", 0)) == 0 and "chief" not in config.get("cluster", {})


def resume(path: str | Path, *, overrides: dict[str, Any] | None = None, settings: Sequence[str] = (),
           strategy: str | None = None, verbose: int = 1, callbacks: Sequence[Any] = (),
           trust: Trust = Trust()) -> tuple[RunDir, dict]:
    """Continue the run in ``path``: model, recipe, data, seed and teachers come from its manifest,
    checked before TensorFlow loads.

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
    if is_chief():  # refused before TensorFlow loads; other workers of a job share the chief's run
        run.check_not_held()
    from edgebnn.training.train import train

    metrics = train(
        run, model_name=manifest["model"], recipe=recipe, data_spec=manifest["data"],
        strategy=strategy or manifest.get("strategy", "auto"), model_options=run.section("model_options"),
        input_shape=run.section("input_shape") or None,
        verbose=verbose, seed=int(manifest.get("seed", 0)), teachers=teachers, trust_code=trust.code,
        resume=True, override_lr=override_lr, callbacks=callbacks,
    )
    return run, metrics
