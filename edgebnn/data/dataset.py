"""What every dataset shares: the :class:`Dataset` it becomes, its seeds, normalization and errors.

Training pipelines are a pure function of ``(seed, epoch)``: each epoch has its own shuffle
seed (:func:`epoch_seed`, :func:`permutation`) and every augmentation draws from stateless
random ops seeded by (epoch, example index) (:func:`element_seeds`). A run resumed at epoch k
(or at batch b of epoch k) therefore sees exactly the batches that an uninterrupted run would
have seen.

Images are normalized with the model card's ``preprocessing`` (``{"mean", "std"}`` in pixel
units, 0..255); without one, pixels are scaled to [-1, 1] (:func:`normalize`).
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import tensorflow as tf

from edgebnn.errors import EdgebnnError

# Marker placed in in-graph assertion messages, so a failure deep inside tf.data can be turned
# back into an error that names the file.
BAD_IMAGE = "edgebnn-unreadable-image"


@dataclass
class Augment:
    """Training augmentation options (from the recipe)."""

    randaugment_ops: int = 0
    randaugment_magnitude: float = 0.0
    randaugment_std: float = 0.0


@dataclass
class Dataset:
    """A source of ``(image, label)`` batches: a training pipeline per epoch range, a validation one.

    ``train`` and ``val`` give one epoch each at the batch size the dataset was loaded with;
    :meth:`train_epochs` gives the endless (or bounded) stream that ``fit`` consumes.
    """

    name: str
    num_classes: int
    train_size: int
    val_size: int
    batch_size: int
    seed: int
    _epoch_fn: Callable[[Any], Any] = field(repr=False)  # epoch tensor -> unbatched dataset
    _val_fn: Callable[[], Any] = field(repr=False)  # -> unbatched dataset
    drop_remainder: bool = False

    def describe(self) -> dict:
        return {
            "name": self.name,
            "num_classes": self.num_classes,
            "train_size": self.train_size,
            "val_size": self.val_size,
        }

    @property
    def steps_per_epoch(self) -> int:
        if self.drop_remainder:
            return max(1, self.train_size // self.batch_size)
        return max(1, -(-self.train_size // self.batch_size))

    def train_epochs(self, start: int, stop: int, *, skip_batches: int = 0):
        """Batches of epochs ``start .. stop-1`` back to back, the first ``skip_batches`` left out."""
        def epoch(e):
            return self._epoch_fn(e).batch(self.batch_size, drop_remainder=self.drop_remainder)

        data = tf.data.Dataset.range(start, stop).flat_map(epoch)
        if skip_batches:
            data = data.skip(skip_batches)
        return data.prefetch(tf.data.AUTOTUNE)

    @property
    def train(self):
        """One training epoch (epoch 0)."""
        return self.train_epochs(0, 1)

    @property
    def val(self):
        return self._val_fn().batch(self.batch_size).prefetch(tf.data.AUTOTUNE)


def bad_image_path(message: str) -> str:
    """The file an in-graph assertion named: the bracketed value printed after :data:`BAD_IMAGE`.

    Eagerly the message ends with it; inside ``model.fit`` it is followed by the graph's node and
    function names (``[[{{node ...}}]] [Op:__inference_train_function_7399]``), so the value is
    read right after the marker, never from the end.
    """
    found = re.search(rf"{BAD_IMAGE}\]?\s*\[(?:b?['\"])?(.*?)(?:['\"])?\]", message)
    return found.group(1) if found else "an image"


@contextlib.contextmanager
def data_errors():
    """Turn a tf.data failure on an unreadable image into an EdgebnnError naming the file."""
    try:
        yield
    except tf.errors.OpError as e:
        if BAD_IMAGE in str(e.message):
            where = bad_image_path(e.message)
            raise EdgebnnError(
                f"corrupt or unsupported image {where}: remove or replace it (JPEG and PNG are read)"
            ) from None
        raise


def normalize(images, preprocessing, channels):
    """uint8/float pixels (0..255) -> the model's input range."""
    x = tf.cast(images, tf.float32)
    if channels == 1:  # the decoders always give RGB
        x = tf.image.rgb_to_grayscale(x)
    if preprocessing and "mean" in preprocessing:
        mean = np.asarray(preprocessing["mean"], "float32")
        std = np.asarray(preprocessing.get("std", [1.0]), "float32")
        if channels == 1:
            mean, std = mean.mean(keepdims=True), std.mean(keepdims=True)
        return (x - mean) / std
    return x / 127.5 - 1.0


def epoch_seed(seed: int, epoch):
    """The shuffle seed of one epoch."""
    return tf.cast(seed, tf.int64) * 1_000_003 + tf.cast(epoch, tf.int64)


def permutation(n: int, epoch_seed):
    """Indices 0..n-1 in this epoch's order: a stateless permutation (a full, uniform shuffle)."""
    keys = tf.random.stateless_uniform([n], tf.stack([epoch_seed, tf.constant(7, tf.int64)]))
    return tf.data.Dataset.from_tensor_slices(tf.argsort(keys))


def element_seeds(epoch_seed, index, n: int):
    """``n`` independent stateless seeds for one example of one epoch."""
    base = tf.stack([epoch_seed, tf.cast(index, tf.int64)])
    return tf.random.experimental.stateless_split(base, num=n)
