"""``cifar10:DIR`` / ``cifar100:DIR``: the python-pickle batches.

``DIR`` is ``cifar-10-batches-py`` / ``cifar-100-python`` or their parent; random crop with
4-pixel padding + flip for training.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import tensorflow as tf

from edgebnn.data.dataset import Augment, Dataset, element_seeds, epoch_seed, normalize, permutation
from edgebnn.data.spec import DataSpec
from edgebnn.errors import EdgebnnError

CIFAR_FILES = {
    "cifar10": ("cifar-10-batches-py", [f"data_batch_{i}" for i in range(1, 6)], ["test_batch"], b"labels", 10),
    "cifar100": ("cifar-100-python", ["train"], ["test"], b"fine_labels", 100),
}


def _unpickle(path: Path, label_key: bytes):
    if not path.is_file():
        raise EdgebnnError(f"missing CIFAR batch {path}: unpack the python version of the dataset into {path.parent}")
    try:
        with open(path, "rb") as f:
            batch = pickle.load(f, encoding="bytes")
        data = np.asarray(batch[b"data"], dtype=np.uint8)
        labels = np.asarray(batch[label_key], dtype=np.int32)
    except Exception as e:  # pickle raises many types for a bad file
        raise EdgebnnError(
            f"{path} is not a CIFAR python batch ({type(e).__name__}: {str(e)[:80]}): "
            "use the python version (cifar-10-python.tar.gz / cifar-100-python.tar.gz)"
        ) from None
    if data.ndim != 2 or data.shape[1] != 3072 or len(labels) != len(data):
        raise EdgebnnError(f"{path} is not a CIFAR python batch: data has shape {data.shape}, {len(labels)} labels")
    return data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1), labels


def cifar_arrays(kind: str, root: Path):
    """``(x_train, y_train, x_val, y_val)`` uint8 NHWC arrays from the python batches under ``root``."""
    folder, train_files, val_files, label_key, _ = CIFAR_FILES[kind]
    root = Path(root)
    if (root / folder).is_dir():
        root = root / folder
    if not root.is_dir():
        raise EdgebnnError(f"no {kind} folder at {root}: unpack {folder} there")
    parts = [[_unpickle(root / f, label_key) for f in files] for files in (train_files, val_files)]
    (xt, yt), (xv, yv) = [(np.concatenate([p[0] for p in ps]), np.concatenate([p[1] for p in ps])) for ps in parts]
    return xt, yt, xv, yv


def load(spec: DataSpec, shape, batch_size: int, seed: int, preprocessing, augment: Augment) -> Dataset:
    """The CIFAR batches under ``spec.path`` at ``shape`` (``augment`` is ImageNet's: not used)."""
    kind, root = spec.kind, Path(spec.path)
    x_train, y_train, x_val, y_val = cifar_arrays(kind, root)
    classes = CIFAR_FILES[kind][4]
    if y_train.max() >= classes or y_train.min() < 0:
        raise EdgebnnError(f"labels outside 0..{classes - 1} in {root}: is it {kind}?")
    size = shape[:2]

    def finish(image):
        if tuple(size) != (32, 32):
            image = tf.image.resize(image, size, method="bilinear")
        return normalize(image, preprocessing, shape[2])

    images, labels = tf.constant(x_train), tf.constant(y_train)

    def epoch_fn(epoch):
        this_epoch = epoch_seed(seed, epoch)

        def example(index):
            seeds = element_seeds(this_epoch, index, 2)
            image, label = tf.gather(images, index), tf.gather(labels, index)
            padded = tf.pad(image, [[4, 4], [4, 4], [0, 0]])
            image = tf.image.stateless_random_crop(padded, [32, 32, 3], seeds[0])
            image = tf.image.stateless_random_flip_left_right(image, seeds[1])
            return finish(image), label

        perm = permutation(len(x_train), this_epoch)
        return perm.map(example, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)

    def val_fn():
        data = tf.data.Dataset.from_tensor_slices((x_val, y_val)).cache()
        return data.map(lambda x, y: (finish(x), y), num_parallel_calls=tf.data.AUTOTUNE)

    return Dataset(f"{kind}:{root}", classes, len(x_train), len(x_val), batch_size, seed, epoch_fn, val_fn)
