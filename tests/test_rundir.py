import json

import pytest

from edgebnn import atomic
from edgebnn.errors import EdgebnnError
from edgebnn.run.rundir import RunDir


def test_manifest_round_trip_records_versions(tmp_path):
    run = RunDir.create(tmp_path / "r", {"model": "bireal-tiny"})
    run.update(metrics={"val_accuracy": 0.9})
    manifest = RunDir.open(tmp_path / "r").manifest
    assert manifest["model"] == "bireal-tiny"
    assert manifest["metrics"]["val_accuracy"] == 0.9
    assert manifest["versions"]["larq-compute-engine"] == "0.16.0"


def test_missing_and_malformed_run_directories(tmp_path):
    with pytest.raises(EdgebnnError, match="no run directory"):
        RunDir.open(tmp_path / "absent")
    (tmp_path / "empty").mkdir()
    with pytest.raises(EdgebnnError, match="not a run directory"):
        RunDir.open(tmp_path / "empty")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "manifest.json").write_text("{not json")
    with pytest.raises(EdgebnnError, match="malformed"):
        RunDir.open(tmp_path / "bad")


def test_atomic_write_leaves_old_file_on_failure(tmp_path):
    target = tmp_path / "model.tflite"
    atomic.write_bytes(target, b"old")
    with pytest.raises(RuntimeError):
        with atomic.atomic_path(target) as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("interrupted")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["model.tflite"]


def test_unwritable_directory_is_a_clear_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(EdgebnnError, match="cannot write the run directory"):
        RunDir.create(blocker / "run", {"model": "x"})


def test_json_written_atomically(tmp_path):
    atomic.write_json(tmp_path / "a.json", {"x": 1})
    assert json.loads((tmp_path / "a.json").read_text()) == {"x": 1}


def test_atomic_writes_get_ordinary_permissions(tmp_path):
    import os

    atomic.write_bytes(tmp_path / "a.bin", b"x")
    umask = os.umask(0)
    os.umask(umask)
    assert (tmp_path / "a.bin").stat().st_mode & 0o777 == 0o666 & ~umask


def test_the_resume_hint_of_an_unfinished_run_pastes_as_it_reads(tmp_path, cli_runner):
    """An odd run name (a space, a $) in the suggested command reaches the shell as that one path."""
    import shlex

    from edgebnn.cli import cli

    path = tmp_path / "my run $HOME"
    RunDir.create(path, {"model": "bireal-tiny", "data": "digits", "status": "interrupted"})
    result = cli_runner.invoke(cli, ["evaluate", str(path)])
    assert result.exit_code == 1 and "the training run did not finish" in result.output, result.output
    suggested = result.output.split("`")[1]
    assert shlex.split(suggested) == ["edgebnn", "train", "--resume", str(path)]
