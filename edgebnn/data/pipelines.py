"""Datasets as ``tf.data`` pipelines: the ``--data`` spec to its dataset's module.

Each dataset has its module, with a ``load(spec, shape, batch_size, seed, preprocessing,
augment)`` that returns a :class:`edgebnn.data.dataset.Dataset`:

- ``imagenet:DIR``: :mod:`edgebnn.data.imagenet` (class folders, JPEG and PNG).
- ``cifar10:DIR`` / ``cifar100:DIR``: :mod:`edgebnn.data.cifar` (the python-pickle batches).
- ``digits``: :mod:`edgebnn.data.digits` (scikit-learn's bundled 8x8 digits).
- ``synthetic``: :mod:`edgebnn.data.synthetic` (random tensors, for throughput measurements).

What they share (seeds that make training a pure function of ``(seed, epoch)``, normalization,
errors naming the bad file) is in :mod:`edgebnn.data.dataset`. To add a dataset: its kind in
:data:`edgebnn.data.spec.DATASETS`, a module with its ``load``, and that ``load`` in :data:`LOADERS`.
"""

from __future__ import annotations

from edgebnn.data import cifar, digits, imagenet, synthetic
from edgebnn.data.dataset import Augment, Dataset, data_errors
from edgebnn.data.digits import digits_arrays
from edgebnn.data.spec import DataSpec, parse_spec

__all__ = ["LOADERS", "Augment", "Dataset", "data_errors", "digits_arrays", "load_dataset"]

LOADERS = {"imagenet": imagenet.load, "cifar10": cifar.load, "cifar100": cifar.load, "digits": digits.load,
           "synthetic": synthetic.load}


def load_dataset(
    spec: DataSpec | str,
    *,
    input_shape,
    batch_size: int,
    seed: int = 0,
    preprocessing: dict | None = None,
    augment: Augment | None = None,
) -> Dataset:
    """Build the train/validation pipelines for ``spec`` at the model's ``input_shape``.

    Args:
        spec: ``imagenet:DIR``, ``cifar10:DIR``, ``cifar100:DIR``, ``digits`` or ``synthetic``,
            parsed (:class:`edgebnn.data.spec.DataSpec`) or not.
        input_shape: the model's (H, W, C).
        batch_size: global batch size.
        seed: shuffling and augmentation seed.
        preprocessing: the model card's ``{"mean": [...], "std": [...]}`` in pixel units.
        augment: RandAugment options for ImageNet training.

    Raises:
        UsageError: a bad spec.
        EdgebnnError: missing or malformed files (the message names the path).
    """
    spec = parse_spec(spec)
    shape = tuple(int(d) for d in input_shape)
    return LOADERS[spec.kind](spec, shape, batch_size, seed, preprocessing, augment or Augment())
