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


@pytest.mark.parametrize("args, message", [
    (["train", "no-such-model"], "unknown model"),
    (["train", "--resume", "/nonexistent/run"], "no run directory at"),
    (["evaluate", "quicknet"], "is a model name: give its weights"),
    (["evaluate", "/nonexistent/run", "--data", "digits"], "no run directory or model file"),
    (["quickstart", "--epochs", "-1"], "must be positive"),
])
def test_bad_input_is_refused_before_tensorflow_loads(args, message):
    code = ("import sys; from click.testing import CliRunner; from edgebnn.cli import cli; "
            f"r = CliRunner().invoke(cli, {args!r}); "
            f"assert r.exit_code == 2 and {message!r} in r.output, r.output; "
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


@pytest.fixture
def warm_cache(tmp_path, monkeypatch):
    """A statistics cache holding every registered model at its defaults, under the keys
    ``card_stats`` reads (built here: computing them all takes minutes)."""
    from edgebnn.models.stats import cache_key, cache_path
    from edgebnn.registry import list_models

    monkeypatch.setenv("EDGEBNN_CACHE", str(tmp_path / "cache"))
    stats = {"params": 11_700_000, "binary_params": 10_000_000, "float_params": 1_700_000, "binary_mac_share": 0.924}
    path = cache_path()
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({cache_key(card): stats for card in list_models()}))
    return path


def test_models_answers_from_a_warm_cache_without_tensorflow(warm_cache):
    code = ("import sys; from click.testing import CliRunner; from edgebnn.cli import cli; "
            "r = CliRunner().invoke(cli, ['models']); assert r.exit_code == 0, r.output; "
            "assert 'quicknet' in r.output and 'sabnn-r18' in r.output; "
            "print(sorted(m for m in ('tensorflow', 'tf_keras', 'larq') if m in sys.modules))")
    found = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert found.stdout.strip() == "[]", found.stderr


@pytest.mark.parametrize("columns", [100, 160])
def test_models_keeps_a_row_on_one_line(warm_cache, cli_runner, columns):
    from edgebnn.registry import list_models

    result = cli_runner.invoke(cli, ["models"], env={"COLUMNS": str(columns)})
    assert result.exit_code == 0, result.output
    lines = result.stdout.rstrip("\n").splitlines()
    assert len(lines) == 1 + len(list_models()), result.stdout
    assert max(len(line.rstrip()) for line in lines) <= columns
    row = next(line for line in lines if line.split()[0] == "sabnn-r18")
    assert "Liu AAAI 2021" in row and "11.70" in row and "92.4%" in row


def test_the_statistics_cache_follows_the_model_file_s_content(tmp_path, cli_runner, monkeypatch):
    monkeypatch.setenv("EDGEBNN_CACHE", str(tmp_path / "cache"))
    arch = tmp_path / "arch.py"
    source = '''
from edgebnn.registry import register_model

@register_model("cached-tiny", family="mine", paper="me", input_shape=(8, 8, 1), num_classes=2)
def cached_tiny(*, input_shape, num_classes):
    import tf_keras as keras
    inputs = keras.Input(input_shape)
    x = keras.layers.Flatten()(keras.layers.Conv2D({filters}, 3)(inputs))
    return keras.Model(inputs, keras.layers.Dense(num_classes)(x))
'''
    params = []
    for filters in (4, 8):
        arch.write_text(source.format(filters=filters))
        result = cli_runner.invoke(cli, ["models", "cached-tiny", "--model-file", str(arch), "--json"])
        assert result.exit_code == 0, result.output
        params.append(json.loads(result.stdout)[0]["stats"]["params"])
    assert params == [4 * 10 + 36 * 4 * 2 + 2, 8 * 10 + 36 * 8 * 2 + 2]
