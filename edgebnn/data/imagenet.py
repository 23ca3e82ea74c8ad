"""``imagenet:DIR``: ``DIR/train/<class>/*`` and ``DIR/val/<class>/*`` (JPEG, PNG).

Parallel decoding, random-resized crop + flip (+ RandAugment when the recipe asks) for
training, resize + center crop for validation. A card's ``crop_fraction`` and
``interpolation`` choose timm's validation resize and crop (see ``_center_crop``).
"""

from __future__ import annotations

import os
from pathlib import Path

import tensorflow as tf

from edgebnn.data.dataset import BAD_IMAGE, Augment, Dataset, element_seeds, epoch_seed, normalize, permutation
from edgebnn.data.randaugment import randaugment
from edgebnn.data.spec import DataSpec
from edgebnn.errors import EdgebnnError

IMAGE_SUFFIXES = (".jpeg", ".jpg", ".png")
CROP_FRACTION = 0.875  # validation: resize the shorter side to size / 0.875, center crop


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
    data = tf.io.read_file(path)
    head = tf.strings.substr(data, 0, 4)
    ok = tf.logical_or(tf.strings.substr(head, 0, 2) == b"\xff\xd8", head == b"\x89PNG")
    check = tf.debugging.Assert(ok, [BAD_IMAGE, path])
    with tf.control_dependencies([check]):
        return tf.identity(data)


def _decode(data):
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


def load(spec: DataSpec, shape, batch_size: int, seed: int, preprocessing, augment: Augment) -> Dataset:
    """The ImageNet folder ``spec.path`` at ``shape``."""
    root = Path(spec.path)
    if not root.is_dir():
        raise EdgebnnError(f"no ImageNet folder at {root}: give --data imagenet:DIR with DIR/train and DIR/val")
    train_paths, train_labels, classes = _list_split(root, "train")
    val_paths, val_labels, _ = _list_split(root, "val", classes)
    size = shape[:2]
    n = len(train_paths)
    paths, labels = tf.constant(train_paths), tf.constant(train_labels, tf.int32)

    def epoch_fn(epoch):
        this_epoch = epoch_seed(seed, epoch)

        def example(index):
            seeds = element_seeds(this_epoch, index, 3)
            path, label = tf.gather(paths, index), tf.gather(labels, index)
            image = _random_resized_crop(_decode(_read_image(path)), seeds[0], size)
            image = tf.image.stateless_random_flip_left_right(image, seeds[1])
            if augment.randaugment_ops:
                image = randaugment(
                    image, seeds[2], ops=augment.randaugment_ops,
                    magnitude=augment.randaugment_magnitude, magnitude_std=augment.randaugment_std,
                )
            return normalize(image, preprocessing, shape[2]), label

        return _map_naming_failures(permutation(n, this_epoch), example, paths)

    vpaths, vlabels = tf.constant(val_paths), tf.constant(val_labels, tf.int32)

    def val_fn():
        def example(index):
            image = _center_crop(_decode(_read_image(tf.gather(vpaths, index))), size, preprocessing)
            return normalize(image, preprocessing, shape[2]), tf.gather(vlabels, index)

        return _map_naming_failures(tf.data.Dataset.range(len(val_paths)), example, vpaths)

    return Dataset(f"imagenet:{root}", len(classes), n, len(val_paths), batch_size, seed, epoch_fn, val_fn)
