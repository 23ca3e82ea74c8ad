"""The BNext authors' released weights, through the CLI, against what their own PyTorch model gives.

The fixtures (``shared/fixtures/bnext-authors``) are checkpoints PyTorch saved from the authors'
``src/bnext.py`` at a quarter of BNext-Tiny's width, and the logits that model computes.
"""

import hashlib
import json
import os
import re

import numpy as np
import pytest
from formats import torch_save, write_jpeg

from edgebnn.cli import cli
from edgebnn.run.rundir import RunDir

CHECKPOINT = "bnext-tiny-w025-epoch511.pth.tar"
SIZE = ["--width", "0.25", "--input-size", "64"]


def _invoke(args, cwd=None):
    from click.testing import CliRunner

    before = os.getcwd()
    try:
        if cwd:
            os.chdir(cwd)
        return CliRunner().invoke(cli, args)
    finally:
        os.chdir(before)


@pytest.fixture(scope="session")
def imported(bnext_authors, tmp_path_factory):
    """The issue's command, run once in an empty folder: the run lands in runs/<checkpoint name>."""
    cwd = tmp_path_factory.mktemp("user")
    result = _invoke(["convert", "bnext-tiny", *SIZE, "--weights", str(bnext_authors / CHECKPOINT), "--to", "tflite"],
                     cwd)
    assert result.exit_code == 0, result.output
    return RunDir(cwd / "runs" / "bnext-tiny-w025-epoch511"), result.output


def _keras_logits(model, x):
    import tf_keras as keras

    return keras.Model(model.input, model.layers[-1].input)(x, training=False).numpy()


def _flatbuffer_logits(data: bytes, x):
    """The input of the flatbuffer's final SOFTMAX, read by LCE's own interpreter."""
    from larq_compute_engine.tflite.python.interpreter import Interpreter

    from edgebnn.converters.flatbuffer import operators, with_outputs

    ops = operators(data)
    assert ops[-1]["op"] == "SOFTMAX"
    marked, (position,) = with_outputs(data, [ops[-1]["input_ids"][0]])
    return Interpreter(marked, num_threads=1).predict(x)[position]


def test_the_flatbuffer_gives_the_authors_logits(imported, bnext_authors):
    run, output = imported
    fixture = np.load(bnext_authors / "bnext-tiny-w025-logits.npz")
    x = fixture["input_nchw"].transpose(0, 2, 3, 1)  # the image as it is: the model turns it itself
    keras_error = np.abs(_keras_logits(run.load_model(), x) - fixture["logits"]).max()
    tflite_error = np.abs(_flatbuffer_logits(run.tflite_path.read_bytes(), x) - fixture["logits"]).max()
    print(f"largest logit difference: Keras {keras_error:.2e}, flatbuffer {tflite_error:.2e}")
    assert keras_error < 1e-4 and tflite_error < 1e-4
    assert "LceBconv2d 31/31 binary layers" in output


def test_the_run_records_the_checkpoint_and_converts_every_binary_conv(imported, bnext_authors):
    run, _ = imported
    manifest = run.manifest
    digest = hashlib.sha256((bnext_authors / CHECKPOINT).read_bytes()).hexdigest()
    assert manifest["weights"] == CHECKPOINT
    assert manifest["weights_source"] == {"format": "pytorch", "layout": "training dict", "epoch": 511,
                                          "file": CHECKPOINT, "sha256": digest,
                                          "bytes": (bnext_authors / CHECKPOINT).stat().st_size}
    assert manifest["model_options"] == {"width": 0.25, "padding": "zero", "rotate_input": True, "stem_stride": 2}
    conversion = manifest["conversion"]
    assert conversion["bconv"] == conversion["binary_layers"] == 31 and conversion["bconv_coverage"] == 1.0
    assert conversion["op_counts"]["REVERSE_V2"] == 1  # the one turn of the input
    assert conversion["parity"]["ok"]


def test_a_checkpoint_run_is_never_taken_for_another(imported, bnext_authors, tmp_path):
    from edgebnn.errors import UsageError
    from edgebnn.run.sources import parse_source, resolve_source

    run, _ = imported
    before = run.keras_path.stat().st_mtime_ns
    again = resolve_source(parse_source(
        "bnext-tiny", width=0.25, input_size="64", weights=str(bnext_authors / CHECKPOINT)), out=str(run.path))
    assert again.path == run.path and run.keras_path.stat().st_mtime_ns == before  # reused as it is
    with pytest.raises(UsageError, match="already holds a run of bnext-tiny"):  # random weights: not this run
        resolve_source(parse_source("bnext-tiny", width=0.25, input_size="64"), out=str(run.path))
    # The same file name with other bytes is other weights.
    other = tmp_path / CHECKPOINT
    other.write_bytes((bnext_authors / CHECKPOINT).read_bytes() + b"\0")
    with pytest.raises(UsageError, match="already holds"):
        resolve_source(parse_source(
            "bnext-tiny", width=0.25, input_size="64", weights=str(other)), out=str(run.path))


@pytest.mark.parametrize("command", [["convert"], ["bench", "--device", "local"], ["evaluate", "--data", "digits"],
                                     ["train", "--data", "digits"]])
def test_an_early_checkpoint_is_refused_by_every_command(bnext_authors, tmp_path, command):
    result = _invoke([command[0], "bnext-tiny", *command[1:], *SIZE, "--weights",
                      str(bnext_authors / "bnext-tiny-w025-epoch20.pth.tar"), "--out", str(tmp_path / "run")])
    assert result.exit_code == 1, result.output
    assert "epoch 20) is an early checkpoint" in result.output and "temperature is 0.122" in result.output
    assert "not binary" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "run").exists()


@pytest.fixture(scope="session")
def authors_tensors(bnext_authors):
    """The fixture's state_dict as numpy arrays (names as saved, ``module.`` included)."""
    from edgebnn.models.torch_checkpoint import read_checkpoint

    checkpoint, archive = read_checkpoint(bnext_authors / CHECKPOINT)
    with archive:
        return {f"module.{k}": v.numpy() for k, v in checkpoint.tensors.items()}


@pytest.mark.parametrize("change, message", [
    ("drop feature.3.Attention.norm2.running_var", r"lacks feature\.3\.Attention\.norm2\.running_var \(shape \(32,\)\)"),
    ("reshape fc.bias", r"fc\.bias has shape \(999,\), bnext-tiny here needs \(1000,\)"),
    ("add feature.14.FFN.scale", r"1 tensor\(s\) bnext-tiny has no place for, e\.g\. feature\.14\.FFN\.scale"),
    ("width 0.5", r"feature\.0\.conv1\.weight has shape \(8, 3, 3, 3\), .* needs \(16, 3, 3, 3\) .*give --width 0\.25"),
])
def test_a_missing_or_misshapen_tensor_is_named(authors_tensors, tmp_path, change, message):
    tensors = dict(authors_tensors)
    verb, name = change.split(" ")
    size = list(SIZE)
    if verb == "drop":
        del tensors[f"module.{name}"]
    elif verb == "reshape":
        tensors[f"module.{name}"] = tensors[f"module.{name}"][:999]
    elif verb == "add":
        tensors[f"module.{name}"] = np.ones((1, 8, 1, 1), "float32")
    else:
        size[1] = name
    # a bare state_dict this time (the other layout the authors' checkpoints come in)
    path = torch_save(tmp_path / "changed.pth", tensors)
    result = _invoke(["convert", "bnext-tiny", *size, "--weights", str(path), "--out", str(tmp_path / "run")])
    assert result.exit_code == 1, result.output
    assert result.output.startswith("error: changed.pth") and re.search(message, result.output), result.output
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("args, message", [
    (["bnext-tiny", *SIZE, "--model-arg", "padding=one"], "need padding='zero'"),
    (["bnext-tiny", "--width", "0.25", "--input-size", "100"], "multiple of 32"),
    (["bnext-18", "--input-size", "64"], "imports into bnext-tiny, bnext-small, bnext-middle, bnext-large"),
])
def test_what_contradicts_the_authors_network_is_a_usage_error(bnext_authors, tmp_path, args, message):
    result = _invoke(["convert", *args, "--weights", str(bnext_authors / CHECKPOINT), "--out", str(tmp_path / "r")])
    assert result.exit_code == 2 and message in result.output, result.output


def test_a_pickle_that_runs_code_is_refused_by_the_command(tmp_path):
    from formats import pickle_archive

    class RunsCode:
        def __reduce__(self):
            return os.system, (f"touch {tmp_path / 'ran'}",)

    path = pickle_archive(tmp_path / "evil.pth.tar", {"epoch": 1, "state_dict": {"fc.weight": RunsCode()}})
    result = _invoke(["convert", "bnext-tiny", *SIZE, "--weights", str(path), "--out", str(tmp_path / "run")])
    assert result.exit_code == 1 and "the global posix.system" in result.output and "Nothing was run" in result.output
    assert not (tmp_path / "ran").exists() and not (tmp_path / "run").exists()


def _authors_eval_identity(pixels, size=64):
    """The authors' transform where it resamples nothing: an image whose shorter side is already
    floor(64 / 0.95) = 67 is only cropped (torchvision's CenterCrop offsets) and normalized."""
    h, w = pixels.shape[:2]
    top, left = int(round((h - size) / 2.0)), int(round((w - size) / 2.0))
    crop = pixels[top:top + size, left:left + size].astype("float64")
    return ((crop / 255 - np.array([0.485, 0.456, 0.406])) / np.array([0.229, 0.224, 0.225])).astype("float32")


@pytest.fixture(scope="module")
def imagenet_1000_train(tmp_path_factory):
    """An ImageNet ``train/`` of 1000 class folders (one 4x4 image each): the class list."""
    root = tmp_path_factory.mktemp("imagenet") / "train"
    rng = np.random.default_rng(7)
    for c in range(1000):
        write_jpeg(root / f"n{c:04d}" / "a.JPEG", rng, size=(4, 4))
    return root


@pytest.mark.slow  # 150 s: tracing the training step of a 600-layer model
def test_train_starts_from_the_authors_weights(imported, bnext_authors, imagenet_1000_train, tmp_path):
    """``train --weights`` starts from the checkpoint: after an epoch at a learning rate of 1e-12
    the binary kernels keep their signs and every other weight (BN's running statistics aside) its
    value, and the run records where they came from."""
    root = tmp_path / "imagenet"
    (root / "val" / "n0000").mkdir(parents=True)
    write_jpeg(root / "val" / "n0000" / "v.JPEG", np.random.default_rng(1), size=(70, 80))
    (root / "train").symlink_to(imagenet_1000_train)
    result = _invoke(["train", "bnext-tiny", *SIZE, "--weights", str(bnext_authors / CHECKPOINT), "--data",
                      f"imagenet:{root}", "--epochs", "1", "--batch-size", "500", "--lr", "1e-12", "--set",
                      "randaugment_ops=0", "--set", "warmup_epochs=0", "--out", str(tmp_path / "run"), "--quiet"])
    assert result.exit_code == 0, result.output
    run = RunDir(tmp_path / "run")
    assert run.manifest["weights_source"]["sha256"] == imported[0].manifest["weights_source"]["sha256"]
    assert run.manifest["model_options"]["rotate_input"] is True
    trained, start = run.load_model(), imported[0].load_model()
    moving = [w for w in trained.weights if "moving_" in w.name]
    assert moving and any(not np.array_equal(a.numpy(), b.numpy())
                          for a, b in zip(moving, [w for w in start.weights if "moving_" in w.name]))
    kernels = {id(l.kernel) for l in trained.layers if type(l).__name__ == "QuantConv2D"}
    for a, b in zip(trained.weights, start.weights):
        if id(a) in kernels:  # latent weights beyond the 1.5 clip are clipped by the first step
            np.testing.assert_array_equal(np.sign(a.numpy()), np.sign(b.numpy()), err_msg=a.name)
        elif "moving_" not in a.name:
            np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-6, atol=1e-9, err_msg=a.name)


def _bilinear_0875(pixels, size=64):
    """edgebnn's default validation transform, redone here to pick the images (shorter side to
    size / 0.875, bilinear, center crop)."""
    import tensorflow as tf

    shape = np.array(pixels.shape[:2], "float64")
    resized = np.round(shape * (size / 0.875) / shape.min()).astype(int)
    x = tf.image.resize(pixels[None].astype("float32"), resized, method="bilinear")
    x = tf.image.resize_with_crop_or_pad(x, size, size).numpy()[0]
    return ((x / 255 - np.array([0.485, 0.456, 0.406])) / np.array([0.229, 0.224, 0.225])).astype("float32")


def test_evaluate_on_an_imagenet_folder_uses_the_authors_transform(imported, bnext_authors, imagenet_1000_train,
                                                                   tmp_path):
    """Each validation image is filed under the class the imported model predicts for it under the
    authors' transform, so evaluating with that transform scores 100 %. Three of the images are
    ones the model classifies otherwise under edgebnn's own transform (crop 0.875, bilinear), so a
    command that used it would score less (checked on the same folder)."""
    import tensorflow as tf

    from edgebnn.data.pipelines import load_dataset
    from edgebnn.models.zoo import IMAGENET_NORMALIZATION

    model = imported[0].load_model()
    rng = np.random.default_rng(5)
    root = tmp_path / "imagenet"
    telling, plain = [], []
    while len(telling) < 3 or len(plain) < 5:
        shape = (67, int(rng.integers(67, 140))) if rng.integers(2) else (int(rng.integers(67, 140)), 67)
        low = tf.image.resize(rng.uniform(0, 255, (1, 4, 5, 3)), shape, method="bicubic").numpy()[0]
        pixels = np.clip(low + rng.normal(0, 25, (*shape, 3)), 0, 255).astype(np.uint8)
        logits = _keras_logits(model, np.stack([_authors_eval_identity(pixels), _bilinear_0875(pixels)]))
        top2 = np.sort(logits[0])[-2:]
        if top2[1] - top2[0] < 0.05:  # a near-tie, which any rounding could swap
            continue
        label = int(logits[0].argmax())
        (telling if label != logits[1].argmax() else plain).append((pixels, label))
    chosen = telling[:3] + plain[:5]
    for i, (pixels, label) in enumerate(chosen):
        path = root / "val" / f"n{label:04d}" / f"{i}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(tf.io.encode_png(pixels).numpy())
    (root / "train").symlink_to(imagenet_1000_train)
    result = _invoke(["evaluate", "bnext-tiny", *SIZE, "--weights", str(bnext_authors / CHECKPOINT),
                      "--data", f"imagenet:{root}", "--out", str(tmp_path / "run"), "--json"])
    assert result.exit_code == 0, result.output
    evaluation = json.loads(result.output)
    assert (evaluation["top1"], evaluation["images"]) == (1.0, 8)
    # edgebnn's own validation transform on the same folder: other crops, other answers.
    data = load_dataset(f"imagenet:{root}", input_shape=(64, 64, 3), batch_size=8, preprocessing=IMAGENET_NORMALIZATION)
    (x, y), = [(x.numpy(), y.numpy()) for x, y in data.val]
    assert np.mean(_keras_logits(model, x).argmax(-1) == y) <= 5 / 8
