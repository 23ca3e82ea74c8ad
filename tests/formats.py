"""Small datasets written in the real formats (ImageNet JPEG folders, CIFAR pickle batches),
shared by the tests of the loaders and of what reads them."""

import pickle

import numpy as np
import tensorflow as tf


def write_jpeg(path, rng, size=(40, 52)):
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = rng.integers(0, 256, size=(*size, 3), dtype=np.uint8)
    path.write_bytes(tf.io.encode_jpeg(pixels).numpy())


def imagenet_folder(root, classes=("n01", "n02", "n03"), per_class=4, val_per_class=2):
    rng = np.random.default_rng(0)
    for c in classes:
        for i in range(per_class):
            write_jpeg(root / "train" / c / f"{c}_{i}.JPEG", rng, size=(30 + 7 * i, 60 - 5 * i))
        for i in range(val_per_class):
            write_jpeg(root / "val" / c / f"val_{c}_{i}.JPEG", rng)
    # ImageNet holds a few PNGs named .JPEG: they must decode too.
    pixels = rng.integers(0, 256, size=(33, 33, 3), dtype=np.uint8)
    (root / "train" / classes[0] / "png_as.JPEG").write_bytes(tf.io.encode_png(pixels).numpy())
    return root


def cifar_batch(path, n, label_key, classes, seed):
    rng = np.random.default_rng(seed)
    batch = {b"data": rng.integers(0, 256, size=(n, 3072), dtype=np.uint8),
             label_key: rng.integers(0, classes, size=n).tolist(), b"batch_label": b"test"}
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        pickle.dump(batch, f)


def cifar10_folder(root):
    folder = root / "cifar-10-batches-py"
    for i in range(1, 6):
        cifar_batch(folder / f"data_batch_{i}", 6, b"labels", 10, i)
    cifar_batch(folder / "test_batch", 5, b"labels", 10, 9)
    return folder
