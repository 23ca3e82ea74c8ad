"""Training recipes, kept apart from architectures (the larq-zoo habit).

A recipe is plain data: optimizer, learning-rate schedule, epochs, batch size. Each model card
names its default recipe; any field can be overridden from the command line, and the resolved
recipe is saved in the manifest.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from edgebnn.errors import UsageError


@dataclass(frozen=True)
class Recipe:
    """How to train a model.

    Attributes:
        name: the recipe's name.
        source: where it comes from (a paper's experiment section, or edgebnn's choice).
        epochs, batch_size: the schedule's length and the global batch size.
        optimizer: ``adam``, ``adamw`` or ``sgd``.
        lr: the initial (peak) learning rate, for the global batch size above.
        schedule: ``constant``, ``cosine`` or ``step`` (x ``gamma`` at each of ``milestones``).
        warmup_epochs: linear warm-up before the schedule.
        momentum, weight_decay: optimizer settings.
        label_smoothing: for the cross-entropy loss.
    """

    name: str
    source: str
    epochs: int
    batch_size: int
    optimizer: str = "adam"
    lr: float = 1e-3
    schedule: str = "cosine"
    milestones: tuple[int, ...] = ()
    gamma: float = 0.1
    warmup_epochs: int = 0
    momentum: float = 0.9
    weight_decay: float = 0.0
    label_smoothing: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def override(self, **changes: Any) -> "Recipe":
        """A copy with ``changes`` applied (None values are ignored), each checked."""
        changes = {k: v for k, v in changes.items() if v is not None}
        fields = {f.name: f for f in dataclasses.fields(self)}
        for key in changes:
            if key not in fields or key in ("name", "source"):
                raise UsageError(
                    f"unknown recipe field {key!r}: choose from "
                    f"{', '.join(k for k in fields if k not in ('name', 'source'))}"
                )
        recipe = dataclasses.replace(self, **changes)
        recipe.validate()
        return recipe

    def validate(self) -> None:
        if self.epochs < 1 or self.batch_size < 1:
            raise UsageError(f"epochs and batch size must be positive (got {self.epochs}, {self.batch_size})")
        if self.lr <= 0:
            raise UsageError(f"the learning rate must be positive (got {self.lr})")
        if self.optimizer not in ("adam", "adamw", "sgd"):
            raise UsageError(f"unknown optimizer {self.optimizer!r}: choose adam, adamw or sgd")
        if self.schedule not in ("constant", "cosine", "step"):
            raise UsageError(f"unknown schedule {self.schedule!r}: choose constant, cosine or step")


RECIPES: dict[str, Recipe] = {
    r.name: r
    for r in [
        Recipe(
            name="bireal-tiny",
            source="edgebnn: short Adam run for the 8x8 digits upscaled to 32x32",
            epochs=15,
            batch_size=64,
            optimizer="adam",
            lr=5e-3,
            schedule="cosine",
        ),
        Recipe(
            name="larq-zoo",
            source="edgebnn default for Larq Zoo models (Adam, cosine decay, as QuickNet trains)",
            epochs=120,
            batch_size=256,
            optimizer="adam",
            lr=2.5e-3,
            schedule="cosine",
        ),
        Recipe(name="default", source="edgebnn default", epochs=100, batch_size=256, lr=1e-3),
    ]
}


def get_recipe(name: str) -> Recipe:
    """The named recipe.

    Raises:
        UsageError: unknown name.
    """
    try:
        return RECIPES[name]
    except KeyError:
        raise UsageError(f"unknown recipe {name!r}: choose one of {', '.join(sorted(RECIPES))}") from None
