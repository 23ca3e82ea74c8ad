"""Files are data: what a user opens runs no code, and a run directory's files are the bytes its
manifest records. Every case goes through the command a user runs, with real hostile files (a
Lambda's bytecode in .h5, SavedModel and .keras, a module named by a config, a copied run's
manifest), and checks that the marker file the payload would write does not exist."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from faults import fails_cleanly, small_tmpfs, wait_for

from edgebnn.cli import cli
from edgebnn.run.rundir import RunDir, sha256_of


def _ok(result):
    assert result.exit_code == 0, result.output
    return result


def _tiny_model(payload=None):
    """A small Keras model; ``payload`` adds a Lambda whose bytecode writes a marker file."""
    import tf_keras as keras

    inputs = keras.Input((8, 8, 1))
    x = inputs
    if payload is not None:
        marker = str(payload)
        x = keras.layers.Lambda(lambda t, m=marker: (open(m, "w").write("ran"), t)[1], name="payload")(x)
    x = keras.layers.Flatten()(x)
    return keras.Model(inputs, keras.layers.Dense(10)(x))


@pytest.fixture(scope="module")
def hostile(tmp_path_factory):
    """The same hostile model as .h5, SavedModel and .keras; its payload writes ``MARKER``."""
    root = tmp_path_factory.mktemp("hostile")
    marker = root / "MARKER"
    model = _tiny_model(payload=marker)
    model.save(root / "evil.h5")
    model.save(root / "evil_savedmodel")
    model.save(root / "evil.keras")
    marker.unlink(missing_ok=True)  # saving traces the model: the payload ran here, by us
    _tiny_model().save(root / "plain.keras")
    return root


@pytest.mark.parametrize("name", ["evil.h5", "evil_savedmodel", "evil.keras"])
def test_a_model_file_with_code_runs_nothing_without_the_opt_in(hostile, name, tmp_path, cli_runner):
    marker, src = hostile / "MARKER", str(hostile / name)
    for args in (["convert", src], ["bench", src, "--runs", "1"], ["evaluate", src, "--data", "digits"]):
        result = cli_runner.invoke(cli, [*args, "--out", str(tmp_path / "run")])
        fails_cleanly(result, 2, "layer 'payload' (Lambda)", "--trust-code")
        assert ".h5" not in result.output.replace(src, "")  # never the advice to save in a format with no guard
        assert not marker.exists() and not (tmp_path / "run").exists()


def test_the_opt_in_runs_it_and_the_run_keeps_asking(hostile, tmp_path, cli_runner):
    """--trust-code is what lets the payload run (so the refusals above refused a live payload), and
    the run made from the file asks again: a run directory may travel."""
    marker, out = hostile / "MARKER", tmp_path / "run"
    _ok(cli_runner.invoke(cli, ["convert", str(hostile / "evil.h5"), "--out", str(out), "--trust-code"]))
    assert marker.exists()
    marker.unlink()
    fails_cleanly(cli_runner.invoke(cli, ["convert", str(out), "--to", "keras"]), 2, "'payload'", "--trust-code")
    assert not marker.exists()


def _edit_keras_config(src: Path, dst: Path, change) -> None:
    """Copy a .keras archive with its config.json changed by ``change(config)``."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for item in zin.infolist():
            data = zin.read(item.filename)
            if item.filename == "config.json":
                config = json.loads(data)
                change(config)
                data = json.dumps(config).encode()
            zout.writestr(item, data)


def _dense(config: dict) -> dict:
    return next(layer for layer in config["config"]["layers"] if layer["class_name"] == "Dense")["config"]


def test_a_module_a_keras_file_names_is_never_imported(hostile, tmp_path, cli_runner, monkeypatch):
    marker = tmp_path / "IMPORTED"
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "boomlib.py").write_text(f"open({str(marker)!r}, 'w').write('imported')\nclass Boom: pass\n")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    names = tmp_path / "names_module.keras"
    _edit_keras_config(hostile / "plain.keras", names, lambda c: _dense(c).__setitem__(
        "kernel_initializer", {"module": "boomlib", "class_name": "Boom", "config": {}, "registered_name": None}))
    fails_cleanly(cli_runner.invoke(cli, ["convert", str(names), "--out", str(tmp_path / "a")]), 2,
                  "'Boom' from the module 'boomlib'", "--custom-objects")
    assert not marker.exists()
    # Python's own builtins, which the .keras loader would look up by name: exit() as an activation.
    exits = tmp_path / "names_exit.keras"
    _edit_keras_config(hostile / "plain.keras", exits, lambda c: _dense(c).__setitem__(
        "activation", {"module": "builtins", "class_name": "function", "config": "exit", "registered_name": "function"}))
    fails_cleanly(cli_runner.invoke(cli, ["convert", str(exits), "--out", str(tmp_path / "b")]), 2,
                  "'exit' from the module 'builtins'")


def test_a_file_whose_content_belies_its_name_is_refused(hostile, tmp_path, cli_runner):
    disguised = tmp_path / "model.keras"
    shutil.copy(hostile / "evil.h5", disguised)  # Keras would load this HDF5 by its content, bypassing safe_mode
    fails_cleanly(cli_runner.invoke(cli, ["convert", str(disguised), "--trust-code"]), 2,
                  "is named .keras but holds a h5 model")
    (tmp_path / "junk.h5").write_bytes(b"not a model at all")
    fails_cleanly(cli_runner.invoke(cli, ["convert", str(tmp_path / "junk.h5")]), 2, "is not a Keras model file")
    assert not (hostile / "MARKER").exists()


def _set_files_record(run: RunDir, name: str) -> None:
    """What an attacker who also edits the manifest does: record the swapped file's hash."""
    path = run.path / name
    run.edit(lambda m: m["files"].__setitem__(name, {"sha256": sha256_of(path), "bytes": path.stat().st_size}))


def test_a_swapped_model_in_a_run_directory_is_refused(hostile, tiny_copy, cli_runner):
    marker, run, target = hostile / "MARKER", str(tiny_copy.path), tiny_copy.keras_path
    shutil.copy(hostile / "evil.keras", target)
    fails_cleanly(cli_runner.invoke(cli, ["convert", run]), 1, "model.keras does not hold the bytes its manifest "
                                                               "records")
    _set_files_record(tiny_copy, "model.keras")  # the hash matches now: the configuration is still read first
    fails_cleanly(cli_runner.invoke(cli, ["convert", run]), 2, "'payload' (Lambda)", "--trust-code")
    shutil.copy(hostile / "evil.h5", target)  # HDF5 under the .keras name, hash recorded
    _set_files_record(tiny_copy, "model.keras")
    fails_cleanly(cli_runner.invoke(cli, ["convert", run, "--trust-code"]), 2, "holds a h5 model")
    target.unlink()
    target.mkdir()
    fails_cleanly(cli_runner.invoke(cli, ["convert", run]), 1, "model.keras is not a file")
    assert not marker.exists()


def test_custom_objects_a_manifest_names_need_the_user(tiny_copy, tmp_path, cli_runner):
    marker = tmp_path / "IMPORTED"
    module = tmp_path / "their_layers.py"
    module.write_text(f"open({str(marker)!r}, 'a').write('imported\\n')\n")
    run = str(tiny_copy.path)

    def names(record: dict) -> None:
        tiny_copy.edit(lambda m: m.setdefault("source", {}).update(record))

    names({"custom_objects": str(module)})  # a copied run whose manifest names code, without its hash
    fails_cleanly(cli_runner.invoke(cli, ["convert", run, "--to", "keras"]), 2,
                  f"--custom-objects {module}", "--trust-code")
    fails_cleanly(cli_runner.invoke(cli, ["convert", run, "--to", "keras", "--trust-code"]), 1,
                  "has no recorded sha256")
    assert not marker.exists()
    names({"custom_objects_sha256": sha256_of(module)})
    _ok(cli_runner.invoke(cli, ["convert", run, "--to", "keras", "--trust-code"]))  # opted in, bytes as recorded
    assert marker.read_text() == "imported\n"
    module.write_text(module.read_text() + "# changed\n")
    fails_cleanly(cli_runner.invoke(cli, ["convert", run, "--to", "keras", "--trust-code"]), 1,
                  "is missing or not the file it was")
    _ok(cli_runner.invoke(cli, ["convert", run, "--to", "keras", "--custom-objects", str(module)]))  # named: the user's
    assert marker.read_text() == "imported\n" * 2


def test_teachers_a_manifest_names_need_the_user(hostile, tiny_copy, tmp_path, cli_runner):
    """``train --resume`` of a copied run that names teachers: refused before anything loads."""
    teacher = tmp_path / "teacher.h5"
    shutil.copy(hostile / "evil.h5", teacher)
    from edgebnn.training.recipes import get_recipe

    tiny_copy.edit(lambda m: m.update(recipe=get_recipe("bireal-tiny").to_dict(), data="digits",
                                      teachers=[{"path": str(teacher), "sha256": sha256_of(teacher)}]))
    run = str(tiny_copy.path)
    fails_cleanly(cli_runner.invoke(cli, ["train", "--resume", run]), 2, f"--teacher {teacher}", "--trust-code")
    fails_cleanly(cli_runner.invoke(cli, ["train", "--resume", run, "--teacher", str(hostile / "evil.keras")]), 2,
                  "must name exactly these")
    teacher.write_bytes(teacher.read_bytes() + b"\0")
    fails_cleanly(cli_runner.invoke(cli, ["train", "--resume", run, "--trust-code"]), 1, "changed since the run started")
    assert not (hostile / "MARKER").exists()


def test_a_run_directory_refuses_another_file_before_loading_it(hostile, tmp_path, cli_runner):
    out = tmp_path / "runs" / "model"
    _ok(cli_runner.invoke(cli, ["convert", str(hostile / "plain.keras"), "--out", str(out)]))
    other = tmp_path / "elsewhere" / "model.h5"
    other.parent.mkdir()
    other.write_bytes(b"junk: a load would say it is damaged")
    result = cli_runner.invoke(cli, ["convert", str(other), "--out", str(out)])
    fails_cleanly(result, 2, "already holds the run of another file", str(hostile / "plain.keras"))
    assert "{" not in result.output


def test_bad_widths_and_a_taken_name_are_refused(tmp_path, cli_runner):
    for args in (["--width", "0"], ["--width", "-1"], ["--model-arg", "width=0"], ["--width", "nan"]):
        fails_cleanly(cli_runner.invoke(cli, ["convert", "bireal-tiny", *args]), 2, "bad --width")
    arch = tmp_path / "arch.py"
    arch.write_text("from edgebnn.registry import register_model\n\n"
                    "@register_model('quicknet', family='user', paper='mine')\n"
                    "def build(*, input_shape, num_classes):\n    raise SystemExit('must never be built')\n")
    fails_cleanly(cli_runner.invoke(cli, ["models", "--model-file", str(arch)]), 2,
                  "'quicknet' is registered twice", "another name")


def test_flatbuffers_of_zeros_are_refused(tmp_path, cli_runner):
    zeros = bytearray(4096)
    (tmp_path / "zeros.tflite").write_bytes(zeros)
    zeros[4:8] = b"TFL3"
    (tmp_path / "ident.tflite").write_bytes(zeros)
    for name in ("zeros", "ident"):
        out = tmp_path / f"run-{name}"
        fails_cleanly(cli_runner.invoke(cli, ["bench", str(tmp_path / f"{name}.tflite"), "--out", str(out)]), 1,
                      "not a TFLite flatbuffer")
        assert not out.exists()


def test_manifest_entries_have_their_types(tiny_copy, cli_runner):
    manifest = tiny_copy.manifest
    tiny_copy.manifest_path.write_text(json.dumps({**manifest, "benchmarks": ["oops"]}))
    fails_cleanly(cli_runner.invoke(cli, ["bench", str(tiny_copy.path)]), 1, "benchmarks[0] should be an object")
    tiny_copy.manifest_path.write_text(json.dumps({**manifest, "files": {**manifest["files"], "model.keras": "abc"}}))
    fails_cleanly(cli_runner.invoke(cli, ["convert", str(tiny_copy.path)]), 1, "files['model.keras'] should be")


def test_built_runs_get_ordinary_permissions(tmp_path, cli_runner):
    old = os.umask(0o022)
    try:
        _ok(cli_runner.invoke(cli, ["convert", "bireal-tiny", "--out", str(tmp_path / "run")]))
    finally:
        os.umask(old)
    modes = {p.name: p.stat().st_mode & 0o777 for p in (tmp_path / "run").iterdir() if not p.name.startswith(".")}
    assert (tmp_path / "run").stat().st_mode & 0o777 == 0o755
    assert modes["model.tflite"] == modes["model.keras"] == modes["manifest.json"] == 0o644, modes


def test_a_zoo_backbone_under_a_head_saved_as_h5_gets_advice_that_works(tmp_path, cli_runner):
    import larq_zoo as lqz
    import tf_keras as keras

    base = lqz.sota.QuickNetSmall(input_shape=(32, 32, 3), include_top=False, weights=None)
    head = keras.layers.Dense(10)(keras.layers.GlobalAveragePooling2D()(base.output))
    keras.Model(base.input, head).save(tmp_path / "mine.h5")
    fails_cleanly(cli_runner.invoke(cli, ["convert", str(tmp_path / "mine.h5")]), 2,
                  "'blurpool_initializer'", "save the model as .keras")


EDGEBNN = str(Path(sys.executable).with_name("edgebnn"))


def test_two_trainings_into_one_directory_take_turns(tmp_path, cli_runner):
    out, log = tmp_path / "run", open(tmp_path / "first.log", "w+")
    first = subprocess.Popen([EDGEBNN, "train", "bireal-tiny", "--data", "digits", "--epochs", "50", "--quiet",
                              "--out", str(out)], stdout=log, stderr=subprocess.STDOUT)
    try:
        # Its manifest is written once data and model have loaded, right before the first epoch.
        wait_for(lambda: (out / "manifest.json").exists(), timeout=300, what="the first training starts")
        assert (out / ".train.lock").read_text().strip() == str(first.pid)
        fails_cleanly(cli_runner.invoke(cli, ["train", "bireal-tiny", "--data", "digits", "--epochs", "1",
                                              "--out", str(out)]), 2,
                      "is being trained by another edgebnn process", f"pid {first.pid}")
        # Its Ctrl-C handler is in place once fit() has begun (TensorBoard makes its folder then).
        wait_for(lambda: (out / "logs" / "tensorboard").exists(), timeout=300, what="the first training's fit")
    finally:
        first.send_signal(signal.SIGINT)
        first.wait(timeout=120)
    log.seek(0)
    assert first.returncode == 1 and "interrupted" in log.read()
    # The lock went with its process: the run is there to resume, by anyone, at once.
    fails_cleanly(cli_runner.invoke(cli, ["train", "bireal-tiny", "--data", "digits", "--out", str(out)]), 2,
                  "holds an unfinished run")


def test_a_full_disk_during_training_is_named(tmp_path, cli_runner):
    with small_tmpfs(tmp_path / "disk", kib=160) as disk:
        result = cli_runner.invoke(cli, ["train", "bireal-tiny", "--data", "digits", "--epochs", "2", "--quiet",
                                         "--out", str(disk / "run")])
    fails_cleanly(result, 1, "is full", "free some space there", "edgebnn train --resume")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(pytest.main([__file__]))
