"""Training recipes, kept apart from architectures (the larq-zoo habit).

A recipe is plain data: optimizer, learning-rate schedule, epochs, batch size, augmentation,
distillation weights. Each model card names its default recipe; any field can be overridden
from the command line (``--epochs``, ``--batch-size``, ``--lr``, ``--set key=value``), and the
resolved recipe is saved in the manifest.

The paper recipes follow the experiment sections summarized in ``papers.md`` (sections 1-4);
where a paper leaves a value open the recipe's ``source`` says what edgebnn chose.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import typing
from dataclasses import dataclass, field
from typing import Any

from edgebnn.errors import UsageError

OPTIMIZERS = ("adam", "adamw", "sgd")
SCHEDULES = ("constant", "cosine", "step", "plateau")
FIXED = ("name", "source")


@dataclass(frozen=True)
class Recipe:
    """How to train a model.

    Attributes:
        name: the recipe's name.
        source: where it comes from (a paper's experiment section, or edgebnn's choice).
        epochs, batch_size: the schedule's length and the global batch size.
        optimizer: ``adam``, ``adamw`` or ``sgd``.
        lr: the initial (peak) learning rate, for the global batch size above.
        schedule: ``constant``, ``cosine``, ``step`` (x ``gamma`` at each of ``milestones``) or
            ``plateau`` (x ``gamma`` when the training loss has not fallen for
            ``plateau_patience`` epochs).
        warmup_epochs: linear warm-up before a cosine schedule.
        momentum: SGD momentum, or Adam's beta_1.
        nesterov: Nesterov momentum for SGD.
        weight_decay: decoupled weight decay of the float parameters.
        weight_decay_binary: decoupled weight decay of the binary layers' latent kernels
            (None: the same as ``weight_decay``).
        clip_norm: clip the gradients to this global norm (None: no clipping).
        label_smoothing: for the cross-entropy loss.
        randaugment_ops, randaugment_magnitude, randaugment_std: RandAugment for ImageNet
            training (0 ops: off).
        distill_alpha: weight of the teachers' loss when ``--teacher`` is given (the rest goes
            to the labels' cross-entropy).
        distill_temperature: softmax temperature of the distillation loss.
        extra: model-specific settings (``bipolar_lambda`` for Tang et al.'s regularizer).
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
    plateau_patience: int = 3
    warmup_epochs: int = 0
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float = 0.0
    weight_decay_binary: float | None = None
    clip_norm: float | None = None
    label_smoothing: float = 0.0
    randaugment_ops: int = 0
    randaugment_magnitude: float = 0.0
    randaugment_std: float = 0.0
    distill_alpha: float = 1.0
    distill_temperature: float = 1.0
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["milestones"] = list(self.milestones)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Recipe:
        """The recipe saved in a manifest."""
        known = {f.name for f in dataclasses.fields(cls)}
        data = {k: v for k, v in data.items() if k in known}
        data["milestones"] = tuple(data.get("milestones", ()))
        return cls(**data)

    @classmethod
    def editable(cls) -> list[str]:
        return [f.name for f in dataclasses.fields(cls) if f.name not in FIXED]

    def override(self, **changes: Any) -> Recipe:
        """A copy with ``changes`` applied (None values are ignored), each checked."""
        changes = {k: v for k, v in changes.items() if v is not None}
        for key in changes:
            if key not in self.editable():
                raise UsageError(f"unknown recipe field {key!r}: choose from {', '.join(self.editable())}")
        recipe = dataclasses.replace(self, **changes)
        recipe.validate()
        return recipe

    def with_settings(self, settings: list[str] | tuple[str, ...]) -> Recipe:
        """Apply ``--set key=value`` strings, each value parsed by the field's type.

        ``extra.KEY=VALUE`` sets one entry of ``extra`` (VALUE read as JSON, else as text);
        tuples take comma-separated values; ``none`` clears an optional field.

        Raises:
            UsageError: no ``=``, an unknown key, or a value of the wrong type.
        """
        changes: dict[str, Any] = {}
        extra = dict(self.extra)
        hints = typing.get_type_hints(Recipe)
        for item in settings:
            key, sep, text = item.partition("=")
            key = key.strip()
            if not sep or not key:
                raise UsageError(f"bad --set {item!r}: write key=value, e.g. --set weight_decay=1e-4")
            if key.startswith("extra."):
                try:
                    extra[key[6:]] = json.loads(text)
                except json.JSONDecodeError:
                    extra[key[6:]] = text
                continue
            if key not in self.editable() or key == "extra":
                raise UsageError(
                    f"unknown recipe field {key!r} in --set: choose from "
                    f"{', '.join(k for k in self.editable() if k != 'extra')} or extra.KEY"
                )
            changes[key] = _parse(key, text.strip(), hints[key])
        if extra != self.extra:
            changes["extra"] = extra
        recipe = dataclasses.replace(self, **changes)  # not override(): None is a value here
        recipe.validate()
        return recipe

    def validate(self) -> None:
        if self.epochs < 1 or self.batch_size < 1:
            raise UsageError(f"epochs and batch size must be positive (got {self.epochs}, {self.batch_size})")
        if self.lr <= 0:
            raise UsageError(f"the learning rate must be positive (got {self.lr})")
        if self.optimizer not in OPTIMIZERS:
            raise UsageError(f"unknown optimizer {self.optimizer!r}: choose {', '.join(OPTIMIZERS)}")
        if self.schedule not in SCHEDULES:
            raise UsageError(f"unknown schedule {self.schedule!r}: choose {', '.join(SCHEDULES)}")
        if self.warmup_epochs < 0:  # longer than the run: clipped to epochs - 1 by the schedule
            raise UsageError(f"warmup_epochs must be >= 0 (got {self.warmup_epochs})")
        if not 0.0 <= self.distill_alpha <= 1.0:
            raise UsageError(f"distill_alpha must be in [0, 1] (got {self.distill_alpha})")
        if not 0.0 <= self.label_smoothing < 1.0:
            raise UsageError(f"label_smoothing must be in [0, 1) (got {self.label_smoothing})")
        if self.clip_norm is not None and self.clip_norm <= 0:
            raise UsageError(f"clip_norm must be positive or none (got {self.clip_norm})")


def _parse(key: str, text: str, hint) -> Any:
    """``text`` as a value of the type ``hint`` (the field's annotation)."""
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    optional = type(None) in typing.get_args(hint)
    if optional and text.lower() in ("none", "null", ""):
        return None
    base = args[0] if optional else hint
    origin = typing.get_origin(base)
    try:
        if origin is tuple:
            item = typing.get_args(base)[0]
            return tuple(item(v) for v in text.split(",") if v.strip())
        if base is bool:
            if text.lower() in ("1", "true", "yes", "on"):
                return True
            if text.lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError(text)
        return base(text)
    except ValueError:
        name = getattr(base, "__name__", str(base))
        raise UsageError(f"bad value {text!r} for recipe field {key!r}: expected {name}") from None


_SABNN = "Liu et al., SA-BNN, AAAI 2021 (experiments): Adam, momentum 0.9, weight decay 0"
_EQUAL = "Li, Pintea, van Gemert, Equal Bits, AAAI 2022 (settings): SGD momentum 0.9"
_BNEXT = "Guo et al., BNext, TMLR 2023: AdamW, two weight-decay groups, 5 warm-up epochs + cosine, gradient-norm clip 5"
_BNEXT_FIELDS = dict(optimizer="adamw", lr=1e-3, schedule="cosine", warmup_epochs=5, weight_decay=1e-3,
                     weight_decay_binary=1e-8, clip_norm=5.0)
_RANDAUGMENT = dict(randaugment_ops=2, randaugment_magnitude=7.0, randaugment_std=0.5)
_RANDAUGMENT_NOTE = "RandAugment(7, 0.5) read as timm's rand-m7-mstd0.5"

RECIPES: dict[str, Recipe] = {
    r.name: r
    for r in [
        Recipe(name="sabnn-r18", source=f"{_SABNN}; ResNet-18", epochs=95, batch_size=256, optimizer="adam",
               lr=1e-3, schedule="step", milestones=(75, 85), gamma=0.1),
        Recipe(name="sabnn-r34", source=f"{_SABNN}; ResNet-34", epochs=90, batch_size=256, optimizer="adam",
               lr=1e-3, schedule="step", milestones=(60, 80), gamma=0.1),
        Recipe(name="sabnn-r50", source=f"{_SABNN}; ResNet-50", epochs=70, batch_size=64, optimizer="adam",
               lr=5e-4, schedule="step", milestones=(40, 60), gamma=0.1),
        Recipe(name="bnext", source=f"{_BNEXT}; ImageNet: 512 epochs, batch 512, {_RANDAUGMENT_NOTE}",
               epochs=512, batch_size=512, **_BNEXT_FIELDS, **_RANDAUGMENT),
        Recipe(name="bnext-large", source=f"{_BNEXT}; ImageNet, BNext-Large: 512 epochs, batch 128, "
                                          f"{_RANDAUGMENT_NOTE}",
               epochs=512, batch_size=128, **_BNEXT_FIELDS, **_RANDAUGMENT),
        # The paper gives only batch, epochs and augmentation for CIFAR; the rest is ImageNet's.
        Recipe(name="bnext-cifar", source=f"{_BNEXT}; CIFAR-10/100: 256 epochs, batch 128, random crop + flip "
                                          "(the CIFAR pipeline), no RandAugment; optimizer and schedule as on "
                                          "ImageNet (edgebnn's reading)",
               epochs=256, batch_size=128, **_BNEXT_FIELDS),
        Recipe(name="equalbits-imagenet", source=f"{_EQUAL}; ImageNet ResNet-18/34", epochs=100, batch_size=256,
               optimizer="sgd", lr=0.1, schedule="step", milestones=(30, 60, 90), gamma=0.1, weight_decay=1e-4),
        Recipe(name="equalbits-cifar10", source=f"{_EQUAL}; CIFAR-10", epochs=100, batch_size=128,
               optimizer="sgd", lr=0.1, schedule="cosine", weight_decay=1e-4),
        Recipe(name="equalbits-cifar100", source=f"{_EQUAL}; CIFAR-100", epochs=350, batch_size=128,
               optimizer="sgd", lr=0.1, schedule="step", milestones=(150, 250, 320), gamma=0.1, weight_decay=5e-4),
        Recipe(
            name="tang2017",
            source="Tang, Hua, Wang, AAAI 2017: Adam, batch 256, lr 1e-4 halved when the training loss stops "
                   "falling, bipolar regularizer lambda 5e-7 (the paper gives no epoch count: 100 is edgebnn's)",
            epochs=100, batch_size=256, optimizer="adam", lr=1e-4, schedule="plateau", gamma=0.5,
            plateau_patience=2, extra={"bipolar_lambda": 5e-7},
        ),
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
        UsageError: unknown name; the message suggests the nearest recipe names.
    """
    try:
        return RECIPES[name]
    except KeyError:
        close = difflib.get_close_matches(name.strip().lower(), list(RECIPES), n=3, cutoff=0.7)
        hint = f"did you mean {', '.join(close)}?" if close else f"choose one of {', '.join(sorted(RECIPES))}"
        raise UsageError(f"unknown recipe {name!r}: {hint} (`edgebnn recipes` shows what each one sets)") from None
