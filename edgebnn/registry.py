"""The model registry: every model edgebnn knows, keyed by CLI name, filled at import.

A family module registers small entrypoint functions with :func:`register_model` (the timm
pattern); :func:`create_model` builds one by name or alias. This module imports no TensorFlow,
so listing names and resolving typos stay instant.
"""

from __future__ import annotations

import difflib
import fnmatch
import functools
import hashlib
import importlib.util
import inspect
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

from edgebnn.errors import UsageError


@dataclass(frozen=True)
class ModelCard:
    """What a registered model is, apart from its weights.

    Attributes:
        name: the CLI name (``sabnn-r18``).
        family: the builder family (``sabnn``, ``bnext``, ``larq-zoo``...).
        paper: citation of the paper the architecture comes from.
        entrypoint: ``f(*, input_shape, num_classes, **options) -> keras.Model``.
        aliases: other accepted names (``sabnn_resnet18``).
        input_shape: default input shape (H, W, C).
        num_classes: default number of classes.
        recipe: name of the default training recipe (see ``edgebnn.recipes``).
        published: the paper's reported figures, e.g. ``{"imagenet_top1": 61.7}``.
        preprocessing: input normalization, ``{"mean": [...], "std": [...]}`` in pixel units.
        notes: anything a user should know (deployment exceptions, interpretations).
        min_input_size: the smallest square input the architecture builds at (pooling and
            valid convolutions shrink the feature maps below 1 pixel otherwise).
        origin: where the model comes from: ``edgebnn``, ``plugin DIST`` (an ``edgebnn.models``
            entry point) or ``file PATH`` (``--model-file``).
    """

    name: str
    family: str
    paper: str
    entrypoint: Callable[..., Any]
    aliases: tuple[str, ...] = ()
    input_shape: tuple[int, int, int] = (224, 224, 3)
    num_classes: int = 1000
    recipe: str = "default"
    published: dict[str, float] = field(default_factory=dict)
    preprocessing: dict[str, Any] = field(default_factory=dict)
    notes: str = ""
    min_input_size: int = 32
    origin: str = "edgebnn"

    def options(self) -> dict[str, Any]:
        """The builder's options beyond input shape and classes, with their defaults."""
        skip = {"input_shape", "num_classes"}
        params = inspect.signature(self.entrypoint).parameters.values()
        return {p.name: (None if p.default is inspect.Parameter.empty else p.default)
                for p in params if p.name not in skip and p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)}

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "family": self.family,
            "paper": self.paper,
            "aliases": list(self.aliases),
            "input_shape": list(self.input_shape),
            "num_classes": self.num_classes,
            "recipe": self.recipe,
            "published": dict(self.published),
            "preprocessing": dict(self.preprocessing),
            "notes": self.notes,
            "min_input_size": self.min_input_size,
            "origin": self.origin,
            "options": {k: v for k, v in self.options().items() if isinstance(v, (int, float, str, bool, type(None)))},
        }


_CARDS: dict[str, ModelCard] = {}
_ALIASES: dict[str, str] = {}
_ORIGIN = ["edgebnn"]  # the origin of the cards registered now (a plugin's, a model file's)
_FILE_BYTES: dict[str, str] = {}  # a model file's origin -> the sha256 of the file it was loaded from
PLUGIN_GROUP = "edgebnn.models"
PLUGIN_FAILURES: dict[str, str] = {}  # entry point -> why it failed to load (the others still load)


def register_model(
    name: str,
    *,
    family: str,
    paper: str,
    aliases: tuple[str, ...] = (),
    input_shape: tuple[int, int, int] = (224, 224, 3),
    num_classes: int = 1000,
    recipe: str = "default",
    published: dict[str, float] | None = None,
    preprocessing: dict[str, Any] | None = None,
    notes: str = "",
    min_input_size: int = 32,
):
    """Decorator registering an entrypoint under ``name`` and its aliases."""

    def decorator(fn):
        card = ModelCard(
            name=name,
            family=family,
            paper=paper,
            entrypoint=fn,
            aliases=tuple(aliases),
            input_shape=tuple(input_shape),
            num_classes=num_classes,
            recipe=recipe,
            published=dict(published or {}),
            preprocessing=dict(preprocessing or {}),
            notes=notes,
            min_input_size=min_input_size,
            origin=_ORIGIN[-1],
        )
        for key in (name, *aliases):
            taken = _ALIASES.get(_key(key))
            if taken is not None and (taken != name or not _same_origin(_CARDS[taken].origin, card.origin)):
                # A model file or plugin never takes over a name silently: which model ran would
                # depend on what was loaded, and its figures would be filed under the other's name.
                raise UsageError(f"model name {key!r} is registered twice: by {_CARDS[taken].origin} "
                                 f"({taken}) and by {card.origin}; give the new model another name")
        for key in (name, *aliases):
            _ALIASES[_key(key)] = name
        _CARDS[name] = card
        return fn

    return decorator


def _key(name: str) -> str:
    # `sabnn_resnet18`, `SABNN-ResNet18` and `sabnn-resnet18` are the same name.
    return name.strip().lower().replace("_", "-")


@functools.cache
def _load_families() -> None:
    import edgebnn.models  # noqa: F401  (importing the package registers every family)

    for point in entry_points(group=PLUGIN_GROUP):
        dist = getattr(point.dist, "name", None) or point.value
        _ORIGIN.append(f"plugin {dist}")
        try:
            point.load()
        except Exception as e:  # a broken plugin must not hide the other models
            PLUGIN_FAILURES[f"{point.name} ({point.value})"] = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
        finally:
            _ORIGIN.pop()


def _same_origin(a: str, b: str) -> bool:
    """The same code registered both: one origin, or model files holding the same bytes."""
    return a == b or (a in _FILE_BYTES and _FILE_BYTES.get(a) == _FILE_BYTES.get(b))


def load_model_file(path: str | Path) -> list[str]:
    """Import a Python file that registers models with :func:`register_model` (``--model-file``).

    Returns:
        The names it registered.

    Raises:
        UsageError: no such file, or it fails to import (naming the error).
    """
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"no model file {str(path)!r}: give a Python file that defines models with "
                         "@register_model (see README, Your own models)")
    _load_families()
    before = set(_CARDS)
    spec = importlib.util.spec_from_file_location(f"edgebnn_user_models_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    try:
        content = path.read_bytes()
    except OSError as e:
        raise UsageError(f"cannot read the model file {str(path)!r}: {e.strerror}") from None
    _ORIGIN.append(f"file {path}")
    _FILE_BYTES[_ORIGIN[-1]] = hashlib.sha256(content).hexdigest()
    try:
        spec.loader.exec_module(module)
    except Exception as e:
        raise UsageError(f"cannot import the model file {str(path)!r}: {type(e).__name__}: {e}") from None
    finally:
        _ORIGIN.pop()
    return sorted(set(_CARDS) - before)


def list_models(pattern: str | None = None) -> list[ModelCard]:
    """All registered cards, sorted by family then name; ``pattern`` is a shell glob."""
    _load_families()
    cards = sorted(_CARDS.values(), key=lambda c: (c.family, c.name))
    if pattern:
        cards = [c for c in cards if fnmatch.fnmatch(c.name, pattern)]
    return cards


def is_model_name(name: str) -> bool:
    _load_families()
    return _key(name) in _ALIASES


def get_card(name: str) -> ModelCard:
    """The card for ``name`` or an alias.

    Raises:
        UsageError: unknown name; the message suggests the nearest registered names.
    """
    _load_families()
    canonical = _ALIASES.get(_key(name))
    if canonical is None:
        close = difflib.get_close_matches(_key(name), list(_ALIASES), n=3, cutoff=0.5)
        hint = f"did you mean {', '.join(sorted({_ALIASES[c] for c in close}))}? " if close else ""
        raise UsageError(f"unknown model {name!r}: {hint}run `edgebnn models` for the list")
    return _CARDS[canonical]


def create_model(
    name: str,
    *,
    input_shape: tuple[int, int, int] | None = None,
    num_classes: int | None = None,
    **options: Any,
):
    """Build a registered model with random weights.

    Args:
        name: CLI name or alias.
        input_shape: (H, W, C); the card's default when None.
        num_classes: the card's default when None.
        **options: family options (``width``, ``padding``...).

    Returns:
        A ``keras.Model``.
    """
    card = get_card(name)
    return card.entrypoint(
        input_shape=tuple(input_shape or card.input_shape),
        num_classes=num_classes or card.num_classes,
        **options,
    )


def parse_input_size(text: str | None, channels: int | None) -> tuple[int, int, int | None] | None:
    """``--input-size N`` or ``HxW`` as ``(H, W, channels)`` (None when not given).

    Raises:
        UsageError: not one or two positive whole numbers.
    """
    if text is None:
        return None
    parts = str(text).lower().split("x")
    if len(parts) not in (1, 2) or not all(p.strip().isdigit() and int(p) > 0 for p in parts):
        raise UsageError(f"bad --input-size {text!r}: give N or HxW in pixels, e.g. 32 or 160x128")
    height, width = (int(parts[0]), int(parts[-1]))
    return (height, width, channels)


def _typed(key: str, text: str, default: Any, card: ModelCard) -> Any:
    if isinstance(default, bool):
        if text.lower() in ("1", "true", "yes", "on"):
            return True
        if text.lower() in ("0", "false", "no", "off"):
            return False
        raise UsageError(f"bad --model-arg {key}={text!r} for {card.name}: give true or false")
    for kind in (int, float):
        if isinstance(default, kind):
            try:
                return kind(text)
            except ValueError:
                raise UsageError(f"bad --model-arg {key}={text!r} for {card.name}: give a {kind.__name__}") from None
    if default is None:  # untyped: a number if it reads as one
        for kind in (int, float):
            try:
                return kind(text)
            except ValueError:
                pass
    return text


def model_options(card: ModelCard, *, width: float | None = None, model_args=()) -> dict[str, Any]:
    """The builder options ``--width`` and ``--model-arg KEY=VALUE`` ask for, typed by the defaults.

    Raises:
        UsageError: a malformed argument, or a key the builder lacks (listing its options).
    """
    known = card.options()
    options: dict[str, Any] = {}
    if width is not None:
        options["width"] = width
    for arg in model_args:
        key, sep, text = str(arg).partition("=")
        key = key.strip()
        if not sep or not key:
            raise UsageError(f"bad --model-arg {arg!r}: use KEY=VALUE, e.g. --model-arg padding=zero")
        options[key] = text.strip()
    for key, value in list(options.items()):
        if key not in known:
            listing = ", ".join(f"{k}={v!r}" for k, v in known.items()) or "none"
            raise UsageError(f"{card.name} has no option {key!r}: its options are {listing}")
        if isinstance(value, str):
            options[key] = _typed(key, value, known[key], card)
    scale = options.get("width")
    if isinstance(scale, int | float) and not (math.isfinite(scale) and scale > 0):
        raise UsageError(f"bad --width {scale}: give a multiplier above 0, e.g. 0.25 or 1")
    return options
