"""``synthetic``: random tensors at the model's input shape, for throughput measurements."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from edgebnn.data.dataset import Augment, Dataset
from edgebnn.data.spec import DataSpec

NUM_CLASSES = 10
SIZE = 512  # examples drawn once; an epoch repeats them


def load(spec: DataSpec, shape, batch_size: int, seed: int, preprocessing, augment: Augment) -> Dataset:
    """Random inputs and labels from ``seed`` at ``shape`` (not normalized: already in [-1, 1])."""
    num_classes, size = NUM_CLASSES, SIZE
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1, 1, size=(size, *shape)).astype("float32")
    y = rng.integers(0, num_classes, size=size).astype("int32")
    data = tf.data.Dataset.from_tensor_slices((x, y)).cache()
    size = max(size, batch_size)

    def epoch_fn(epoch):
        return data.repeat().take(size)

    return Dataset(
        "synthetic", num_classes, size, len(x) // 8, batch_size, seed, epoch_fn,
        lambda: data.take(len(x) // 8), drop_remainder=True,
    )
