"""Dataset specs (``--data kind[:path]``): parsed and checked once, without TensorFlow, so bad input is refused at once."""

from __future__ import annotations

from dataclasses import dataclass

from edgebnn.errors import UsageError

DATASETS = ("imagenet", "cifar10", "cifar100", "digits", "synthetic")
NEEDS_DIR = ("imagenet", "cifar10", "cifar100")
DEFAULT = "digits"  # what `edgebnn train` uses without --data: bundled with scikit-learn, no download
ABOUT = {"digits": "the bundled digits (scikit-learn's 1,797 8x8 grayscale images; --data chooses another dataset)"}
IMAGE_SIDE = {"digits": 8, "cifar10": 32, "cifar100": 32}  # the images' own size (ImageNet's varies)
MIN_SIDE = 32  # the models downsample 32x: smaller data (the 8x8 digits) is upscaled to this
FAR_SMALLER = 4  # a model input this many times the data's side (16x the pixels) wastes its compute


@dataclass(frozen=True)
class DataSpec:
    """A checked dataset spec: its kind (:data:`DATASETS`) and folder; ``str()`` gives the spec back."""

    kind: str
    path: str | None = None

    def __str__(self) -> str:
        return f"{self.kind}:{self.path}" if self.path else self.kind

    @property
    def about(self) -> str | None:
        """What the dataset is, for a note when it was chosen by default."""
        return ABOUT.get(self.kind)

    @property
    def image_side(self) -> int | None:
        """The images' own side in pixels (None when it varies)."""
        return IMAGE_SIDE.get(self.kind)

    def input_side(self, model_side: int) -> int | None:
        """The input side to train at when none is given, if not the model's default; else None.

        When a dataset's images are far smaller than the model's default input (CIFAR's 32x32 or
        the digits' 8x8 against 224x224), upscaling them adds no information and multiplies memory
        and time (sabnn-r18 on the digits at 224: ~11 GB): train at the data's own size instead,
        at least ``MIN_SIDE`` (so the 8x8 digits at 32x32).
        """
        side = self.image_side
        if side is None or model_side < FAR_SMALLER * side:
            return None
        own = max(side, MIN_SIDE)
        return own if own < model_side else None


def parse_spec(spec: str | DataSpec) -> DataSpec:
    """``kind[:path]`` as a :class:`DataSpec` (one already parsed is returned as it is).

    Raises:
        UsageError: an unknown dataset kind, or a folder dataset without its folder.
    """
    if isinstance(spec, DataSpec):
        return spec
    kind, _, path = spec.partition(":")
    if kind not in DATASETS:
        raise UsageError(f"unknown dataset {spec!r}: choose one of {', '.join(DATASETS)} (e.g. imagenet:/data/imagenet)")
    if kind in NEEDS_DIR and not path:
        raise UsageError(f"dataset {kind!r} needs its folder: --data {kind}:DIR")
    return DataSpec(kind, path or None)

