"""Where a run comes from: a run directory, a registered model, or a model file the user brings.

A command's SRC is classified once, by :func:`parse_source`, into a :class:`Source` (its kind,
and for a model name its card and :class:`ModelSpec`); the stages take that value.

- A run directory is opened as it is.
- A registered model name (built-in, a plugin's, or ``--model-file``'s) is built with weights
  drawn from a seed (latency does not depend on the weights, and that is how architectures are
  compared on a board before training them), at the size and options of a :class:`ModelSpec`,
  or with its ``--weights``: a Keras weights file, Larq Zoo's, or the BNext authors' PyTorch
  checkpoint (checked before TensorFlow loads, its run in ``runs/<checkpoint name>``).
- A Keras file (``.keras``, ``.h5``) or SavedModel folder becomes a run holding a copy of the
  model and a record of where it came from.

Either way the run directory is built aside and renamed into place; one that an interruption
left half made (no manifest, or no ``model.keras`` with the recorded hash) is made again.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgebnn.errors import EdgebnnError, UsageError
from edgebnn.run import manifest as sections
from edgebnn.run.rundir import MANIFEST, RunDir, file_record
from edgebnn.run.trust import Trust, custom_objects_record, digest


@dataclass(frozen=True)
class ModelSpec:
    """How to build a registered model: input size, builder options, weights.

    Attributes:
        input_shape: (H, W, C) instead of the card's default.
        options: builder options (``width``, ``padding``...), typed.
        weights: ``None`` (random, from ``seed``), ``"imagenet"`` (Larq Zoo's download) or a
            weights file.
        weights_source: for a PyTorch checkpoint, its provenance (``format``, ``layout``,
            ``epoch``, ``file``, ``sha256``, ``bytes``): the manifest's ``weights_source``, and
            the file name is its ``weights``, so a run of other weights is never taken for it.
    """

    input_shape: tuple[int, int, int] | None = None
    options: dict[str, Any] = field(default_factory=dict)
    weights: str | None = None
    weights_source: dict[str, Any] | None = None

    def describe(self, card) -> dict[str, Any]:
        """The manifest sections this spec gives a run of ``card``."""
        described = {"input_shape": list(self.input_shape or card.input_shape), "model_options": dict(self.options),
                     "weights": self.weights or "random"}
        if self.weights_source:
            described.update(weights=self.weights_source["file"], weights_source=dict(self.weights_source))
        return described


RUN, KERAS, FLATBUFFER, MODEL = "run directory", "Keras file", "flatbuffer", "model name"


@dataclass(frozen=True)
class Source:
    """What a command's SRC is, classified once (:func:`parse_source`), with how to build it.

    Attributes:
        text: SRC as given.
        kind: :data:`RUN`, :data:`KERAS`, :data:`FLATBUFFER` (an existing path) or :data:`MODEL`.
        card: a registered model's card (``MODEL`` only).
        spec: the size, options and weights asked for (``input_shape`` only for a Keras file).
    """

    text: str
    kind: str
    card: Any = None
    spec: ModelSpec = ModelSpec()

    def __str__(self) -> str:
        return self.text

    @property
    def path(self) -> Path:
        return Path(self.text)

    @property
    def random_weights(self) -> bool:
        """A registered model built with weights drawn from a seed."""
        return self.kind == MODEL and not self.spec.weights


def parse_source(src: str, *, input_size: str | None = None, width: float | None = None, model_args=(),
                 model_file=(), weights: str | None = None) -> Source:
    """What ``src`` is, with the :class:`ModelSpec` the command line asks for it, checked before TensorFlow loads.

    ``model_file`` files are imported first (their models join the registry). An existing path
    is a Keras file, a flatbuffer (``.tflite``) or a run directory; anything else must be a
    registered model name. Size and options apply to a registered model; a Keras file takes
    ``input_size`` only (for dynamic shapes); a run directory records its own.

    Raises:
        UsageError: ``src`` is none of them (naming the nearest model names), an option that does
            not apply to it, or a bad value (named).
    """
    from edgebnn.models.files import is_keras_source
    from edgebnn.registry import get_card, is_model_name, parse_input_size

    load_model_files(model_file)
    given = given_options(input_size=input_size, width=width, model_args=model_args, weights=weights)
    path = Path(src)
    if path.exists():
        kind = KERAS if is_keras_source(path) else FLATBUFFER if _is_flatbuffer(path) else RUN
        if given and not (kind == KERAS and given == ["--input-size"]):
            raise not_applicable(src, given)
        return Source(src, kind, spec=ModelSpec(input_shape=parse_input_size(input_size, None)))  # channels: the model's
    if not is_model_name(src):
        if given:
            raise not_applicable(src, given)
        if "/" in src or src.startswith("."):
            raise UsageError(f"no run directory or model file at {src!r}: check the path, or give a model name")
    card = get_card(src)  # an unknown name raises with the nearest names
    return Source(src, MODEL, card=card, spec=model_spec(card, input_size=input_size, width=width,
                                                           model_args=model_args, weights=weights))


def listed_model(pattern: str | None, *, input_size: str | None = None, width: float | None = None, model_args=(),
                 model_file=()) -> tuple[Any, ModelSpec]:
    """For ``edgebnn models PATTERN``: the card of an exact model name and the spec its options ask, else
    ``(None, ModelSpec())`` for a glob (which takes no options).

    Raises:
        UsageError: options with a glob, or a bad value (named).
    """
    from edgebnn.registry import get_card, is_model_name

    load_model_files(model_file)
    if pattern and is_model_name(pattern):
        card = get_card(pattern)
        return card, model_spec(card, input_size=input_size, width=width, model_args=model_args)
    given = given_options(input_size=input_size, width=width, model_args=model_args)
    if pattern and given:
        raise not_applicable(pattern, given)
    return None, ModelSpec()


def load_model_files(paths) -> None:
    """Import each ``--model-file`` (its models join the registry)."""
    from edgebnn.registry import load_model_file

    for path in paths or ():
        load_model_file(path)


def given_options(*, input_size=None, width=None, model_args=(), weights=None) -> list[str]:
    """The model options given on the command line, as their flags."""
    flags = {"--input-size": input_size, "--width": width, "--model-arg": model_args, "--weights": weights}
    return [flag for flag, value in flags.items() if value not in (None, (), [])]


def not_applicable(src: str, given: list[str]) -> UsageError:
    """The error for ``given`` options on a ``src`` they do not apply to."""
    return UsageError(f"{', '.join(given)} apply to a model name (and --input-size to a Keras file); {src!r} "
                      "records its own: drop them, or give a model name")


def model_spec(card, *, input_size: str | None = None, width: float | None = None, model_args=(),
               weights: str | None = None) -> ModelSpec:
    """The :class:`ModelSpec` of ``card`` at ``input_size``, ``width``, ``model_args`` and ``weights``.

    Raises:
        UsageError: a bad value (named). EdgebnnError: a checkpoint that cannot be read.
    """
    from edgebnn.registry import model_options, parse_input_size

    shape = parse_input_size(input_size, card.input_shape[2])
    options = model_options(card, width=width, model_args=model_args)
    if weights and is_checkpoint_file(Path(weights)):
        return checkpoint_spec(card, shape, options, Path(weights))
    return ModelSpec(input_shape=shape, options=options, weights=weights)


def _is_flatbuffer(path: Path) -> bool:
    return path.suffix.lower() == ".tflite" and path.is_file()


def is_checkpoint_file(path: Path) -> bool:
    """A PyTorch checkpoint: the ZIP format ``torch.save`` writes, or a ``.pth``-like name."""
    from edgebnn.models.torch_checkpoint import is_torch_checkpoint, looks_like_torch_file

    return is_torch_checkpoint(path) or (path.is_file() and looks_like_torch_file(path))


def checkpoint_spec(card, input_shape, options: dict[str, Any], path: Path) -> ModelSpec:
    """The spec of ``card`` with the PyTorch checkpoint at ``path``, checked before TensorFlow loads.

    Raises:
        UsageError: ``card`` takes no checkpoint, or an option contradicts the authors' network.
        EdgebnnError: the checkpoint cannot be read or imported (the message says why).
    """
    from edgebnn.models.bnext_weights import check_checkpoint, checkpoint_options

    options = checkpoint_options(card, options, input_shape)
    source = {**check_checkpoint(path, card=card, options=options, input_shape=input_shape), "file": path.name,
              **file_record(path)}
    return ModelSpec(input_shape=input_shape, options=options, weights=str(path), weights_source=source)


def run_path(card, spec: ModelSpec) -> Path:
    """Where a run of ``card`` goes without ``--out``: ``runs/<model>``; a checkpoint's run in
    ``runs/<checkpoint name>``, apart from the random-weight run of the same model."""
    if spec.weights_source:
        from edgebnn.models.torch_checkpoint import SUFFIXES

        name = spec.weights_source["file"]
        stem = next((name[: -len(s)] for s in SUFFIXES if name.lower().endswith(s)), name)
        return Path("runs") / (stem or name)
    return Path("runs") / card.name


def resolve_source(source: Source, *, out: str | None = None, seed: int = 0, trust: Trust = Trust()) -> RunDir:
    """A run directory for ``source`` (:func:`parse_source`): a run directory, a model file, or a registered model.

    ``trust`` is what the user allowed on this command: the ``--custom-objects`` module a model
    file needs, and ``--trust-code`` for a file that carries code.

    Raises:
        UsageError: ``source`` is not a run directory, or ``out`` holds something else.
        EdgebnnError: the model file cannot be used (the message says why).
    """
    if source.kind == KERAS:
        return imported_run(source.path, out=out, trust=trust, input_shape=source.spec.input_shape)
    if source.kind != MODEL:
        return RunDir.open(source.path)
    card, spec = source.card, source.spec
    wanted = {"model": card.name, **spec.describe(card)}
    return reuse_or_build(Path(out) if out else run_path(card, spec), wanted,
                           lambda where: random_weight_run(card, where, seed=seed, spec=spec))


def reuse_or_build(path: Path, wanted: dict, build, *, complete=RunDir.is_complete) -> RunDir:
    """The complete run at ``path`` whose manifest has ``wanted``, else a new one from ``build(path)``.

    ``complete(run)`` says whether a run there is whole (default: its ``model.keras`` matches).
    """
    if path.exists():
        existing = RunDir(path)
        try:
            manifest = existing.manifest
        except EdgebnnError:
            manifest = None
        if manifest is not None and all(sections.section(manifest, k) == v for k, v in wanted.items()) \
                and complete(existing):
            return existing
        if not _half_made(existing, manifest, wanted, complete):
            what = f"a run of {manifest.get('model')}" if manifest else "something else"
            raise UsageError(f"{str(path)!r} already holds {what}, not this {wanted['model']} "
                             f"({', '.join(f'{k} {_shown(v)}' for k, v in wanted.items() if k != 'model')}): "
                             "choose another --out")
        shutil.rmtree(path)
    return build(path)


def _shown(value) -> str:
    """A manifest value in a message: a source by its path, not as a raw dict."""
    return str(value.get("path", "...")) if isinstance(value, dict) else str(value)


def _half_made(run: RunDir, manifest: dict | None, wanted: dict, complete) -> bool:
    """What an interrupted run could leave: a run of the same model without its model, or only temp files."""
    if manifest is not None:
        return manifest.get("model") == wanted["model"] and manifest.get("weights") == wanted["weights"] \
            and not complete(run)
    if (run.path / MANIFEST).exists() or not run.path.is_dir():
        return False
    return all(p.name.startswith(".") for p in run.path.iterdir())


def random_weight_run(card, path: Path, *, seed: int = 0, spec: ModelSpec = ModelSpec()) -> RunDir:
    """Build ``card``'s model (weights from ``seed``, or ``spec.weights``) into a new run at ``path``."""
    import tf_keras as keras

    from edgebnn.models.stats import model_stats
    from edgebnn.registry import create_model

    keras.utils.set_random_seed(seed)
    model = create_model(card.name, input_shape=spec.input_shape, **spec.options)
    if spec.weights:
        load_weights(model, spec.weights, card=card, source=spec.weights_source)
    manifest = {"model": card.name, "card": card.to_dict(), "seed": seed, "num_classes": card.num_classes,
                **spec.describe(card), "stats": model_stats(model)}
    return RunDir.build(path, manifest, lambda run: run.save_model(model))


def load_weights(model, weights: str, *, card, source: dict[str, Any] | None = None) -> None:
    """Weights from a file into ``model``, or Larq Zoo's ImageNet weights (downloaded and cached by larq-zoo).

    A PyTorch checkpoint (the BNext authors') is imported by :mod:`edgebnn.models.bnext_weights`
    into a model built with :func:`checkpoint_spec`'s options; ``source`` is the record that
    spec made, whose sha256 the file must still have once read.

    Raises:
        UsageError: ``imagenet`` for a model that is not from Larq Zoo, or no such file.
        EdgebnnError: the weights do not fit the model, or cannot be downloaded.
    """
    if Path(weights).is_file() and is_checkpoint_file(Path(weights)):
        from edgebnn.models.bnext_weights import load_checkpoint

        load_checkpoint(model, weights, card=card)
        if source and file_record(Path(weights))["sha256"] != source["sha256"]:
            raise EdgebnnError(f"{weights} changed while it was read (its sha256 is no longer {source['sha256'][:12]}"
                               "...): run the command again")
        return
    if weights == "imagenet":
        if card.family != "larq-zoo":
            raise UsageError(f"--weights imagenet is for the Larq Zoo models; {card.name} has none: give a weights file")
        import larq_zoo  # noqa: F401  (its download and cache; edgebnn never fetches weights itself)

        try:
            reference = card.entrypoint(input_shape=model.input_shape[1:], num_classes=card.num_classes,
                                        weights="imagenet")
        except Exception as e:
            raise EdgebnnError(f"cannot get Larq Zoo's ImageNet weights for {card.name}: {str(e).splitlines()[0][:200]}; "
                               "download them where a network is reachable and give the file with --weights PATH") from None
        model.set_weights(reference.get_weights())
        return
    path = Path(weights)
    if not path.is_file():
        raise UsageError(f"no weights file {weights!r}: give --weights imagenet (Larq Zoo) or a file saved with "
                         "model.save_weights")
    try:
        model.load_weights(path)
    except Exception as e:
        raise EdgebnnError(f"the weights in {path} do not fit {card.name} at input {model.input_shape[1:]}: "
                           f"{str(e).splitlines()[0][:200]}; give the size and options they were saved at") from None


def imported_run(path: Path, *, out: str | None = None, trust: Trust = Trust(),
                 input_shape: tuple[int, int, int] | None = None) -> RunDir:
    """A run directory holding a copy of the user's Keras model at ``path`` (``runs/<stem>`` or ``out``).

    The manifest's ``source`` records where it came from (path, sha256, what saved it) and the
    custom-objects module with its sha256, so later stages load the copy the same way (when the
    user allows it: :mod:`edgebnn.run.trust`). A run directory of another file is refused before
    the model is loaded.
    """
    path = path.resolve()
    source = {"path": str(path), "sha256": digest(path)}
    stem = path.stem if path.is_file() else path.name
    run_path = Path(out) if out else Path("runs") / stem
    existing = RunDir(run_path)
    if run_path.exists():  # the same file at the same size: no need to load it; another file: refused now
        try:
            recorded = existing.section("source")
        except EdgebnnError:
            recorded = {}
        if recorded.get("sha256") == source["sha256"] and existing.is_complete() and (
                input_shape is None or existing.manifest.get("input_shape") == list(input_shape)):
            return existing
        if recorded.get("sha256") and recorded.get("sha256") != source["sha256"]:
            raise UsageError(f"{str(run_path)!r} already holds the run of another file ({recorded.get('path')}, "
                             f"sha256 {str(recorded['sha256'])[:12]}...): choose another --out")
    from edgebnn.models.files import load_custom_objects, load_keras_file, saved_versions, with_input_size

    model = with_input_size(load_keras_file(path, load_custom_objects(trust.custom_objects), trust_code=trust.code),
                            input_shape)
    from edgebnn.models.introspection import non_float32_layer
    from edgebnn.models.stats import model_stats

    odd = non_float32_layer(model)
    if odd is not None:
        raise EdgebnnError(f"{path}: layer {odd.name!r} computes in {getattr(odd.dtype_policy, 'name', 'float16')}, "
                           "which LCE rejects: cast the model to float32 (rebuild it under the float32 policy and "
                           "copy the weights with set_weights), then convert")
    source.update(**saved_versions(path), loaded_with=_stack(), **custom_objects_record(trust.custom_objects))
    manifest = {"model": stem, "weights": "file", "source": source, "input_shape": list(model.input_shape[1:]),
                "num_classes": int(model.output_shape[-1]), "stats": model_stats(model)}
    return reuse_or_build(run_path, {"model": stem, "weights": "file", "source": source,
                                      "input_shape": manifest["input_shape"]},
                           lambda where: RunDir.build(where, manifest, lambda run: run.save_model(model)))


def _stack() -> dict:
    from importlib import metadata

    return {name: metadata.version(name) for name in ("tf-keras", "larq")}
