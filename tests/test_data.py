"""The data sources, on small files written in the real formats (JPEG folders, CIFAR pickles)."""

import pickle

import numpy as np
import pytest
import tensorflow as tf
from formats import cifar10_folder, cifar_batch, imagenet_folder, write_jpeg

from edgebnn.data.pipelines import Augment, data_errors, load_dataset
from edgebnn.data.randaugment import randaugment
from edgebnn.data.spec import parse_spec
from edgebnn.errors import EdgebnnError, UsageError

NORM = {"mean": [123.675, 116.28, 103.53], "std": [58.395, 57.12, 57.375]}


def _batches(data):
    return [(x.numpy(), y.numpy()) for x, y in data]


def test_imagenet_folder_pipelines(tmp_path):
    root = imagenet_folder(tmp_path / "imagenet")
    data = load_dataset(f"imagenet:{root}", input_shape=(24, 24, 3), batch_size=4, preprocessing=NORM)
    assert (data.num_classes, data.train_size, data.val_size) == (3, 13, 6)
    assert data.steps_per_epoch == 4
    train = _batches(data.train)
    assert [x.shape for x, _ in train] == [(4, 24, 24, 3)] * 3 + [(1, 24, 24, 3)]
    labels = np.concatenate([y for _, y in train])
    assert sorted(labels.tolist()) == [0] * 5 + [1] * 4 + [2] * 4  # every image once per epoch
    # Normalized by the card's mean/std: pixels 0..255 map to about -2.1..2.6.
    x = np.concatenate([x for x, _ in train])
    assert -2.2 < x.min() < -1.0 and 1.0 < x.max() < 2.7
    val = _batches(data.val)
    assert sum(len(y) for _, y in val) == 6 and val[0][0].shape[1:] == (24, 24, 3)


def test_training_batches_are_a_function_of_seed_and_epoch(tmp_path):
    root = imagenet_folder(tmp_path / "imagenet")
    load = lambda seed: load_dataset(f"imagenet:{root}", input_shape=(16, 16, 3), batch_size=4, seed=seed)  # noqa: E731
    a, b = load(0), load(0)
    epochs_a = _batches(a.train_epochs(0, 2))
    assert all(np.array_equal(p[0], q[0]) for p, q in zip(epochs_a, _batches(b.train_epochs(0, 2))))
    # Epoch 1 differs from epoch 0 (new order, new crops); resuming at batch 5 sees the same tail.
    assert not np.array_equal(epochs_a[0][0], epochs_a[4][0])
    tail = _batches(b.train_epochs(1, 2, skip_batches=1))
    assert all(np.array_equal(p[0], q[0]) for p, q in zip(epochs_a[5:], tail))
    assert not np.array_equal(_batches(load(1).train)[0][0], epochs_a[0][0])


def test_imagenet_randaugment_and_grayscale(tmp_path):
    root = imagenet_folder(tmp_path / "imagenet")
    data = load_dataset(f"imagenet:{root}", input_shape=(20, 20, 1), batch_size=13,
                        augment=Augment(randaugment_ops=2, randaugment_magnitude=9, randaugment_std=0.5))
    (x, y), = _batches(data.train)
    assert x.shape == (13, 20, 20, 1) and np.isfinite(x).all() and -1.0 <= x.min() and x.max() <= 1.0


def test_randaugment_keeps_shape_range_and_is_seeded():
    image = tf.cast(tf.random.stateless_uniform([32, 32, 3], [1, 2], 0, 256, tf.int32), tf.float32)
    outs = [randaugment(image, tf.constant([s, 0], tf.int64), ops=2, magnitude=9).numpy() for s in range(12)]
    assert all(o.shape == (32, 32, 3) and 0 <= o.min() and o.max() <= 255 for o in outs)
    assert sum(not np.allclose(o, image.numpy()) for o in outs) >= 6  # most draws change the image
    again = randaugment(image, tf.constant([3, 0], tf.int64), ops=2, magnitude=9).numpy()
    assert np.array_equal(again, outs[3])


def test_empty_class_folder_is_named(tmp_path):
    root = imagenet_folder(tmp_path / "imagenet")
    (root / "train" / "n04").mkdir()
    with pytest.raises(EdgebnnError, match=r"empty class folder .*train/n04"):
        load_dataset(f"imagenet:{root}", input_shape=(16, 16, 3), batch_size=4)


def test_missing_split_is_named(tmp_path):
    root = tmp_path / "imagenet"
    write_jpeg(root / "train" / "n01" / "a.JPEG", np.random.default_rng(0))
    with pytest.raises(EdgebnnError, match=r"missing split .*imagenet/val"):
        load_dataset(f"imagenet:{root}", input_shape=(16, 16, 3), batch_size=4)


def test_val_class_unknown_to_train_is_named(tmp_path):
    root = imagenet_folder(tmp_path / "imagenet")
    write_jpeg(root / "val" / "n99" / "x.JPEG", np.random.default_rng(0))
    with pytest.raises(EdgebnnError, match=r"val/n99 is not in the training classes"):
        load_dataset(f"imagenet:{root}", input_shape=(16, 16, 3), batch_size=4)


def test_corrupt_jpeg_is_named(tmp_path):
    root = imagenet_folder(tmp_path / "imagenet")
    bad = root / "train" / "n02" / "broken.JPEG"
    bad.write_bytes(b"this is not an image at all")
    data = load_dataset(f"imagenet:{root}", input_shape=(16, 16, 3), batch_size=4)
    with pytest.raises(EdgebnnError, match=r"corrupt or unsupported image .*n02/broken.JPEG"):
        with data_errors():
            _batches(data.train)



@pytest.mark.parametrize("split, name", [("train", "n02/n02_1.JPEG"), ("val", "n03/val_n03_1.JPEG")])
def test_truncated_jpeg_is_named(tmp_path, split, name):
    # Half a real JPEG: it starts like one (passes the magic-byte check), the decoder fails.
    # In val it is the last file: the failure of the last element is caught too.
    root = imagenet_folder(tmp_path / "imagenet")
    bad = root / split / name
    bad.write_bytes(bad.read_bytes()[: bad.stat().st_size // 2])
    data = load_dataset(f"imagenet:{root}", input_shape=(16, 16, 3), batch_size=4)
    with pytest.raises(EdgebnnError, match=rf"corrupt or unsupported image .*{name}: remove or replace it"):
        with data_errors():
            _batches(data.train if split == "train" else data.val)

def test_bad_specs():
    with pytest.raises(UsageError, match="unknown dataset 'mnist'"):
        parse_spec("mnist")
    with pytest.raises(UsageError, match="needs its folder"):
        parse_spec("imagenet")
    with pytest.raises(EdgebnnError, match="no ImageNet folder at /nonexistent"):
        load_dataset("imagenet:/nonexistent", input_shape=(16, 16, 3), batch_size=4)


def test_cifar10_pickle_batches(tmp_path):
    cifar10_folder(tmp_path)
    data = load_dataset(f"cifar10:{tmp_path}", input_shape=(32, 32, 3), batch_size=8)
    assert (data.num_classes, data.train_size, data.val_size) == (10, 30, 5)
    train = _batches(data.train)
    assert train[0][0].shape == (8, 32, 32, 3) and sum(len(y) for _, y in train) == 30
    # Random crop with 4-pixel padding: zero padding (-1 after scaling) shows up at some borders.
    x = np.concatenate([x for x, _ in train])
    assert np.isclose(x, -1.0).any() and -1.0 <= x.min() and x.max() <= 1.0
    (xv, yv), = _batches(data.val)
    # Validation is unaugmented: the first image is the stored pixels, scaled.
    with open(tmp_path / "cifar-10-batches-py" / "test_batch", "rb") as f:
        raw = pickle.load(f, encoding="bytes")[b"data"][0].reshape(3, 32, 32).transpose(1, 2, 0)
    assert np.allclose(xv[0], raw / 127.5 - 1.0, atol=1e-5)


def test_cifar100_resized_to_the_model_input(tmp_path):
    folder = tmp_path / "cifar-100-python"
    cifar_batch(folder / "train", 7, b"fine_labels", 100, 1)
    cifar_batch(folder / "test", 3, b"fine_labels", 100, 2)
    data = load_dataset(f"cifar100:{folder}", input_shape=(40, 40, 3), batch_size=4)
    assert data.num_classes == 100
    assert _batches(data.train)[0][0].shape == (4, 40, 40, 3)


def test_wrong_pickle_and_missing_batch_are_named(tmp_path):
    folder = cifar10_folder(tmp_path)
    with open(folder / "data_batch_3", "wb") as f:
        pickle.dump({"something": "else"}, f)
    with pytest.raises(EdgebnnError, match=r"data_batch_3 is not a CIFAR python batch"):
        load_dataset(f"cifar10:{tmp_path}", input_shape=(32, 32, 3), batch_size=8)
    (folder / "data_batch_3").write_bytes(b"garbage")
    with pytest.raises(EdgebnnError, match=r"data_batch_3 is not a CIFAR python batch"):
        load_dataset(f"cifar10:{tmp_path}", input_shape=(32, 32, 3), batch_size=8)
    (folder / "data_batch_3").unlink()
    with pytest.raises(EdgebnnError, match=r"missing CIFAR batch .*data_batch_3"):
        load_dataset(f"cifar10:{tmp_path}", input_shape=(32, 32, 3), batch_size=8)


def test_synthetic_has_full_batches():
    data = load_dataset("synthetic", input_shape=(16, 16, 3), batch_size=32)
    batches = _batches(data.train)
    assert len(batches) == data.steps_per_epoch == 16 and all(len(y) == 32 for _, y in batches)


def _timm_eval(pixels, size, crop_pct=0.95):
    """timm's evaluation transform, as the BNext authors run it: PIL bicubic resize of the shorter
    side to floor(size / crop_pct), torchvision's CenterCrop, ImageNet mean/std."""
    from PIL import Image

    h, w = pixels.shape[:2]
    short = int(size / crop_pct)
    new = (short, int(short * w / h)) if h <= w else (int(short * h / w), short)
    resized = np.asarray(Image.fromarray(pixels).resize((new[1], new[0]), Image.BICUBIC), "float32")
    top, left = int(round((new[0] - size) / 2.0)), int(round((new[1] - size) / 2.0))
    crop = resized[top:top + size, left:left + size]
    return (crop / 255 - np.array([0.485, 0.456, 0.406])) / np.array([0.229, 0.224, 0.225])


def test_the_bnext_authors_eval_transform_is_timm_s(tmp_path):
    from edgebnn.registry import get_card

    preprocessing = get_card("bnext-tiny").preprocessing
    assert (preprocessing["crop_fraction"], preprocessing["interpolation"]) == (0.95, "bicubic")
    rng = np.random.default_rng(3)
    images = []
    for i, shape in enumerate([(300, 400), (130, 90), (50, 61), (224, 224)]):  # down- and upsampled
        low = tf.image.resize(rng.uniform(0, 255, (1, 5, 6, 3)), shape, method="bicubic").numpy()[0]
        pixels = np.clip(low + rng.normal(0, 15, (*shape, 3)), 0, 255).astype(np.uint8)
        path = tmp_path / "imagenet" / "val" / "n01" / f"{i}.png"  # lossless: the decoders cannot differ
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(tf.io.encode_png(pixels).numpy())
        images.append(pixels)
    write_jpeg(tmp_path / "imagenet" / "train" / "n01" / "a.JPEG", rng)
    data = load_dataset(f"imagenet:{tmp_path / 'imagenet'}", input_shape=(64, 64, 3), batch_size=8,
                        preprocessing=preprocessing)
    (x, _), = _batches(data.val)
    expected = np.stack([_timm_eval(p, 64) for p in images])
    # TensorFlow's antialiased bicubic is PIL's kernel: a few levels apart at most (0.07 = 4 levels).
    assert np.abs(x - expected).max() < 0.07 and np.abs(x - expected).mean() < 0.005
    (default, _), = _batches(load_dataset(f"imagenet:{tmp_path / 'imagenet'}", input_shape=(64, 64, 3),
                                          batch_size=8, preprocessing=NORM).val)
    assert np.abs(default - expected).mean() > 0.1  # edgebnn's own transform crops another region
