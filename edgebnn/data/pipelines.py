"""Datasets as ``tf.data`` pipelines.

Sources (the ``--data`` spec):

- ``imagenet:DIR``: ``DIR/train/<class>/*`` and ``DIR/val/<class>/*`` (JPEG, PNG); parallel
  decoding, random-resized crop + flip (+ RandAugment when the recipe asks) for training,
  resize + center crop for validation.
- ``cifar10:DIR`` / ``cifar100:DIR``: the python-pickle batches (``DIR`` is
  ``cifar-10-batches-py`` / ``cifar-100-python`` or their parent); random crop with 4-pixel
  padding + flip.
- ``digits``: scikit-learn's bundled 8x8 digits resized to the model's input, a fixed
  stratified train/validation split.
- ``synthetic``: random tensors at the model's input shape, for throughput measurements.

Training pipelines are a pure function of ``(seed, epoch)``: each epoch has its own shuffle
seed and every augmentation draws from stateless random ops seeded by (epoch, example index).
A run resumed at epoch k (or at batch b of epoch k) therefore sees exactly the batches that an
uninterrupted run would have seen.

Images are normalized with the model card's ``preprocessing`` (``{"mean", "std"}`` in pixel
units, 0..255); without one, pixels are scaled to [-1, 1]. Its ``crop_fraction`` and
``interpolation`` choose timm's validation resize and crop (see ``_center_crop``).
"""

from __future__ import annotations

import contextlib
import os
import pickle
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgebnn.data.spec import parse_spec
from edgebnn.errors import EdgebnnError

IMAGE_SUFFIXES = (".jpeg", ".jpg", ".png")
# Marker placed in in-graph assertion messages, so a failure deep inside tf.data can be turned
# back into an error that names the file.
BAD_IMAGE = "edgebnn-unreadable-image"
CROP_FRACTION = 0.875  # validation: resize the shorter side to size / 0.875, center crop


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
        import tensorflow as tf

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
        import tensorflow as tf

        return self._val_fn().batch(self.batch_size).prefetch(tf.data.AUTOTUNE)


def load_dataset(
    spec: str,
    *,
    input_shape,
    batch_size: int,
    seed: int = 0,
    preprocessing: dict | None = None,
    augment: Augment | None = None,
) -> Dataset:
    """Build the train/validation pipelines for ``spec`` at the model's ``input_shape``.

    Args:
        spec: ``imagenet:DIR``, ``cifar10:DIR``, ``cifar100:DIR``, ``digits`` or ``synthetic``.
        input_shape: the model's (H, W, C).
        batch_size: global batch size.
        seed: shuffling and augmentation seed.
        preprocessing: the model card's ``{"mean": [...], "std": [...]}`` in pixel units.
        augment: RandAugment options for ImageNet training.

    Raises:
        UsageError: a bad spec.
        EdgebnnError: missing or malformed files (the message names the path).
    """
    kind, path = parse_spec(spec)
    shape = tuple(int(d) for d in input_shape)
    if kind == "digits":
        return _digits(shape, batch_size, seed)
    if kind == "synthetic":
        return _synthetic(shape, batch_size, seed)
    if kind == "imagenet":
        return _imagenet(Path(path), shape, batch_size, seed, preprocessing, augment or Augment())
    return _cifar(kind, Path(path), shape, batch_size, seed, preprocessing)


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
    import tensorflow as tf

    try:
        yield
    except tf.errors.OpError as e:
        if BAD_IMAGE in str(e.message):
            where = bad_image_path(e.message)
            raise EdgebnnError(
                f"corrupt or unsupported image {where}: remove or replace it (JPEG and PNG are read)"
            ) from None
        raise


# -- shared image ops ---------------------------------------------------------------------
def _normalize(images, preprocessing, channels):
    """uint8/float pixels (0..255) -> the model's input range."""
    import tensorflow as tf

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


def _epoch_seed(seed: int, epoch):
    import tensorflow as tf

    return tf.cast(seed, tf.int64) * 1_000_003 + tf.cast(epoch, tf.int64)


def _permutation(n: int, epoch_seed):
    """Indices 0..n-1 in this epoch's order: a stateless permutation (a full, uniform shuffle)."""
    import tensorflow as tf

    keys = tf.random.stateless_uniform([n], tf.stack([epoch_seed, tf.constant(7, tf.int64)]))
    return tf.data.Dataset.from_tensor_slices(tf.argsort(keys))


def _element_seeds(epoch_seed, index, n: int):
    """``n`` independent stateless seeds for one example of one epoch."""
    import tensorflow as tf

    base = tf.stack([epoch_seed, tf.cast(index, tf.int64)])
    return tf.random.experimental.stateless_split(base, num=n)


# -- ImageNet folders ---------------------------------------------------------------------
def _list_split(root: Path, split: str, classes: list[str] | None = None):
    """(paths, labels, class names) of ``root/split/<class>/*``.

    Raises:
        EdgebnnError: the split is missing, empty, or has an empty or unknown class folder.
    """
    folder = root / split
    if not folder.is_dir():
        raise EdgebnnError(
            f"missing split {folder}: an ImageNet folder needs {root}/train/<class>/*.JPEG and {root}/val/<class>/*"
        )
    found = sorted(d.name for d in os.scandir(folder) if d.is_dir())
    if not found:
        raise EdgebnnError(f"no class folders in {folder}: expected {folder}/<class>/*.JPEG")
    classes = classes or found
    index = {c: i for i, c in enumerate(classes)}
    paths, labels = [], []
    for name in found:
        if name not in index:
            raise EdgebnnError(f"class folder {folder / name} is not in the training classes: remove it or add it to train/")
        files = sorted(
            e.path for e in os.scandir(folder / name) if e.is_file() and e.name.lower().endswith(IMAGE_SUFFIXES)
        )
        if not files:
            raise EdgebnnError(f"empty class folder {folder / name}: add its images (*.JPEG) or remove it")
        paths += files
        labels += [index[name]] * len(files)
    return paths, labels, classes


def _read_image(path):
    """File bytes, with an in-graph check that they start like a JPEG or a PNG.

    (decode_image also reads GIF and BMP, which the README does not promise.)
    """
    import tensorflow as tf

    data = tf.io.read_file(path)
    head = tf.strings.substr(data, 0, 4)
    ok = tf.logical_or(tf.strings.substr(head, 0, 2) == b"\xff\xd8", head == b"\x89PNG")
    check = tf.debugging.Assert(ok, [BAD_IMAGE, path])
    with tf.control_dependencies([check]):
        return tf.identity(data)


def _decode(data):
    import tensorflow as tf

    image = tf.io.decode_image(data, channels=3, expand_animations=False)
    image.set_shape([None, None, 3])
    return image


def _map_naming_failures(indices, load, paths):
    """``indices.map(load)`` in parallel; an element that fails to load raises naming its file.

    A tf.data error does not say which input caused it: a truncated JPEG passes the magic-byte
    check and the decoder fails with a bare "Invalid JPEG data". So failing elements are dropped
    (``ignore_errors``) and the survivors are zipped with the expected indices; the first
    mismatch is the bad file, raised as an assertion with :data:`BAD_IMAGE` and its path, which
    :func:`data_errors` turns into an error naming it. A sentinel (index -1) after the survivors
    catches a failing last element; it is never reached otherwise, as zip stops with the
    expected indices. Nothing is skipped silently, and a good file costs one comparison.
    """
    import tensorflow as tf

    loaded = indices.map(lambda i: (tf.cast(i, tf.int64), load(i)), num_parallel_calls=tf.data.AUTOTUNE,
                         deterministic=True).ignore_errors()
    # Unknown dimensions as 0 keep the element spec (and so the batches' static shapes) as it is.
    filler = tf.nest.map_structure(lambda s: tf.zeros([d or 0 for d in s.shape], s.dtype), loaded.element_spec[1])
    loaded = loaded.concatenate(tf.data.Dataset.from_tensors((tf.constant(-1, tf.int64), filler)))

    def check(want, got):
        ok = tf.debugging.Assert(tf.equal(got[0], tf.cast(want, tf.int64)), [BAD_IMAGE, tf.gather(paths, want)])
        with tf.control_dependencies([ok]):
            return tf.nest.map_structure(tf.identity, got[1])

    return tf.data.Dataset.zip(indices, loaded).map(check)


def _random_resized_crop(image, seed, size):
    import tensorflow as tf

    shape = tf.shape(image)
    begin, crop, _ = tf.image.stateless_sample_distorted_bounding_box(
        shape,
        bounding_boxes=tf.constant([[[0.0, 0.0, 1.0, 1.0]]]),
        seed=seed,
        min_object_covered=0.0,
        aspect_ratio_range=(3 / 4, 4 / 3),
        area_range=(0.08, 1.0),
        max_attempts=10,
        use_image_if_no_bounding_boxes=True,
    )
    image = tf.slice(image, begin, crop)
    return tf.image.resize(image, size, method="bilinear")


def _center_crop(image, size, preprocessing=None):
    """Validation: resize the shorter side, then center crop ``size``.

    By default the shorter side becomes size / :data:`CROP_FRACTION`, bilinear. A card's
    ``preprocessing`` with ``crop_fraction`` gives timm's evaluation transform instead (what the
    BNext authors evaluate with): the shorter side becomes floor(size / crop_fraction), the longer
    one int(that * long / short), resampled with ``interpolation`` (``bicubic``: antialiased like
    PIL's, rounded and clipped to 0..255 like PIL's uint8 output; measured against PIL: mean 0.2,
    at most 4 levels apart), then a crop at round((h - size) / 2) as torchvision's CenterCrop.
    """
    import tensorflow as tf

    fraction = (preprocessing or {}).get("crop_fraction")
    if fraction is None:
        shape = tf.cast(tf.shape(image)[:2], tf.float32)
        target = tf.cast(max(size), tf.float32) / CROP_FRACTION
        scale = target / tf.reduce_min(shape)
        resized = tf.cast(tf.round(shape * scale), tf.int32)
        image = tf.image.resize(image, resized, method="bilinear")
        return tf.image.resize_with_crop_or_pad(image, size[0], size[1])
    method = preprocessing.get("interpolation", "bilinear")
    shape = tf.shape(image)[:2]
    short_side = int(max(size) / fraction)  # timm: floor(img_size / crop_pct)
    short, long = tf.reduce_min(shape), tf.reduce_max(shape)
    other = tf.cast(short_side * tf.cast(long, tf.float64) / tf.cast(short, tf.float64), tf.int32)
    resized = tf.where(shape[0] <= shape[1], tf.stack([short_side, other]), tf.stack([other, short_side]))
    image = tf.image.resize(tf.cast(image, tf.float32), resized, method=method, antialias=True)
    image = tf.round(tf.clip_by_value(image, 0.0, 255.0))
    top = tf.cast(tf.round(tf.cast(resized[0] - size[0], tf.float32) / 2), tf.int32)
    left = tf.cast(tf.round(tf.cast(resized[1] - size[1], tf.float32) / 2), tf.int32)
    return tf.image.crop_to_bounding_box(image, top, left, size[0], size[1])


def _imagenet(root: Path, shape, batch_size, seed, preprocessing, augment: Augment) -> Dataset:
    import tensorflow as tf

    from edgebnn.data.randaugment import randaugment

    if not root.is_dir():
        raise EdgebnnError(f"no ImageNet folder at {root}: give --data imagenet:DIR with DIR/train and DIR/val")
    train_paths, train_labels, classes = _list_split(root, "train")
    val_paths, val_labels, _ = _list_split(root, "val", classes)
    size = shape[:2]
    n = len(train_paths)
    paths, labels = tf.constant(train_paths), tf.constant(train_labels, tf.int32)

    def epoch_fn(epoch):
        epoch_seed = _epoch_seed(seed, epoch)

        def load(index):
            seeds = _element_seeds(epoch_seed, index, 3)
            path, label = tf.gather(paths, index), tf.gather(labels, index)
            image = _random_resized_crop(_decode(_read_image(path)), seeds[0], size)
            image = tf.image.stateless_random_flip_left_right(image, seeds[1])
            if augment.randaugment_ops:
                image = randaugment(
                    image, seeds[2], ops=augment.randaugment_ops,
                    magnitude=augment.randaugment_magnitude, magnitude_std=augment.randaugment_std,
                )
            return _normalize(image, preprocessing, shape[2]), label

        return _map_naming_failures(_permutation(n, epoch_seed), load, paths)

    vpaths, vlabels = tf.constant(val_paths), tf.constant(val_labels, tf.int32)

    def val_fn():
        def load(index):
            image = _center_crop(_decode(_read_image(tf.gather(vpaths, index))), size, preprocessing)
            return _normalize(image, preprocessing, shape[2]), tf.gather(vlabels, index)

        return _map_naming_failures(tf.data.Dataset.range(len(val_paths)), load, vpaths)

    return Dataset(f"imagenet:{root}", len(classes), n, len(val_paths), batch_size, seed, epoch_fn, val_fn)


# -- CIFAR python batches -----------------------------------------------------------------
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


def _cifar(kind, root: Path, shape, batch_size, seed, preprocessing) -> Dataset:
    import tensorflow as tf

    x_train, y_train, x_val, y_val = cifar_arrays(kind, root)
    classes = CIFAR_FILES[kind][4]
    if y_train.max() >= classes or y_train.min() < 0:
        raise EdgebnnError(f"labels outside 0..{classes - 1} in {root}: is it {kind}?")
    size = shape[:2]

    def finish(image):
        if tuple(size) != (32, 32):
            image = tf.image.resize(image, size, method="bilinear")
        return _normalize(image, preprocessing, shape[2])

    images, labels = tf.constant(x_train), tf.constant(y_train)

    def epoch_fn(epoch):
        epoch_seed = _epoch_seed(seed, epoch)

        def load(index):
            seeds = _element_seeds(epoch_seed, index, 2)
            image, label = tf.gather(images, index), tf.gather(labels, index)
            padded = tf.pad(image, [[4, 4], [4, 4], [0, 0]])
            image = tf.image.stateless_random_crop(padded, [32, 32, 3], seeds[0])
            image = tf.image.stateless_random_flip_left_right(image, seeds[1])
            return finish(image), label

        perm = _permutation(len(x_train), epoch_seed)
        return perm.map(load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)

    def val_fn():
        data = tf.data.Dataset.from_tensor_slices((x_val, y_val)).cache()
        return data.map(lambda x, y: (finish(x), y), num_parallel_calls=tf.data.AUTOTUNE)

    return Dataset(f"{kind}:{root}", classes, len(x_train), len(x_val), batch_size, seed, epoch_fn, val_fn)


# -- digits and synthetic -----------------------------------------------------------------
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


def _digits(shape, batch_size, seed) -> Dataset:
    import tensorflow as tf

    # The split is fixed (random_state 0) whatever the training seed, so runs compare.
    x_train, y_train, x_val, y_val = digits_arrays(shape)
    images, labels = tf.constant(x_train), tf.constant(y_train)

    def epoch_fn(epoch):
        perm = _permutation(len(x_train), _epoch_seed(seed, epoch))
        return perm.map(lambda i: (tf.gather(images, i), tf.gather(labels, i)))

    def val_fn():
        return tf.data.Dataset.from_tensor_slices((x_val, y_val)).cache()

    return Dataset("digits", 10, len(x_train), len(x_val), batch_size, seed, epoch_fn, val_fn)


def _synthetic(shape, batch_size, seed, num_classes: int = 10, size: int = 512) -> Dataset:
    import tensorflow as tf

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
