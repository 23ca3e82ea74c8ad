"""Faults, interruptions, concurrency and hostile input, each reproduced for real: a signal to a
real process, a real tmpfs that fills, real concurrent processes, the real sshd board."""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from faults import fails_cleanly, processes, small_tmpfs, wait_for
from sshd import sshd  # noqa: F401  (fixture)

from edgebnn.cli import cli
from edgebnn.run.rundir import RunDir, sha256_of

EDGEBNN = str(Path(sys.executable).with_name("edgebnn"))


def edgebnn(*args, **kwargs) -> subprocess.Popen:
    """``edgebnn ARGS`` as its own process (so that it can be signalled as a user would)."""
    return subprocess.Popen([EDGEBNN, *map(str, args)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            **kwargs)


def finished(proc: subprocess.Popen, timeout: float = 300) -> tuple[int, str]:
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out + err


# -- 1. an ssh:// URL names nothing on this machine ---------------------------------------------
@pytest.mark.parametrize("query, fragment", [
    ("transport=local&runtime=/bin/echo", "'transport' cannot be set in an ssh:// URL"),
    ("runtime_file=/etc/passwd", "'runtime_file' cannot be set in an ssh:// URL"),
    ("known_hosts=/dev/null", "'known_hosts' cannot be set"), ("ssh_config=/tmp/x", "'ssh_config' cannot be set"),
    ("board=false", "'board' cannot be set"), ("host=", "give user, host and port in the URL itself"),
    ("port=", "give user, host and port in the URL itself"), ("threads=2.9", "bad threads '2.9'"),
    ("workdir=work", "bad workdir 'work'"), ("colour=red", "unknown setting 'colour'"),
])
def test_a_url_may_set_only_board_side_fields(cli_runner, tmp_path, query, fragment):
    result = cli_runner.invoke(cli, ["bench", "bireal-tiny", "--out", str(tmp_path / "r"),
                                     "--device", f"ssh://u@127.0.0.1:9?{query}"])
    fails_cleanly(result, 2, fragment)
    assert not (tmp_path / "r").exists()


def test_an_uploaded_runtime_must_match_the_board_s_architecture(sshd, tmp_path, cli_runner):  # noqa: F811
    from test_ssh import fake_run

    run = fake_run(tmp_path)
    arm = tmp_path / "lce_benchmark_model"  # an aarch64 ELF header: the OpenSSH board is x86_64
    arm.write_bytes(b"\x7fELF\x02\x01\x01" + bytes(9) + (2).to_bytes(2, "little") + (183).to_bytes(2, "little")
                    + bytes(44))
    devices = tmp_path / "devices.toml"
    devices.write_text(sshd.toml("loopback", runtime_file=str(arm)))
    result = cli_runner.invoke(cli, ["bench", str(run.path), "--device", "loopback", "--devices-file", str(devices),
                                     "--runs", "1", "--min-secs", "0"])
    assert result.exit_code == 1 and "is built for aarch64, loopback is x86_64" in result.output, result.output
    record = json.loads(next((run.path / "bench").glob("*.json")).read_text())
    assert record["error_kind"] == "preflight" and not record["uploads"]


# -- 2. an interrupted convert NAME never wedges its run directory --------------------------------
@pytest.mark.parametrize("after", [3.0, 6.0])
def test_convert_name_killed_midway_leaves_nothing_half_made(tmp_path, after):
    out = tmp_path / "runs" / "tiny"
    proc = edgebnn("convert", "bireal-tiny", "--out", out)
    time.sleep(after)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not out.exists() or RunDir(out).is_complete()
    assert not list(out.glob(".model.*")) if out.exists() else True
    code, output = finished(edgebnn("convert", "bireal-tiny", "--out", out))
    assert code == 0, output
    assert RunDir(out).is_complete() and (out / "model.tflite").exists()
    assert not list(out.glob(".*.tmp*")) and not list(out.parent.glob(".tiny.*"))


def test_a_half_made_run_of_an_older_version_is_made_again(tmp_path, cli_runner):
    out = tmp_path / "tiny"
    out.mkdir()
    (out / "manifest.json").write_text(json.dumps({"model": "bireal-tiny", "weights": "random", "files": {}}))
    (out / ".model.abc123.tmp.keras").write_bytes(b"half a zip")
    result = cli_runner.invoke(cli, ["convert", "bireal-tiny", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert RunDir(out).is_complete() and not list(out.glob(".model.*"))


def test_convert_on_a_full_disk_says_so_and_leaves_nothing(tmp_path, cli_runner):
    with small_tmpfs(tmp_path / "disk", kib=256) as disk:
        result = cli_runner.invoke(cli, ["convert", "bireal-tiny", "--out", str(disk / "tiny")])
        leftovers = sorted(p.name for p in disk.iterdir())
    fails_cleanly(result, 1, "No space left on device", "free some space there or choose another --out")
    assert leftovers == []


# -- 3. an interrupted bench ends its runtime, locally and on the board ----------------------------
def _long_bench(run: RunDir, devices: Path, device: str) -> subprocess.Popen:
    return edgebnn("bench", run.path, "--device", device, "--devices-file", devices, "--runs", "1000000",
                   "--min-secs", "120", "--max-secs", "120", "--timeout", "300", "--warmup", "0")


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL], ids=["SIGINT", "SIGKILL"])
@pytest.mark.parametrize("board", ["local", "loopback"])
def test_no_runtime_survives_an_interrupted_bench(tiny_run, sshd, tmp_path, sig, board):  # noqa: F811
    workdir = tmp_path / "work"
    devices = tmp_path / "devices.toml"
    devices.write_text(f'[devices.local]\nworkdir = "{workdir}"\n' if board == "local"
                       else sshd.toml("loopback", workdir=str(workdir)))
    marker = f"--graph={workdir}/models/"
    proc = _long_bench(tiny_run, devices, board)
    try:
        wait_for(lambda: processes(marker) or proc.poll() is not None, timeout=120, what="the runtime did not start")
        assert proc.poll() is None, finished(proc)
        proc.send_signal(sig)
        proc.wait(timeout=30)
        wait_for(lambda: not processes(marker), timeout=5, what=f"a runtime survived {sig.name}")
        wait_for(lambda: not list(workdir.glob("run-*")), timeout=5, what="the scratch folder was left")
    finally:
        proc.kill()
        for pid in processes(marker):
            os.kill(pid, signal.SIGKILL)
    if sig == signal.SIGINT:  # what was measured so far is kept, and the run says it stopped
        assert proc.returncode != 0


# -- 4. concurrent benches keep every result --------------------------------------------------------
def test_concurrent_benches_keep_both_results(tiny_run, tmp_path):
    before = len(tiny_run.manifest["benchmarks"] if "benchmarks" in tiny_run.manifest else [])
    procs = [edgebnn("bench", tiny_run.path, "--runs", "3", "--min-secs", "0", "--warmup", "0") for _ in range(2)]
    for proc in procs:
        code, output = finished(proc)
        assert code == 0, output
    entries = tiny_run.manifest["benchmarks"][before:]
    files = {e["file"] for e in entries}
    assert len(entries) == 2 and len(files) == 2, entries
    assert all((tiny_run.path / f).exists() for f in files)


# -- 5. convert is transactional; bench checks the flatbuffer it is given ----------------------------
def test_bench_refuses_a_flatbuffer_the_manifest_does_not_describe(tiny_copy, cli_runner):
    data = tiny_copy.tflite_path.read_bytes()
    tiny_copy.tflite_path.write_bytes(data[: len(data) // 2])  # truncated
    before = sorted(tiny_copy.path.glob("bench/*.json"))
    result = cli_runner.invoke(cli, ["bench", str(tiny_copy.path), "--runs", "1"])
    fails_cleanly(result, 1, "is not the flatbuffer the manifest records", "edgebnn convert")
    assert sorted(tiny_copy.path.glob("bench/*.json")) == before


@pytest.mark.parametrize("after", [4.0, 7.0])
def test_an_interrupted_reconvert_leaves_artifact_and_manifest_agreeing(tiny_copy, after):
    proc = edgebnn("convert", tiny_copy.path, "--int8", "--data", "digits")
    time.sleep(after)
    proc.send_signal(signal.SIGINT)
    proc.wait(timeout=120)
    recorded = tiny_copy.manifest["files"]["model.tflite"]["sha256"]
    assert sha256_of(tiny_copy.tflite_path) == recorded
    assert tiny_copy.manifest["conversion"]["int8"] == (proc.returncode == 0)


def test_a_reconvert_on_a_full_disk_changes_nothing(tmp_path, cli_runner):
    with small_tmpfs(tmp_path / "disk", kib=6 * 1024) as disk:
        out = disk / "tiny"
        assert cli_runner.invoke(cli, ["convert", "bireal-tiny", "--out", str(out)]).exit_code == 0
        manifest, flatbuffer = (out / "manifest.json").read_bytes(), (out / "model.tflite").read_bytes()
        free = os.statvfs(disk).f_bavail * os.statvfs(disk).f_frsize
        (disk / "filler").write_bytes(b"x" * max(0, free - 8 * 1024))  # room for the lock, not for a flatbuffer
        result = cli_runner.invoke(cli, ["convert", str(out), "--to", "tflite-float"])
        after = (out / "manifest.json").read_bytes(), (out / "model.tflite").read_bytes()
        leftovers = sorted(p.name for p in out.iterdir() if p.name.startswith(".") and p.name != ".lock")
    fails_cleanly(result, 1, "No space left on device")
    assert after == (manifest, flatbuffer) and leftovers == []


# -- 6. a known_hosts that cannot be read is an error, never "no entry" ------------------------------
@pytest.mark.parametrize("kind", ["directory", "undecodable"])
def test_an_unreadable_known_hosts_is_refused(sshd, tmp_path, cli_runner, kind):  # noqa: F811
    known = tmp_path / "known_hosts"
    if kind == "directory":
        known.mkdir()
    else:
        known.write_bytes(b"\xff\xfe\x00 not text\n")
    before = known.read_bytes() if known.is_file() else None
    devices = tmp_path / "devices.toml"
    devices.write_text(sshd.toml("loopback", known_hosts=str(known)))
    result = cli_runner.invoke(cli, ["devices", "check", "loopback", "--devices-file", str(devices),
                                     "--accept-new-host-key"])
    fails_cleanly(result, 1, f"cannot read the known_hosts file {known}")
    assert (known.read_bytes() if known.is_file() else None) == before


# -- 7. workdir: absolute, and names that sha256sum escapes still upload -----------------------------
@pytest.mark.parametrize("workdir", ["work", "~/x", "/tmp/a\nb"])
def test_a_workdir_must_be_an_absolute_path(tmp_path, cli_runner, workdir):
    devices = tmp_path / "devices.toml"
    devices.write_text(f"[devices.pi]\nhost = \"127.0.0.1\"\nworkdir = {json.dumps(workdir)}\n")
    result = cli_runner.invoke(cli, ["bench", "bireal-tiny", "--out", str(tmp_path / "r"), "--device", "pi",
                                     "--devices-file", str(devices)])
    fails_cleanly(result, 2, "bad workdir", "absolute path")


def test_a_backslash_in_the_workdir_uploads_and_runs(sshd, tmp_path, cli_runner):  # noqa: F811
    from test_ssh import fake_run, printing_tool

    run = fake_run(tmp_path)
    devices = tmp_path / "devices.toml"
    devices.write_text(sshd.toml("loopback", workdir=str(tmp_path / "we\\ird"), runtime=printing_tool(tmp_path / "rt")))
    result = cli_runner.invoke(cli, ["bench", str(run.path), "--device", "loopback", "--devices-file", str(devices),
                                     "--runs", "3", "--min-secs", "0", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["results"][0]["ok"]


# -- 8. every devices-file field is validated once, naming the field and what is allowed --------------
@pytest.mark.parametrize("line, fragment", [
    ("port = 99999", "bad port 99999"), ("port = -1", "bad port -1"), ("port = true", "bad port True"),
    ("threads = [2.9]", "bad threads [2.9]"), ("threads = []", "bad threads []"), ('user = ["a", "b"]', "bad user"),
    ('transport = "telnet"', "bad transport 'telnet'"), ("cooldown = -1.0", "bad cooldown -1.0"),
    ("cooldown = nan", "bad cooldown nan"), ("connect_timeout = 0", "bad connect_timeout 0"),
    ('board = "yes"', "bad board 'yes'"),
])
def test_devices_file_fields_are_validated(tmp_path, cli_runner, line, fragment):
    devices = tmp_path / "devices.toml"
    devices.write_text(f"[devices.pi]\nhost = \"127.0.0.1\"\n{line}\n")
    result = cli_runner.invoke(cli, ["devices", "--devices-file", str(devices)])
    fails_cleanly(result, 2, fragment, "for device 'pi'")


def test_a_devices_file_that_is_a_directory(tmp_path, cli_runner, tiny_run, monkeypatch):
    result = cli_runner.invoke(cli, ["bench", str(tiny_run.path), "--device", "local", "--devices-file", str(tmp_path)])
    fails_cleanly(result, 2, "is a directory")  # click refuses it for the option
    default = tmp_path / "config" / "edgebnn" / "devices.toml"
    default.mkdir(parents=True)  # the default location, which click does not check
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.delenv("EDGEBNN_DEVICES_FILE", raising=False)
    result = cli_runner.invoke(cli, ["bench", str(tiny_run.path), "--device", "local", "--runs", "1"])
    fails_cleanly(result, 2, f"cannot read the devices file {default}")


# -- 9. smaller: wrong-shaped manifests, quoted fix commands, report input -----------------------------
def test_a_wrong_shaped_manifest_section_is_named_before_anything_is_written(tiny_copy, cli_runner):
    flatbuffer = tiny_copy.tflite_path.read_bytes()
    manifest = json.loads(tiny_copy.manifest_path.read_text())
    tiny_copy.manifest_path.write_text(json.dumps({**manifest, "benchmarks": "oops"}))
    for args in (["convert", str(tiny_copy.path)], ["bench", str(tiny_copy.path)], ["evaluate", str(tiny_copy.path)]):
        fails_cleanly(cli_runner.invoke(cli, args), 1, "section 'benchmarks' should be a list")
    assert tiny_copy.tflite_path.read_bytes() == flatbuffer


def test_suggested_commands_are_quoted(tmp_path, cli_runner):
    odd = tmp_path / "odd; touch pwned"
    (odd / "checkpoints").mkdir(parents=True)
    (odd / "checkpoints" / "state.json").write_text(json.dumps({"epoch": 1, "step": 0}))
    result = cli_runner.invoke(cli, ["train", "bireal-tiny", "--out", str(odd)])
    fails_cleanly(result, 2, f"`edgebnn train --resume {shlex.quote(str(odd))}`")


def test_report_lists_what_it_cannot_use_and_keeps_its_tables_whole(tiny_copy, tmp_path, cli_runner):
    (tiny_copy.path / "bench").mkdir(exist_ok=True)
    (tiny_copy.path / "bench" / "list.json").write_text("[1, 2]")
    odd = tmp_path / "two\nlines"
    odd.mkdir()
    (odd / "manifest.json").write_text(json.dumps({"model": "bireal-tiny"}))
    result = cli_runner.invoke(cli, ["report", str(tiny_copy.path), str(odd)])
    assert result.exit_code == 0, result.output
    assert "bench/list.json is not a bench record (a JSON list)" in result.output
    rows = [line for line in result.output.splitlines() if line.startswith("| ")]
    assert rows and all(line.endswith("|") for line in rows)
    assert any("two lines" in line for line in rows)
