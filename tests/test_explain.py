"""The per-layer explanation and --strict, on a deliberately bad small model (one conversion)."""

import pytest

from edgebnn.cli import cli


def _bad_model():
    import larq as lq
    import tf_keras as keras

    binary = dict(kernel_quantizer="ste_sign", kernel_constraint="weight_clip", use_bias=False)
    inputs = keras.Input((8, 8, 32))
    x = lq.layers.QuantConv2D(32, 3, padding="same", input_quantizer=None, name="no_input_quantizer", **binary)(inputs)
    x = keras.layers.BatchNormalization()(x)
    x = lq.layers.QuantConv2D(32, 3, padding="same", pad_values=1.0, input_quantizer="ste_sign",
                              kernel_quantizer=lq.quantizers.NoOp(precision=1), use_bias=False,
                              # latent weights of uneven magnitude and never exactly 0 (a seeded
                              # uniform initializer can draw one, which is another cause)
                              kernel_initializer=keras.initializers.RandomUniform(0.05, 1.0, seed=0),
                              name="latent_kernel")(x)
    x = keras.layers.BatchNormalization()(x)
    x = lq.layers.QuantConv2D(12, 3, padding="same", pad_values=1.0, input_quantizer="ste_sign",
                              name="odd_channels", **binary)(x)
    x = keras.layers.BatchNormalization()(x)
    x = lq.layers.QuantConv2D(32, 1, input_quantizer="ste_sign", name="few_inputs", **binary)(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    x = lq.layers.QuantDense(10, input_quantizer="ste_sign", name="binary_dense", **binary)(x)
    outputs = keras.layers.Activation("softmax")(x)
    return keras.Model(inputs, outputs, name="bad")


@pytest.fixture(scope="module")
def bad_run(tmp_path_factory):
    from edgebnn.run.rundir import RunDir

    run = RunDir.create(tmp_path_factory.mktemp("bad") / "run", {"model": "bad", "weights": "random"})
    run.save_model(_bad_model())
    return run


@pytest.fixture(scope="module")
def bad_conversion(bad_run, tmp_path_factory):
    """`--strict` first (fails, writes nothing), then the normal conversion with --explain."""
    from click.testing import CliRunner

    strict = CliRunner().invoke(cli, ["convert", str(bad_run.path), "--strict"])
    tflite_after_strict = bad_run.tflite_path.exists()
    result = CliRunner().invoke(cli, ["convert", str(bad_run.path), "--explain"])
    return strict, tflite_after_strict, result


def _rows(run):
    return {row["name"]: row for row in run.manifest["conversion"]["explain"]["layers"]}


def test_strict_fails_naming_the_layers_and_writes_nothing(bad_conversion):
    strict, tflite_after_strict, _ = bad_conversion
    assert strict.exit_code == 1, strict.output
    assert "--strict: 3 of 5 binary layers stayed float" in strict.output
    assert "no_input_quantizer" in strict.output
    assert not tflite_after_strict


def test_explain_prints_every_layer_and_the_causes(bad_conversion, bad_run):
    _, _, result = bad_conversion
    assert result.exit_code == 0, result.output
    assert "latent_kernel (QuantConv2D) -> " in result.output
    assert "[binary: STAYED FLOAT]" in result.output
    assert "why: " in result.output
    assert "3 binary layer(s) stayed float" in result.output
    assert bad_run.tflite_path.exists()


def test_each_cause_is_named(bad_conversion, bad_run):
    rows = _rows(bad_run)
    assert "input_quantizer=None" in rows["no_input_quantizer"]["reasons"][0]
    assert "not +-s per output channel" in rows["latent_kernel"]["reasons"][0]
    assert "1x1 QuantConv2D" in rows["binary_dense"]["reasons"][0]
    assert set(bad_run.manifest["conversion"]["explain"]["float_binary_layers"]) == {
        "no_input_quantizer", "latent_kernel", "binary_dense"}


def test_channel_counts_are_warnings_on_layers_that_became_bconv(bad_conversion, bad_run):
    rows = _rows(bad_run)
    assert rows["odd_channels"]["bconv"] and rows["odd_channels"]["reasons"] == []
    assert any("12 output channels are not a multiple of 8" in w for w in rows["odd_channels"]["warnings"])
    assert rows["few_inputs"]["bconv"]
    assert any("12 input channels are not a multiple of 32" in w for w in rows["few_inputs"]["warnings"])
    assert "LceBconv2d" in rows["few_inputs"]["ops"]
    assert "CONV_2D" in rows["no_input_quantizer"]["ops"]


def test_float_layers_are_mapped_from_the_flatbuffer(tiny_run):
    # Layer names depend on what the test session built before: go by type and order.
    rows = tiny_run.manifest["conversion"]["explain"]["layers"]
    first = {}
    for row in rows:
        first.setdefault(row["type"], row)
    assert first["QuantConv2D"]["ops"] == ["LceQuantize", "LceBconv2d"]
    assert all(r["ops"] == ["LceQuantize", "LceBconv2d"] for r in rows if r["type"] == "QuantConv2D")
    assert first["Dense"]["ops"] == ["FULLY_CONNECTED"]
    assert rows[-1]["ops"] == ["SOFTMAX"]
    assert first["Conv2D"]["ops"] == ["CONV_2D"]
    assert first["BatchNormalization"]["ops"] == []  # folded into the convolution
    assert tiny_run.manifest["conversion"]["explain"]["float_binary_layers"] == []


@pytest.mark.parametrize(
    "options, fragment",
    [
        ({"input_quantizer": "dorefa"}, "not sign-like (outputs 0, 0.333333"),
        ({"kernel_quantizer": "ste_heaviside"}, "the quantized kernel has zeros in 64 of 64 output channels"),
    ],
)
def test_more_causes_on_single_layers(options, fragment):
    import larq as lq
    import tf_keras as keras

    from edgebnn.converters.explain import diagnose

    config = {"input_quantizer": "ste_sign", "kernel_quantizer": "ste_sign", **options}
    if config["input_quantizer"] == "dorefa":
        config["input_quantizer"] = lq.quantizers.DoReFa(k_bit=2, mode="activations")
    layer = lq.layers.QuantConv2D(64, 3, **config)
    layer(keras.Input((8, 8, 32)))
    reasons, _ = diagnose(layer, became_bconv=False)
    assert fragment in reasons[0]


def test_parallel_binary_convs_on_one_quantized_input_are_each_attributed():
    """BNext's doubled width: two 1x1 binary convs share one LceQuantize, whose tensor names
    only one of them; each LceBconv2d is found through the BatchNorm fused into it."""
    import larq as lq
    import tf_keras as keras

    from edgebnn.converters.flatbuffer import operators
    from edgebnn.converters.lce import convert
    from edgebnn.converters.report import conversion_report

    binary = dict(input_quantizer="ste_sign", kernel_quantizer="ste_sign", kernel_constraint="weight_clip",
                  use_bias=False)
    inputs = keras.Input((8, 8, 32))
    halves = [keras.layers.BatchNormalization()(lq.layers.QuantConv2D(32, 1, name=f"half_{k}", **binary)(inputs))
              for k in range(2)]
    model = keras.Model(inputs, keras.layers.Concatenate()(halves))
    flatbuffer = convert(model)
    report = conversion_report(model, flatbuffer)
    assert report["bconv"] == 2 and report["explain"]["float_binary_layers"] == []
    assert report["bconv_coverage"] == 1.0
    assert len(operators(flatbuffer)) >= 2
