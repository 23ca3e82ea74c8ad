"""Bring your own: model files, flatbuffers, custom classes, architectures, sizes and weights,
each through the command a user runs."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from edgebnn.cli import cli
from edgebnn.run.rundir import RunDir


def _ok(result):
    assert result.exit_code == 0, result.output
    return result


def _fails(result, code, *fragments):
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output and "unexpected" not in result.output, result.output
    for fragment in fragments:
        assert fragment in result.output, result.output


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """Models no one here designed, saved in their own formats by Keras and LCE."""
    import larq_compute_engine as lce
    import larq_zoo as lqz
    import tf_keras as keras

    root = tmp_path_factory.mktemp("byo")
    keras.utils.set_random_seed(0)
    quicknet = lqz.sota.QuickNetSmall(input_shape=(32, 32, 3), weights=None, num_classes=10)
    quicknet.save(root / "quicknet_small.keras")
    (root / "direct.tflite").write_bytes(lce.convert_keras_model(quicknet))
    lqz.literature.BiRealNet(input_shape=(96, 96, 3), weights=None, num_classes=10).save(root / "birealnet.h5")
    keras.applications.MobileNetV2(input_shape=(32, 32, 3), alpha=0.35, weights=None, classes=10).save(
        root / "mobilenet.keras")
    return root


def test_a_larq_zoo_model_saved_as_keras_converts_from_the_file(files, tmp_path, cli_runner):
    out = tmp_path / "qn"
    _ok(cli_runner.invoke(cli, ["convert", str(files / "quicknet_small.keras"), "--out", str(out)]))
    manifest = RunDir(out).manifest
    source = manifest["source"]
    assert source["path"] == str(files / "quicknet_small.keras") and source["format"] == "keras"
    assert source["keras_version"] == "2.16.0" and len(source["sha256"]) == 64
    conversion = manifest["conversion"]
    assert conversion["bconv_coverage"] == 1.0 and conversion["parity"]["ok"] and conversion["size"]["ratio"] < 1.5
    assert manifest["weights"] == "file" and (out / "model.keras").exists()
    _ok(cli_runner.invoke(cli, ["bench", str(out), "--runs", "3", "--min-secs", "0"]))
    _fails(cli_runner.invoke(cli, ["train", "--resume", str(out)]), 2, "train --resume is for runs made by")


def test_a_larq_zoo_model_saved_as_h5_converts_from_the_file(files, tmp_path, cli_runner):
    out = tmp_path / "bireal"
    _ok(cli_runner.invoke(cli, ["convert", str(files / "birealnet.h5"), "--out", str(out)]))
    manifest = RunDir(out).manifest
    assert manifest["source"]["format"] == "h5" and manifest["source"]["keras_version"] == "2.16.0"
    assert manifest["conversion"]["bconv"] == manifest["conversion"]["binary_layers"] > 0


def test_a_keras_applications_float_model_to_its_float_flatbuffer_then_benched(files, tmp_path, cli_runner):
    out = tmp_path / "mobilenet"
    _ok(cli_runner.invoke(cli, ["convert", str(files / "mobilenet.keras"), "--to", "tflite-float", "--out", str(out)]))
    assert RunDir(out).manifest["conversion"]["tflite-float"]["parity"]["ok"]
    result = _ok(cli_runner.invoke(cli, ["bench", str(out / "model-float.tflite"), "--out", str(tmp_path / "mf"),
                                         "--runs", "3", "--min-secs", "0", "--json"]))
    assert json.loads(result.stdout)["results"][0]["ok"]


def test_a_flatbuffer_written_by_lce_is_benched_and_reported(files, tmp_path, cli_runner):
    out = tmp_path / "direct"
    result = _ok(cli_runner.invoke(cli, ["bench", str(files / "direct.tflite"), "--out", str(out), "--runs", "3",
                                         "--min-secs", "0", "--json"]))
    assert json.loads(result.stdout)["results"][0]["ok"]
    conversion = RunDir(out).manifest["conversion"]
    # the coverage a conversion from Keras gives these bytes (every binary conv an LceBconv2d)
    assert conversion["coverage_from"] == "ops" and conversion["bconv"] > 0 and conversion["bconv_coverage"] == 1.0
    report = _ok(cli_runner.invoke(cli, ["report", str(out)])).output
    assert f"{conversion['bconv']}/{conversion['binary_ops']} (100%)" in report and "direct" in report
    # the same file again reuses the run; another file of that name is refused
    _ok(cli_runner.invoke(cli, ["bench", str(files / "direct.tflite"), "--out", str(out), "--runs", "3", "--min-secs", "0"]))
    other = tmp_path / "x" / "direct.tflite"
    other.parent.mkdir()
    other.write_bytes((files / "direct.tflite").read_bytes() + b"\0" * 8)
    _fails(cli_runner.invoke(cli, ["bench", str(other), "--out", str(out)]), 2, "choose another --out")


CUSTOM = '''
import tensorflow as tf
import tf_keras as keras


class Doubler(keras.layers.Layer):
    """Nobody registered this class: only the user's module defines it."""

    def call(self, x):
        return 2.0 * x
'''


def test_a_custom_layer_loads_when_its_module_is_named(tmp_path, cli_runner):
    import importlib.util

    import larq as lq
    import tf_keras as keras

    module = tmp_path / "my_layers.py"
    module.write_text(CUSTOM)
    spec = importlib.util.spec_from_file_location("my_layers", module)
    my_layers = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(my_layers)
    inputs = keras.Input((16, 16, 3))
    x = lq.layers.QuantConv2D(32, 3, padding="same", pad_values=1.0, input_quantizer="ste_sign",
                              kernel_quantizer="ste_sign", kernel_constraint="weight_clip", use_bias=False)(inputs)
    x = my_layers.Doubler()(keras.layers.BatchNormalization()(x))
    model = keras.Model(inputs, keras.layers.Dense(4)(keras.layers.GlobalAveragePooling2D()(x)))
    model.save(tmp_path / "custom.keras")
    out = tmp_path / "custom"
    _fails(cli_runner.invoke(cli, ["convert", str(tmp_path / "custom.keras"), "--out", str(out)]), 2,
           "'Doubler'", "--custom-objects")
    assert not out.exists()
    _ok(cli_runner.invoke(cli, ["convert", str(tmp_path / "custom.keras"), "--out", str(out),
                                "--custom-objects", str(module)]))
    assert RunDir(out).manifest["conversion"]["bconv"] == 1
    # Later stages load it the same way, once the user names the module again (or trusts the run).
    _fails(cli_runner.invoke(cli, ["convert", str(out), "--to", "keras"]), 2, "my_layers.py", "--trust-code")
    _ok(cli_runner.invoke(cli, ["convert", str(out), "--to", "keras", "--custom-objects", str(module)]))


ARCH = '''
import larq as lq
import tf_keras as keras

from edgebnn.registry import register_model


@register_model("{name}", family="user", paper="the user's own", input_shape=(16, 16, 1), num_classes=10)
def build(*, input_shape, num_classes, width: float = 1.0, filters: int = 32):
    inputs = keras.Input(input_shape)
    x = keras.layers.Conv2D(32, 3, padding="same")(inputs)
    x = lq.layers.QuantConv2D(int(filters * width), 3, padding="same", pad_values=1.0, input_quantizer="ste_sign",
                              kernel_quantizer="ste_sign", kernel_constraint="weight_clip", use_bias=False)(x)
    x = keras.layers.GlobalAveragePooling2D()(keras.layers.BatchNormalization()(x))
    return keras.Model(inputs, keras.layers.Activation("softmax")(keras.layers.Dense(num_classes)(x)))
'''


def test_an_architecture_from_a_model_file(tmp_path, cli_runner):
    arch = tmp_path / "arch.py"
    arch.write_text(ARCH.format(name="my-tiny"))
    listing = _ok(cli_runner.invoke(cli, ["models", "my-tiny", "--model-file", str(arch)])).output
    assert "origin" in listing and f"file {arch}" in listing and "filters" in listing
    out = tmp_path / "mine"
    _ok(cli_runner.invoke(cli, ["convert", "my-tiny", "--model-file", str(arch), "--out", str(out),
                                "--model-arg", "filters=64"]))
    manifest = RunDir(out).manifest
    assert manifest["model_options"] == {"filters": 64} and manifest["conversion"]["bconv"] == 1
    _fails(cli_runner.invoke(cli, ["convert", "my-tiny", "--model-file", str(arch), "--model-arg", "depth=3",
                                   "--out", str(tmp_path / "bad")]), 2, "has no option 'depth'", "filters=32")


def test_an_entry_point_plugin_is_listed_and_used_and_a_broken_one_named(tmp_path):
    package = tmp_path / "plugin"
    (package / "edgebnn_test_plugin").mkdir(parents=True)
    (package / "edgebnn_test_plugin" / "__init__.py").write_text(ARCH.format(name="plugin-tiny"))
    (package / "edgebnn_test_plugin" / "broken.py").write_text("raise ImportError('this plugin is broken')\n")
    (package / "pyproject.toml").write_text(textwrap.dedent('''
        [build-system]
        requires = ["setuptools"]
        build-backend = "setuptools.build_meta"
        [project]
        name = "edgebnn-test-plugin"
        version = "0.0.1"
        [project.entry-points."edgebnn.models"]
        tiny = "edgebnn_test_plugin"
        broken = "edgebnn_test_plugin.broken"
        [tool.setuptools]
        packages = ["edgebnn_test_plugin"]
    '''))
    pip = [sys.executable, "-m", "pip", "-q"]
    subprocess.run([*pip, "install", "--no-deps", "--no-build-isolation", "--no-index", str(package)], check=True)
    try:
        edgebnn = str(Path(sys.executable).with_name("edgebnn"))
        listing = subprocess.run([edgebnn, "models", "plugin-*", "--json"], capture_output=True, text=True, timeout=300)
        assert listing.returncode == 0, listing.stderr
        assert [(r["name"], r["origin"]) for r in json.loads(listing.stdout)] == [
            ("plugin-tiny", "plugin edgebnn-test-plugin")]
        assert "broken" in listing.stderr and "this plugin is broken" in listing.stderr
        done = subprocess.run([edgebnn, "convert", "plugin-tiny", "--out", str(tmp_path / "p")], capture_output=True,
                              text=True, timeout=300)
        assert done.returncode == 0, done.stderr
    finally:
        subprocess.run([*pip, "uninstall", "-y", "edgebnn-test-plugin"], check=True)


def test_a_paper_model_trained_at_32x32_and_width_0_25(tmp_path, cli_runner):
    out = tmp_path / "sabnn"
    _ok(cli_runner.invoke(cli, ["train", "sabnn-r18", "--data", "digits", "--input-size", "32", "--width", "0.25",
                                "--epochs", "1", "--batch-size", "64", "--out", str(out), "--quiet"]))
    manifest = RunDir(out).manifest
    assert manifest["input_shape"] == [32, 32, 3] and manifest["model_options"] == {"width": 0.25}
    assert RunDir(out).load_model().input_shape == (None, 32, 32, 3)
    _ok(cli_runner.invoke(cli, ["train", "--resume", str(out), "--epochs", "2", "--quiet"]))  # resumes at that size
    assert RunDir(out).manifest["metrics"]["epochs"] == 2
    _fails(cli_runner.invoke(cli, ["train", "sabnn-r18", "--model-arg", "colour=red", "--out", str(tmp_path / "x")]),
           2, "sabnn-r18 has no option 'colour'", "width=1.0")
    _fails(cli_runner.invoke(cli, ["train", "sabnn-r18", "--input-size", "3x", "--out", str(tmp_path / "x")]),
           2, "bad --input-size '3x'")


def test_weights_from_a_file_and_larq_zoo_s_own(tmp_path, cli_runner):
    from edgebnn.registry import create_model

    model = create_model("bireal-tiny")
    weights = tmp_path / "tiny.weights.h5"
    model.save_weights(weights)
    result = _ok(cli_runner.invoke(cli, ["evaluate", "bireal-tiny", "--weights", str(weights), "--data", "digits",
                                         "--out", str(tmp_path / "w"), "--json"]))
    assert 0 <= json.loads(result.stdout)["top1"] <= 1 and RunDir(tmp_path / "w").manifest["weights"] == str(weights)
    loaded = RunDir(tmp_path / "w").load_model()
    assert all(np.array_equal(a, b) for a, b in zip(loaded.get_weights(), model.get_weights()))
    _fails(cli_runner.invoke(cli, ["evaluate", "bireal-tiny", "--data", "digits"]), 2, "--weights")
    _fails(cli_runner.invoke(cli, ["convert", "bireal-tiny", "--weights", "imagenet", "--out", str(tmp_path / "i")]),
           2, "for the Larq Zoo models")
    _fails(cli_runner.invoke(cli, ["convert", "bireal-tiny", "--weights", str(tmp_path / "none.h5"),
                                   "--out", str(tmp_path / "n")]), 2, "no weights file")


def test_bad_files_are_refused_naming_the_file(tmp_path, cli_runner):
    import tf_keras as keras

    garbage = tmp_path / "garbage.keras"
    garbage.write_bytes(b"PK\x03\x04 not really a zip")
    _fails(cli_runner.invoke(cli, ["convert", str(garbage), "--out", str(tmp_path / "g")]), 2,
           f"{garbage} is not a Keras model")
    fake = tmp_path / "fake.tflite"
    fake.write_bytes(b"\x1c\x00\x00\x00TFL3" + b"\xff" * 64)
    _fails(cli_runner.invoke(cli, ["bench", str(fake), "--out", str(tmp_path / "f")]), 1, "damaged TFLite flatbuffer")
    assert not (tmp_path / "f").exists()
    inputs = keras.Input((None, None, 3))
    dynamic = keras.Model(inputs, keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(8, 3)(inputs)))
    dynamic.save(tmp_path / "dynamic.keras")
    _fails(cli_runner.invoke(cli, ["convert", str(tmp_path / "dynamic.keras"), "--out", str(tmp_path / "d")]), 2,
           "dynamic input shape", "--input-size")
    _ok(cli_runner.invoke(cli, ["convert", str(tmp_path / "dynamic.keras"), "--input-size", "24",
                                "--out", str(tmp_path / "d")]))
    assert RunDir(tmp_path / "d").manifest["input_shape"] == [24, 24, 3]
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        inputs = keras.Input((8, 8, 3))
        half = keras.Model(inputs, keras.layers.Dense(2)(keras.layers.Flatten()(inputs)))
    finally:
        keras.mixed_precision.set_global_policy("float32")
    half.save(tmp_path / "half.keras")
    _fails(cli_runner.invoke(cli, ["convert", str(tmp_path / "half.keras"), "--out", str(tmp_path / "h")]), 1,
           "which LCE rejects", "float32")
