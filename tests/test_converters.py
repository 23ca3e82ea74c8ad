
import pytest

from edgebnn.cli import cli
from edgebnn.converters.flatbuffer import op_counts, operators
from edgebnn.errors import EdgebnnError


def test_every_binary_conv_becomes_lce_bconv2d(tiny_run):
    report = tiny_run.manifest["conversion"]
    assert report["binary_layers"] == 6
    assert report["bconv"] == 6
    assert report["bconv_coverage"] == 1.0
    assert report["op_counts"]["LceQuantize"] >= 1


def test_op_inventory_read_from_the_flatbuffer(tiny_run):
    data = tiny_run.tflite_path.read_bytes()
    ops = operators(data)
    assert ops[-1]["op"] == "SOFTMAX"
    assert op_counts(data)["CONV_2D"] == 3  # float stem + two downsampling shortcuts


def test_parity_with_keras(tiny_run):
    # The seeded random weights make this repeatable; the tolerance is the 1e-3 on the
    # logits, tighter than the tool's own (a sign flip at rounding moves a few values).
    parity = tiny_run.manifest["conversion"]["parity"]
    assert parity["ok"] and parity["checked_on"] == "logits"
    assert parity["logits"]["mean_rel_error"] < 1e-3
    assert parity["top1_agreement"] == 1.0


def test_random_weights_repeat_for_a_model_name(tiny_run, tmp_path):
    import numpy as np

    from edgebnn.run.sources import parse_source, resolve_source

    again = resolve_source(parse_source("bireal-tiny"), out=str(tmp_path / "again"))
    assert again.manifest["seed"] == tiny_run.manifest["seed"] == 0
    for a, b in zip(again.load_model().get_weights(), tiny_run.load_model().get_weights()):
        np.testing.assert_array_equal(a, b)


def test_flatbuffer_is_recorded_with_its_hash(tiny_run):
    files = tiny_run.manifest["files"]
    assert files["model.tflite"]["bytes"] == tiny_run.tflite_path.stat().st_size
    assert len(files["model.tflite"]["sha256"]) == 64


def test_not_a_flatbuffer():
    with pytest.raises(EdgebnnError, match="not a TFLite flatbuffer"):
        operators(b"PK\x03\x04 a zip file")


def test_float_twin_has_no_quantizers_and_same_weights(tiny_run):
    import larq as lq
    import numpy as np

    from edgebnn.converters.twin import float_twin

    model = tiny_run.load_model()
    twin = float_twin(model)
    assert not any(isinstance(layer, lq.layers_base.QuantizerBase) for layer in twin.layers)
    assert twin.count_params() == model.count_params()
    x = np.random.default_rng(0).uniform(-1, 1, (2, 32, 32, 1)).astype("float32")
    assert twin.predict(x, verbose=0).shape == model.predict(x, verbose=0).shape


@pytest.mark.parametrize("name, options", [("sabnn-r18", {}), ("tang2017-compact", {"terms": 2})])
def test_float_twin_of_paper_quantizers(name, options):
    """SA-BNN's a+/a- belong to the quantizer and Tang's ``terms`` to a larq subclass: the twin
    keeps neither and carries the latent kernels."""
    import numpy as np

    from edgebnn.converters.twin import float_twin
    from edgebnn.models.introspection import flat_layers
    from edgebnn.registry import create_model

    model = create_model(name, input_shape=(32, 32, 3), num_classes=10, width=0.25, **options)
    twin = float_twin(model)
    quant = [l for l in flat_layers(model) if type(l).__name__ in ("QuantConv2D", "MultiBinaryConv2D")]
    twins = {l.name: l for l in flat_layers(twin)}
    assert quant and all(type(twins[l.name]).__name__ == "Conv2D" for l in quant)
    np.testing.assert_array_equal(twins[quant[-1].name].kernel.numpy(), quant[-1].kernel.numpy())
    x = np.random.default_rng(0).uniform(-1, 1, (1, 32, 32, 3)).astype("float32")
    assert np.isfinite(twin(x).numpy()).all()


# -- size, parity, targets, int8, bad input ----------------------------------------------------


def test_size_against_theoretical_minimum(tiny_run):
    size = tiny_run.manifest["conversion"]["size"]
    assert size["ratio"] <= 1.10
    assert size["minimum_bytes"] < size["tflite_bytes"] == tiny_run.tflite_path.stat().st_size
    # The second binary convolution: 3x3x32x32 binary weights, 1 bit each.
    binary = [r for r in tiny_run.manifest["conversion"]["explain"]["layers"] if r["binary"]]
    row = next(r for r in size["layers"] if r["name"] == binary[1]["name"])
    assert row["minimum_bytes"] == row["tflite_bytes"] == 3 * 3 * 32 * 32 // 8


def test_parity_is_checked_on_the_logits(tiny_run):
    parity = tiny_run.manifest["conversion"]["parity"]
    assert parity["checked_on"] == "logits"
    assert parity["logits"]["mean_rel_error"] < 1e-2
    assert parity["ok"]


def test_first_divergence_names_the_layer(tiny_run):
    import numpy as np

    from edgebnn.converters.parity import FLOAT_TOLERANCE, first_divergence
    from edgebnn.data.samples import random_inputs

    model = tiny_run.load_model()
    flatbuffer = tiny_run.tflite_path.read_bytes()
    inputs = random_inputs(model.input_shape[1:], 2)
    assert first_divergence(model, flatbuffer, inputs, tolerance=FLOAT_TOLERANCE) is None
    # Keras now computes something else from conv2d_1 on: the flatbuffer diverges there.
    layer = [l for l in model.layers if type(l).__name__ == "Conv2D"][1]
    layer.kernel.assign(np.asarray(layer.kernel) * -3.0)
    found = first_divergence(model, flatbuffer, inputs, tolerance=FLOAT_TOLERANCE)
    folded_into = layer._outbound_nodes[0].outbound_layer.name  # its BatchNorm, folded in the flatbuffer
    assert found["layer"] in (layer.name, folded_into)
    assert found["parity"]["mean_rel_error"] > FLOAT_TOLERANCE["mean_rel_error"]


def test_an_unexplained_parity_miss_exits_1_naming_the_layer(tiny_copy, cli_runner, monkeypatch):
    """Zero tolerance: no sign flip explains the (rounding-sized) difference, so the verdict is
    wrong at a named layer; the flatbuffer is written for latency studies, --strict writes nothing."""
    from edgebnn.converters import parity

    tiny_copy.tflite_path.unlink()
    tiny_copy.update(weights="trained")  # as `edgebnn train` leaves it
    monkeypatch.setattr(parity, "FLOAT_TOLERANCE", {"mean_rel_error": 0.0})
    strict = cli_runner.invoke(cli, ["convert", str(tiny_copy.path), "--strict"])
    assert strict.exit_code == 1 and "nothing written" in strict.output, strict.output
    assert not tiny_copy.tflite_path.exists()
    result = cli_runner.invoke(cli, ["convert", str(tiny_copy.path)])
    assert result.exit_code == 1, result.output
    assert "parity out of tolerance on the logits" in result.output and "the outputs are wrong at " in result.output
    recorded = tiny_copy.manifest["conversion"]["parity"]
    assert recorded["verdict"] == "wrong" and recorded["culprit"]["layer"] in result.output
    assert tiny_copy.tflite_path.exists() and "written for latency studies only" in result.output


def test_float_twin_and_baked_keras_targets(tiny_copy, cli_runner):
    import numpy as np
    import tf_keras as keras

    before = tiny_copy.manifest["conversion"]
    result = cli_runner.invoke(cli, ["convert", str(tiny_copy.path), "--to", "tflite-float"])
    assert result.exit_code == 0, result.output
    result = cli_runner.invoke(cli, ["convert", str(tiny_copy.path), "--to", "keras"])
    assert result.exit_code == 0, result.output
    conversion = tiny_copy.manifest["conversion"]
    assert conversion["bconv"] == before["bconv"]  # the LCE report is kept
    float_report = conversion["tflite-float"]
    assert not any(op.startswith("Lce") for op in float_report["op_counts"])
    assert float_report["parity"]["ok"]
    assert (tiny_copy.path / "model-float.tflite").stat().st_size == float_report["tflite_bytes"]
    assert conversion["keras"]["parity"]["max_abs_error"] == 0.0
    from edgebnn.models import register_custom_objects

    register_custom_objects()

    baked = keras.models.load_model(tiny_copy.path / "model-baked.keras", compile=False)
    first_binary = next(l for l in baked.layers if type(l).__name__ == "QuantConv2D")
    kernel = np.asarray(first_binary.kernel)
    assert set(np.unique(kernel)) <= {-1.0, 1.0}
    assert set(tiny_copy.manifest["files"]) >= {"model-float.tflite", "model-baked.keras"}


@pytest.mark.slow
def test_int8_calibrated_on_the_digits(tiny_copy, tiny_run, cli_runner):
    import numpy as np
    from larq_compute_engine.tflite.python.interpreter import Interpreter

    result = cli_runner.invoke(cli, ["convert", str(tiny_copy.path), "--int8", "--int8-io", "--data", "digits"])
    assert result.exit_code == 0, result.output
    report = tiny_copy.manifest["conversion"]
    assert report["int8"] and report["bconv"] == 6
    assert report["parity"]["ok"] and report["parity"]["tolerance"] == {"mean_rel_error": 0.05}
    assert report["parity"]["top1_agreement"] >= 0.75
    interpreter = Interpreter(tiny_copy.tflite_path.read_bytes())
    assert interpreter.input_types[0] == np.int8 and interpreter.output_types[0] == np.int8
    assert report["tflite_bytes"] < 0.8 * tiny_run.manifest["conversion"]["tflite_bytes"]
    assert report["size"]["minimum_bytes"] < tiny_run.manifest["conversion"]["size"]["minimum_bytes"]


def test_parity_on_the_validation_split_of_a_dataset_folder(tiny_copy, tmp_path, cli_runner):
    from formats import cifar10_folder

    cifar10_folder(tmp_path)  # 5 validation images, each a real CIFAR pickle row
    result = cli_runner.invoke(cli, ["convert", str(tiny_copy.path), "--data", f"cifar10:{tmp_path}"])
    assert result.exit_code == 0, result.output
    report = tiny_copy.manifest["conversion"]
    assert report["data"] == f"cifar10:{tmp_path}"
    assert report["parity"]["inputs"] == 5 and report["parity"]["ok"]


def _fake_quant_run(path):
    """A small BNN trained "with quantization-aware training": fake-quant ops after each float
    layer carry the int8 ranges, so no representative dataset is needed."""
    import larq as lq
    import tensorflow as tf
    import tf_keras as keras

    from edgebnn.run.rundir import RunDir

    def fq(x, bound):
        return tf.quantization.fake_quant_with_min_max_args(x, -bound, bound)

    keras.utils.set_random_seed(0)
    inputs = keras.Input((16, 16, 3))
    x = keras.layers.Conv2D(32, 3, padding="same")(fq(inputs, 1.0))
    x = keras.layers.BatchNormalization()(x)
    x = lq.layers.QuantConv2D(32, 3, padding="same", pad_values=1.0, input_quantizer="ste_sign",
                              kernel_quantizer="ste_sign", kernel_constraint="weight_clip", use_bias=False)(fq(x, 4.0))
    x = keras.layers.GlobalAveragePooling2D()(fq(x, 64.0))
    outputs = fq(keras.layers.Dense(10)(x), 16.0)
    run = RunDir.create(path, {"model": "qat-tiny", "weights": "random"})
    run.save_model(keras.Model(inputs, outputs))
    return run


def test_int8_from_the_model_s_own_fake_quant_ops(tmp_path, cli_runner):
    import numpy as np
    from larq_compute_engine.tflite.python.interpreter import Interpreter

    from edgebnn.converters.flatbuffer import operators, tensors

    run = _fake_quant_run(tmp_path / "qat")
    result = cli_runner.invoke(cli, ["convert", str(run.path), "--int8", "--int8-io"])
    assert result.exit_code == 0, result.output
    data = run.tflite_path.read_bytes()
    assert Interpreter(data).input_types[0] == np.int8
    types = {t["index"]: t["type"] for t in tensors(data)}
    conv = next(op for op in operators(data) if op["op"] == "CONV_2D")
    assert types[conv["output_ids"][0]] == "INT8"
    assert run.manifest["conversion"]["bconv"] == 1


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["--target", "riscv"], "unknown --target 'riscv'"),
        (["--int8"], "--int8 needs a representative dataset"),
        (["--to", "keras", "--int8", "--data", "digits"], "--int8 applies to --to tflite"),
        (["--int8-io"], "--int8-io needs --int8"),
        (["--data", "mnist"], "unknown dataset 'mnist'"),
    ],
)
def test_bad_options_exit_2_before_anything_is_written(args, fragment, cli_runner, tmp_path):
    result = cli_runner.invoke(cli, ["convert", "bireal-tiny", "--out", str(tmp_path / "r"), *args])
    assert result.exit_code == 2, result.output
    assert fragment in result.output
    assert not (tmp_path / "r").exists()


def test_corrupt_model_file(tiny_copy, cli_runner):
    tiny_copy.tflite_path.unlink()
    tiny_copy.keras_path.write_bytes(b"not a zip archive")
    result = cli_runner.invoke(cli, ["convert", str(tiny_copy.path)])
    assert result.exit_code == 1
    assert "does not hold the bytes its manifest records" in result.output and "Traceback" not in result.output
    assert not tiny_copy.tflite_path.exists()


def test_mixed_precision_model_is_refused_with_the_fix():
    import larq as lq
    import tf_keras as keras

    from edgebnn.converters.lce import convert

    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        inputs = keras.Input((8, 8, 32))
        x = lq.layers.QuantConv2D(32, 3, input_quantizer="ste_sign", kernel_quantizer="ste_sign")(inputs)
        model = keras.Model(inputs, keras.layers.Activation("linear", dtype="float32")(x))
    finally:
        keras.mixed_precision.set_global_policy("float32")
    with pytest.raises(EdgebnnError, match="mixed_float16 dtype policy.*cast the model to float32 first"):
        convert(model)


def test_layer_lce_cannot_convert():
    import tensorflow as tf
    import tf_keras as keras

    from edgebnn.converters.lce import convert

    inputs = keras.Input((4,))
    # Singular value decomposition has no TFLite kernel (and LCE enables no TF-op fallback).
    layer = keras.layers.Lambda(lambda t: tf.linalg.svd(t[:, :, None], compute_uv=False), name="svd_layer")
    model = keras.Model(inputs, layer(inputs))
    with pytest.raises(EdgebnnError, match="LCE could not convert .*Svd .*svd_layer"):
        convert(model)
