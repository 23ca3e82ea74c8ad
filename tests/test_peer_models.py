"""The peer suite: models nobody here designed (tests/peers.py), saved as .keras and .h5 and
converted through the CLI, each next to LCE's own converter used by hand.

Asserted for each: edgebnn's op counts equal ``larq_compute_engine.convert_keras_model`` on the
same file; parity holds (the verdict the model calls for); where LCE 0.16 is known to be wrong
(a zero-padded binary conv on a 2x2 map), edgebnn says so, naming the layer. Conversions are
shared by the whole session (one per model and format; one conversion by hand per model).
"""

from __future__ import annotations

import json
from collections import Counter

import pytest
from peers import PEERS, QUANTIZERS, make

from edgebnn.cli import cli


def _cases():
    """(model, format) pairs; slow models, and .h5 copies of models without function
    quantizers or code, run with the slow tests only (the .keras one covers them in CI)."""
    cases = []
    for name, peer in PEERS.items():
        for suffix in peer.formats:
            slow = peer.slow or (suffix == ".h5" and not (peer.custom_objects or peer.convert_args))
            cases.append(pytest.param(name, suffix, id=f"{name}{suffix}",
                                      marks=[pytest.mark.slow] if slow else []))
    return cases


@pytest.fixture(scope="session")
def peer_files(tmp_path_factory):
    root = tmp_path_factory.mktemp("peers")
    made: dict[str, dict] = {}

    def files(name: str) -> dict:
        if name not in made:
            made[name] = make(name, root)
        return made[name]

    files.root = root
    return files


@pytest.fixture(scope="session")
def converted(peer_files):
    """``converted(name, suffix)``: the CLI's result and the run's manifest, once per session."""
    from click.testing import CliRunner

    done: dict = {}

    def convert(name: str, suffix: str):
        if (name, suffix) not in done:
            peer = PEERS[name]
            path = peer_files(name)[suffix]
            out = peer_files.root / "runs" / f"{name}{suffix.replace('.', '-')}"
            args = ["convert", str(path), "--out", str(out), *peer.convert_args]
            if peer.custom_objects:
                args += ["--custom-objects", str(QUANTIZERS)]
            result = CliRunner().invoke(cli, args)
            manifest = json.loads((out / "manifest.json").read_text()) if (out / "manifest.json").exists() else {}
            done[name, suffix] = (result, out, manifest)
        return done[name, suffix]

    return convert


@pytest.fixture(scope="session")
def by_hand(peer_files):
    """``by_hand(name)``: op counts of ``larq_compute_engine.convert_keras_model`` on the saved .keras file."""
    done: dict = {}

    def ops(name: str) -> dict:
        if name not in done:
            import larq_compute_engine as lce
            import larq_zoo  # noqa: F401  (the zoo's custom objects, as a user would import them)
            import peer_quantizers
            import tf_keras as keras

            path = peer_files(name)[PEERS[name].formats[0]]
            functions = {k: v for k, v in vars(peer_quantizers).items() if callable(v)}
            model = keras.models.load_model(path, compile=False, custom_objects=functions)
            done[name] = _op_counts(lce.convert_keras_model(model))
        return done[name]

    return ops


def _op_counts(flatbuffer: bytes) -> dict:
    """Ops read with TensorFlow's own flatbuffer schema (not edgebnn's reader)."""
    from collections import Counter

    from tensorflow.lite.python import schema_py_generated as schema

    model = schema.ModelT.InitFromPackedBuf(flatbuffer, 0)
    names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    codes = [c.customCode.decode() if c.customCode else names[max(c.builtinCode, c.deprecatedBuiltinCode)]
             for c in model.operatorCodes]
    return dict(Counter(codes[op.opcodeIndex] for g in model.subgraphs for op in g.operators))


@pytest.mark.parametrize("name, suffix", _cases())
def test_op_counts_equal_lce_by_hand(name, suffix, converted, by_hand):
    result, out, manifest = converted(name, suffix)
    assert "Traceback" not in result.output and "unexpected" not in result.output, result.output
    ours, theirs = Counter(manifest["conversion"]["op_counts"]), Counter(by_hand(name))
    if PEERS[name].lce_wrong:
        # Converted around LCE's limit: a SUB per corrected conv. A BatchNormalization after it
        # cannot fuse into the bconv through the SUB, so it stays as a MUL and an ADD.
        corrected = sum("zero-padded binary convolution is wrong" in w for layer in
                        manifest["conversion"]["explain"]["layers"] for w in layer.get("warnings", []))
        extra = ours - theirs
        assert corrected and extra["SUB"] == corrected and set(extra) <= {"SUB", "MUL", "ADD"}, result.output
        assert extra["MUL"] == extra["ADD"] <= corrected, result.output
        assert set(theirs - ours) <= {"RELU", "RELU6"} and ours["LceBconv2d"] == theirs["LceBconv2d"]
    else:
        assert ours == theirs, result.output


@pytest.mark.parametrize("name, suffix", _cases())
def test_parity_verdict(name, suffix, converted):
    peer = PEERS[name]
    result, out, manifest = converted(name, suffix)
    parity = manifest["conversion"]["parity"]
    assert parity["verdict"] == peer.verdict, (result.output, parity)
    assert (out / "model.tflite").exists()  # whatever the verdict, LCE's flatbuffer is there
    if peer.verdict == "ok":
        assert result.exit_code == 0 and parity["ok"], result.output
    elif peer.verdict == "rounding":
        assert result.exit_code == 0, result.output
        assert "sign flips at rounding of zero, not by the conversion" in result.output
        layers = parity["signs"]["layers"]
        assert sum(r["flips"] for r in layers) > 0 and all(r["local"] == r["at_rounding"] for r in layers)
    if peer.lce_wrong:  # LCE alone would be wrong: edgebnn converts around its limit and says so by name
        warnings = [w for layer in manifest["conversion"]["explain"]["layers"] for w in layer.get("warnings", [])]
        assert any("LCE 0.16's zero-padded binary convolution is wrong on this" in w for w in warnings)


def test_a_function_quantizer_is_probed_and_explained(converted, cli_runner, peer_files):
    """LCE's own test quantizer, tf.where with ones_like branches: edgebnn classifies it as 1-bit
    (statistics), and says why LCE 0.16 kept those layers float (it matches the scalar form)."""
    _, _, manifest = converted("lce-toy-where", ".keras")
    assert manifest["stats"]["binary_params"] == 3 * 3 * 3 * 32 * 32 and not manifest["stats"]["unknown_layers"]
    layers = {r["name"]: r for r in manifest["conversion"]["explain"]["layers"] if r["binary"]}
    assert len(layers) == 3 and not any(r["bconv"] for r in layers.values())
    assert all(r["quantizers"] == {"input_quantizer": "1-bit (probed)", "kernel_quantizer": "1-bit (probed)"}
               for r in layers.values())
    assert all("tf.where(x >= 0, 1.0, -1.0) with scalar branches" in r["reasons"][0] for r in layers.values())
    _, _, scalar = converted("lce-sequential-where", ".keras")
    assert scalar["conversion"]["bconv"] == 3 and scalar["conversion"]["bconv_coverage"] == 1.0


def test_a_quantizer_edgebnn_cannot_classify_is_counted_as_unknown(tmp_path, cli_runner):
    import larq as lq
    import peer_quantizers
    import tf_keras as keras

    keras.utils.set_random_seed(0)
    inputs = keras.Input((8, 8, 3))
    x = lq.layers.QuantConv2D(16, 3, input_quantizer=peer_quantizers.hard_tanh, kernel_quantizer="ste_sign",
                              name="clipped")(inputs)
    keras.Model(inputs, keras.layers.GlobalAveragePooling2D()(x)).save(tmp_path / "clipped.keras")
    result = cli_runner.invoke(cli, ["convert", str(tmp_path / "clipped.keras"), "--out", str(tmp_path / "run"),
                                     "--custom-objects", str(QUANTIZERS), "--explain"])
    assert result.exit_code == 0, result.output
    assert "note: input_quantizer declares no bit width and is neither sign-like nor the identity" in result.output
    stats = json.loads((tmp_path / "run" / "manifest.json").read_text())["stats"]
    assert stats["unknown_layers"] == {"clipped": "input_quantizer"}
    assert stats["unknown_macs"] == 6 * 6 * 3 * 3 * 3 * 16 and stats["binary_macs"] == 0
    assert stats["binary_params"] == 3 * 3 * 3 * 16


def test_coverage_is_one_figure_from_keras_and_from_the_flatbuffer_alone(converted, cli_runner, tmp_path):
    """larq's MNIST model: a binary first conv with a float input and two QuantDense stay float,
    two convs become LceBconv2d: 2 of 5, whether the run came from Keras or from the .tflite."""
    _, out, manifest = converted("larq-mnist", ".keras")
    keras_side = manifest["conversion"]
    assert (keras_side["bconv"], keras_side["binary_ops"], keras_side["bconv_coverage"]) == (2, 5, 0.4)
    assert keras_side["binary_layers"] == 5
    result = cli_runner.invoke(cli, ["bench", str(out / "model.tflite"), "--out", str(tmp_path / "alone"),
                                     "--device", "local", "--runs", "3", "--warmup", "1", "--min-secs", "0"])
    assert result.exit_code == 0, result.output
    alone = json.loads((tmp_path / "alone" / "manifest.json").read_text())["conversion"]
    assert alone["coverage_from"] == "ops"
    for key in ("bconv", "binary_ops", "bconv_coverage", "op_counts"):
        assert alone[key] == keras_side[key], key


@pytest.mark.parametrize("name", ["lce-toy", "lce-int8"])
def test_bench_local(name, converted, cli_runner):
    _, out, _ = converted(name, ".keras")
    result = cli_runner.invoke(cli, ["bench", str(out), "--device", "local", "--threads", "1", "--runs", "5",
                                     "--warmup", "1", "--min-secs", "0", "--json"])
    assert result.exit_code == 0, result.output
    record = json.loads(result.output[result.output.index("{"):])
    record = record[0] if isinstance(record, list) else record
    assert record["results"][0]["ok"] and record["results"][0]["latency"]["median_ms"] > 0


def test_a_wrong_kernel_is_named_as_the_user_wrote_it(peer_files, cli_runner, tmp_path, monkeypatch):
    """A converter that negates one binary conv's kernel: from the same binary inputs that conv
    computes differently, and edgebnn names it (not the BatchNorm folded into it). The flatbuffer
    is written for latency studies; --strict writes nothing."""
    import numpy as np
    import tf_keras as keras

    from edgebnn.converters import lce

    real = lce.convert

    def wrong(model, **kwargs):
        clone = keras.models.clone_model(model)
        clone.set_weights(model.get_weights())
        layer = [l for l in clone.layers if type(l).__name__ == "QuantConv2D"][1]
        layer.kernel.assign(-np.asarray(layer.kernel))
        return real(clone, **kwargs)

    monkeypatch.setattr(lce, "convert", wrong)
    path = peer_files("lce-toy")[".keras"]
    target = [l.name for l in keras.models.load_model(path, compile=False).layers
              if type(l).__name__ == "QuantConv2D"][1]
    strict = cli_runner.invoke(cli, ["convert", str(path), "--out", str(tmp_path / "strict"), "--strict"])
    assert strict.exit_code == 1 and "nothing written" in strict.output, strict.output
    assert not (tmp_path / "strict" / "model.tflite").exists()
    result = cli_runner.invoke(cli, ["convert", str(path), "--out", str(tmp_path / "run")])
    assert result.exit_code == 1, result.output
    assert f"the outputs are wrong at {target} (QuantConv2D): it computes differently in the flatbuffer" in result.output
    assert "zero-padded" not in result.output and "Traceback" not in result.output
    parity = json.loads((tmp_path / "run" / "manifest.json").read_text())["conversion"]["parity"]
    assert parity["verdict"] == "wrong" and parity["culprit"]["layer"] == target
    assert (tmp_path / "run" / "model.tflite").exists()


def test_sign_flips_at_rounding_keep_the_flatbuffer_unless_strict(peer_files, cli_runner, tmp_path):
    """Binary convs with BatchNorm(scale=False) as initialized: exact ties flip signs; the
    flatbuffer is kept with the verdict (test_parity_verdict), and --strict refuses it."""
    path = peer_files("binarynet-convs-fresh-bn")[".keras"]
    result = cli_runner.invoke(cli, ["convert", str(path), "--out", str(tmp_path / "run"), "--strict"])
    assert result.exit_code == 1, result.output
    assert "--strict: parity out of tolerance" in result.output and "explained by sign flips" in result.output
    assert "without --strict the flatbuffer is kept" in result.output
    assert not (tmp_path / "run" / "model.tflite").exists()
