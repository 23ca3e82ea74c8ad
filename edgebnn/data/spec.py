"""Dataset specs (``--data``): parsed and checked without TensorFlow, so bad input is refused at once."""

from __future__ import annotations

from edgebnn.errors import UsageError

DATASETS = ("imagenet", "cifar10", "cifar100", "digits", "synthetic")
NEEDS_DIR = ("imagenet", "cifar10", "cifar100")


def parse_spec(spec: str) -> tuple[str, str | None]:
    """Split ``kind[:path]`` and check the kind.

    Raises:
        UsageError: an unknown dataset kind, or a folder dataset without its folder.
    """
    kind, _, path = spec.partition(":")
    if kind not in DATASETS:
        raise UsageError(f"unknown dataset {spec!r}: choose one of {', '.join(DATASETS)} (e.g. imagenet:/data/imagenet)")
    if kind in NEEDS_DIR and not path:
        raise UsageError(f"dataset {kind!r} needs its folder: --data {kind}:DIR")
    return kind, path or None
