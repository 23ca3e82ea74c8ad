import json

import numpy as np

from edgebnn.cli import cli
from edgebnn.data import digits_arrays, load_dataset
from edgebnn.rundir import RunDir


def test_digits_split_is_stratified_and_fixed():
    x_train, y_train, x_val, y_val = digits_arrays((32, 32, 1))
    assert x_train.shape[1:] == (32, 32, 1) and len(x_val) == 360
    assert set(np.bincount(y_val)) <= {35, 36, 37}  # stratified: ~36 per class
    assert -1.0 <= x_train.min() and x_train.max() <= 1.0
    again = digits_arrays((32, 32, 1))
    assert np.array_equal(again[3], y_val)


def test_digits_as_three_channels():
    data = load_dataset("digits", input_shape=(16, 16, 3), batch_size=8)
    x, y = next(iter(data.train))
    assert tuple(x.shape) == (8, 16, 16, 3)


def test_quickstart_end_to_end(cli_runner, tmp_path):
    out = tmp_path / "qs"
    result = cli_runner.invoke(cli, ["quickstart", "--out", str(out), "--epochs", "2", "--quiet"])
    assert result.exit_code == 0, result.output
    assert "validation accuracy" in result.stdout and "LceBconv2d" in result.stdout
    manifest = RunDir.open(out).manifest
    assert manifest["metrics"]["val_accuracy"] > 0.5  # two epochs already learn the digits
    assert manifest["recipe"]["epochs"] == 2
    assert manifest["conversion"]["bconv_coverage"] == 1.0
    assert manifest["benchmarks"][0]["results"][0]["ok"]
    assert (out / "logs" / "metrics.csv").exists()
    # The saved model loads again and agrees with the flatbuffer.
    model = RunDir(out).load_model()
    assert model.count_params() == manifest["stats"]["params"]
    assert json.loads((out / "manifest.json").read_text())["files"]["model.keras"]["bytes"] > 0
