"""The model registry: every model edgebnn knows, keyed by CLI name, filled at import.

A family module registers small entrypoint functions with :func:`register_model` (the timm
pattern); :func:`create_model` builds one by name or alias. This module imports no TensorFlow,
so listing names and resolving typos stay instant.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Any, Callable

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
        }


_CARDS: dict[str, ModelCard] = {}
_ALIASES: dict[str, str] = {}


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
        )
        for key in (name, *aliases):
            if _ALIASES.get(_key(key), name) != name:
                raise ValueError(f"model name {key!r} is registered twice")
            _ALIASES[_key(key)] = name
        _CARDS[name] = card
        return fn

    return decorator


def _key(name: str) -> str:
    # `sabnn_resnet18`, `SABNN-ResNet18` and `sabnn-resnet18` are the same name.
    return name.strip().lower().replace("_", "-")


def _load_families() -> None:
    import edgebnn.models  # noqa: F401  (importing the package registers every family)


def list_models(pattern: str | None = None) -> list[ModelCard]:
    """All registered cards, sorted by family then name; ``pattern`` is a shell glob."""
    import fnmatch

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
