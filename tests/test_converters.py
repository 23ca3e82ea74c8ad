import pytest

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
    parity = tiny_run.manifest["conversion"]["parity"]
    assert parity["max_rel_error"] < 1e-4
    assert parity["top1_agreement"] == 1.0


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
