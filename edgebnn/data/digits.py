"""``digits``: scikit-learn's bundled 8x8 digits resized to the model's input, a fixed stratified split."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from edgebnn.data.dataset import Augment, Dataset, epoch_seed, permutation
from edgebnn.data.spec import DataSpec


def digits_arrays(input_shape, *, seed: int = 0):
    """The digits as float arrays at ``input_shape`` in [-1, 1], with a fixed stratified split.

    Returns:
        ``(x_train, y_train, x_val, y_val)``.
    """
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    images = digits.images.astype("float32")[..., None] / 16.0  # (n, 8, 8, 1) in [0, 1]
    height, width, channels = input_shape
    images = tf.image.resize(images, (height, width), method="bilinear").numpy()
    images = np.repeat(images, channels, axis=-1) * 2.0 - 1.0
    x_train, x_val, y_train, y_val = train_test_split(
        images, digits.target.astype("int32"), test_size=0.2, stratify=digits.target, random_state=seed
    )
    return x_train, y_train, x_val, y_val


def load(spec: DataSpec, shape, batch_size: int, seed: int, preprocessing, augment: Augment) -> Dataset:
    """The digits at ``shape``, in [-1, 1] whatever ``preprocessing`` (no augmentation)."""
    # The split is fixed (random_state 0) whatever the training seed, so runs compare.
    x_train, y_train, x_val, y_val = digits_arrays(shape)
    images, labels = tf.constant(x_train), tf.constant(y_train)

    def epoch_fn(epoch):
        perm = permutation(len(x_train), epoch_seed(seed, epoch))
        return perm.map(lambda i: (tf.gather(images, i), tf.gather(labels, i)))

    def val_fn():
        return tf.data.Dataset.from_tensor_slices((x_val, y_val)).cache()

    return Dataset("digits", 10, len(x_train), len(x_val), batch_size, seed, epoch_fn, val_fn)
