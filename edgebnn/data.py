"""Datasets as ``tf.data`` pipelines.

``digits`` is scikit-learn's bundled 8x8 handwritten digits (real data, no download), resized
to the model's input; ``synthetic`` is random tensors at the model's input shape, for
throughput measurements.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgebnn.errors import UsageError

DATASETS = ("digits", "synthetic")


@dataclass
class Dataset:
    """Train and validation pipelines of batched ``(image, label)`` pairs."""

    name: str
    train: "object"  # tf.data.Dataset
    val: "object"
    num_classes: int
    train_size: int
    val_size: int

    def describe(self) -> dict:
        return {
            "name": self.name,
            "num_classes": self.num_classes,
            "train_size": self.train_size,
            "val_size": self.val_size,
        }


def parse_spec(spec: str) -> tuple[str, str | None]:
    """Split ``kind[:path]`` and check the kind.

    Raises:
        UsageError: an unknown dataset kind.
    """
    kind, _, path = spec.partition(":")
    if kind not in DATASETS:
        raise UsageError(f"unknown dataset {spec!r}: choose one of {', '.join(DATASETS)}")
    return kind, path or None


def load_dataset(spec: str, *, input_shape, batch_size: int, seed: int = 0) -> Dataset:
    """Build the train/validation pipelines for ``spec`` at the model's ``input_shape``."""
    kind, _ = parse_spec(spec)
    if kind == "digits":
        return _digits(input_shape, batch_size, seed)
    return _synthetic(input_shape, batch_size, seed)


def digits_arrays(input_shape, *, seed: int = 0):
    """The digits as float arrays at ``input_shape`` in [-1, 1], with a fixed stratified split.

    Returns:
        ``(x_train, y_train, x_val, y_val)``.
    """
    import tensorflow as tf
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


def _digits(input_shape, batch_size, seed) -> Dataset:
    import tensorflow as tf

    x_train, y_train, x_val, y_val = digits_arrays(input_shape, seed=seed)
    train = (
        tf.data.Dataset.from_tensor_slices((x_train, y_train))
        .shuffle(len(x_train), seed=seed, reshuffle_each_iteration=True)
        .batch(batch_size)
        .prefetch(tf.data.AUTOTUNE)
    )
    val = tf.data.Dataset.from_tensor_slices((x_val, y_val)).batch(batch_size).prefetch(tf.data.AUTOTUNE)
    return Dataset("digits", train, val, 10, len(x_train), len(x_val))


def _synthetic(input_shape, batch_size, seed, num_classes: int = 10, size: int = 512) -> Dataset:
    import tensorflow as tf

    rng = np.random.default_rng(seed)
    x = rng.uniform(-1, 1, size=(size, *input_shape)).astype("float32")
    y = rng.integers(0, num_classes, size=size).astype("int32")
    data = tf.data.Dataset.from_tensor_slices((x, y)).cache()
    train = data.repeat().batch(batch_size, drop_remainder=True).take(size // batch_size or 1)
    val = data.take(max(batch_size, size // 8)).batch(batch_size)
    return Dataset("synthetic", train.prefetch(tf.data.AUTOTUNE), val, num_classes, size, size // 8)
