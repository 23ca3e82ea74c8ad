import json
import subprocess
import sys
from pathlib import Path

import pytest
from faults import fails_cleanly

from edgebnn.cli import cli

README = Path(__file__).resolve().parents[1] / "README.md"


def test_help_does_not_import_tensorflow():
    code = (
        "import sys; from click.testing import CliRunner; from edgebnn.cli import cli; "
        "r1 = CliRunner().invoke(cli, ['--help']); r2 = CliRunner().invoke(cli, ['models', '--help']); "
        "assert r1.exit_code == 0 and r2.exit_code == 0; "
        "assert 'tensorflow' not in sys.modules, 'tensorflow was imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize("name", sorted(cli.commands))
def test_every_command_has_help_and_is_in_the_readme(name, cli_runner):
    result = cli_runner.invoke(cli, [name, "--help"])
    assert result.exit_code == 0
    assert cli.commands[name].help
    assert f"edgebnn {name}" in README.read_text()


def test_unknown_model(cli_runner):
    result = cli_runner.invoke(cli, ["convert", "quiknet-smal", "--to", "tflite"])
    fails_cleanly(result, 2, "unknown model 'quiknet-smal'", "quicknet-small")


def test_unknown_target_writes_nothing(cli_runner, tmp_path):
    result = cli_runner.invoke(cli, ["convert", "bireal-tiny", "--to", "onnx", "--out", str(tmp_path / "r")])
    fails_cleanly(result, 2, "unknown target 'onnx'")
    assert not (tmp_path / "r").exists()


def test_unknown_device(cli_runner, tmp_path):
    result = cli_runner.invoke(cli, ["bench", "bireal-tiny", "--device", "pi5", "--out", str(tmp_path / "r")])
    fails_cleanly(result, 2, "unknown device 'pi5'")
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("args", [["convert", "{nope}"], ["bench", "{nope}"], ["evaluate", "{nope}"],
                                  ["report", "{nope}"], ["compare", "{nope}", "{nope}"],
                                  ["train", "--resume", "{nope}"]])
def test_one_exit_code_for_a_missing_run_directory(cli_runner, tmp_path, args):
    """Exit 2 for what was typed wrong (a path that is not there), in every command alike."""
    args = [a.format(nope=tmp_path / "nope") for a in args]
    fails_cleanly(cli_runner.invoke(cli, args), 2, "nope")


@pytest.mark.parametrize("args, fragment", [
    (["--min-secs", "nan"], "bad --min-secs nan"), (["--timeout", "nan"], "bad --timeout nan"),
    (["--max-secs", "inf"], "bad --max-secs inf"), (["--cooldown", "-1"], "bad --cooldown -1"),
    (["--cooldown", "nan"], "bad --cooldown nan"), (["--runs", "0"], "bad --runs 0"),
])
def test_bench_numbers_are_validated_before_anything_runs(cli_runner, tmp_path, args, fragment):
    result = cli_runner.invoke(cli, ["bench", "bireal-tiny", "--out", str(tmp_path / "r"), *args])
    fails_cleanly(result, 2, fragment)
    assert not (tmp_path / "r").exists()


def test_unknown_model_is_refused_before_tensorflow_loads():
    code = ("import sys; from click.testing import CliRunner; from edgebnn.cli import cli; "
            "r = CliRunner().invoke(cli, ['train', 'no-such-model']); "
            "assert r.exit_code == 2 and 'unknown model' in r.output, r.output; "
            "assert 'tensorflow' not in sys.modules, 'tensorflow was imported'")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_a_builder_s_refusal_is_a_usage_error():
    from edgebnn.errors import UsageError
    from edgebnn.registry import create_model

    with pytest.raises(UsageError, match="unknown padding 'two'"):
        create_model("bnext-tiny", input_shape=(32, 32, 3), padding="two")


def test_missing_and_malformed_run_directory(cli_runner, tmp_path):
    fails_cleanly(cli_runner.invoke(cli, ["convert", str(tmp_path / "nope")]), 2, "no run directory")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "manifest.json").write_text("[1, 2")
    fails_cleanly(cli_runner.invoke(cli, ["bench", str(tmp_path / "bad")]), 1, "malformed")


def test_unwritable_out(cli_runner, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    result = cli_runner.invoke(cli, ["train", "bireal-tiny", "--epochs", "1", "--out", str(blocker / "run")])
    fails_cleanly(result, 1, "cannot write the run directory")


def test_bad_threads(cli_runner, tiny_run):
    fails_cleanly(cli_runner.invoke(cli, ["bench", str(tiny_run.path), "--threads", "0,x"]), 2, "bad --threads")


def test_debug_shows_the_traceback(cli_runner):
    result = cli_runner.invoke(cli, ["--debug", "convert", "quiknet", "--to", "tflite"])
    assert result.exit_code != 0
    assert result.exception is not None


def test_models_json(cli_runner, tmp_path, monkeypatch):
    monkeypatch.setenv("EDGEBNN_CACHE", str(tmp_path))
    result = cli_runner.invoke(cli, ["models", "bireal-tiny", "--json"])
    assert result.exit_code == 0, result.output
    (row,) = json.loads(result.stdout)
    assert row["name"] == "bireal-tiny"
    assert row["stats"]["binary_mac_share"] > 0.9
    assert row["stats"]["binary_params"] > row["stats"]["float_params"]


def test_doctor(cli_runner):
    result = cli_runner.invoke(cli, ["doctor"])
    assert result.exit_code == 0, result.output
    assert "ok   LCE converter + interpreter" in result.output
