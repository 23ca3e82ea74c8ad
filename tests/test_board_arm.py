"""The whole protocol on the emulated aarch64 board (tests/armboard.py): dropbear, BusyBox, no
bash, no getconf, no SFTP. edgebnn's real paths (the CLI, ``bench_device``) against it; the
runtimes are BusyBox shell scripts standing in for lce_benchmark_model (``#!<board>/bin/sh``, so
they run in the aarch64 shell). The board's processes are this machine's, so a test looks for
what is left running with ``pgrep``.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from armboard import armboard  # noqa: F401  (fixture)
from faults import processes, wait_for
from sshd import TOOL, DroppingProxy, sshd, toml_table  # noqa: F401  (fixture)
from test_ssh import _aarch64_elf, devices_file, fake_run, printing_tool, release_server  # noqa: F401  (fixture)

from edgebnn.cli import cli
from edgebnn.device.protocol import BenchConfig, bench_device

FAST = dict(runs=3, warmup=1, min_secs=0.0, timeout=60)
EDGEBNN = str(Path(sys.executable).with_name("edgebnn"))


def bench(profile, graph, threads=(1,), **kw):
    configs = [BenchConfig(threads=t, **{**FAST, **kw}) for t in threads]
    return asyncio.run(bench_device(profile, graph, configs))


def scratch_left(profile) -> list[str]:
    return [p.name for p in Path(profile.workdir).glob("run-*")]


# -- 1. devices check: what the board tells, and `-` for what it cannot -------------------------
def test_devices_check_on_the_board(armboard, tmp_path, cli_runner):  # noqa: F811
    listing = devices_file(tmp_path, armboard.toml("arm"))
    result = cli_runner.invoke(cli, ["devices", "check", "arm", "--devices-file", str(listing)])
    assert result.exit_code == 0, result.output
    lines = dict(line.split(None, 1) for line in result.stdout.splitlines() if line.strip())
    assert "aarch64" in lines["os"] and "(--bit)" in lines["os"]  # no getconf: the word size is unknown
    assert f"({os.cpu_count()} cores)" in lines["cpu"]
    assert lines["governor"].startswith("- at - / - MHz") and lines["temperature"] == "-"
    assert "MB free of" in lines["memory"] and lines["disk"].endswith(f"MB free in {armboard.workdir / 'arm'}")
    assert "(executable)" in lines["runtime"]
    assert "None" not in result.output
    assert "note: arm did not tell: OS word size (no getconf) (shown as -)" in result.stderr
    as_json = json.loads(cli_runner.invoke(cli, ["devices", "check", "arm", "--devices-file", str(listing),
                                                 "--json"]).stdout)
    fp = as_json["fingerprint"]
    assert fp["arch"] == "aarch64" and fp["os_bits"] is None and fp["tools"] == dict.fromkeys(fp["tools"], True)
    assert as_json["errors"] == []
    missing = devices_file(tmp_path, armboard.toml("arm", runtime="/nowhere/lce_benchmark_model"))
    result = cli_runner.invoke(cli, ["devices", "check", "arm", "--devices-file", str(missing)])
    assert result.exit_code == 1 and "runtime '/nowhere/lce_benchmark_model' not found on arm" in result.output


# -- 2. bench with a stand-in: flags reach it, uploads without SFTP are reused, scratch removed -----
def test_bench_on_the_board(armboard, tmp_path, cli_runner):  # noqa: F811
    seen = tmp_path / "args"
    tool = armboard.stand_in(f'echo "$@" > {seen}\ncat <<\'EOF\'\n{TOOL}EOF\n')
    run = fake_run(tmp_path)
    listing = devices_file(tmp_path, armboard.toml("arm", runtime=tool))
    args = ["bench", str(run.path), "--device", "arm", "--devices-file", str(listing), "--runs", "3",
            "--warmup", "2", "--min-secs", "0", "--use-xnnpack", "--json"]
    first = cli_runner.invoke(cli, args)
    assert first.exit_code == 0, first.output
    record = json.loads(first.stdout)
    assert record["ok"] and record["figure_kind"] == "board" and record["connections"] == 1
    (result,) = record["results"]
    assert result["ok"] and result["valid"] and result["latency"]["mean_ms"] == 1.65025
    assert result["latency"]["peak_memory_mb"] == 9.5 and result["figures"]["timed"]["count"] == 600
    assert record["fingerprint"]["arch"] == "aarch64" and record["runtime"]["path"] == tool
    flags = seen.read_text().split()
    assert flags[0] == f"--graph={record['uploads']['model']['path']}"
    assert {"--num_threads=1", "--num_runs=3", "--warmup_runs=2", "--use_xnnpack=true",
            "--report_peak_memory_footprint=true"} <= set(flags)
    model = Path(record["uploads"]["model"]["path"])  # uploaded with sh + cat, no SFTP on the board
    assert record["uploads"]["model"]["uploaded"] and model.read_bytes() == run.tflite_path.read_bytes()
    second = json.loads(cli_runner.invoke(cli, args).stdout)
    assert second["ok"] and not second["uploads"]["model"]["uploaded"]
    assert sorted(p.name for p in (armboard.workdir / "arm").iterdir()) == ["models"]  # no scratch folder left


# -- 2b. bench --tune: every swept setting reaches the runtime, a cluster's pinning too ------------
def test_tune_on_the_board_reaches_the_runtime_with_each_setting(armboard, tmp_path, cli_runner, monkeypatch):  # noqa: F811
    import edgebnn.device.protocol as protocol
    from edgebnn.device.tune import cpu_list

    seen = tmp_path / "calls"  # one line per run: the CPUs it may use, then its flags
    body = f'echo "$(grep Cpus_allowed_list /proc/self/status | cut -f2) $*" >> {seen}\ncat <<\'EOF\'\n{TOOL}EOF\n'
    listing = devices_file(tmp_path, armboard.toml("arm", runtime=armboard.stand_in(body)))
    # The emulated board's sysfs is this machine's: let it report two clusters (CPU 0 little, CPU 1 big).
    real = protocol.parse_preflight
    monkeypatch.setattr(protocol, "parse_preflight", lambda text: {**real(text), "cores": 2, "cpu_capacity": [512, 1024]})
    run = fake_run(tmp_path)
    result = cli_runner.invoke(cli, ["bench", str(run.path), "--device", "arm", "--devices-file", str(listing),
                                     "--tune", "--runs", "3", "--warmup", "0", "--min-secs", "0", "--cooldown", "0",
                                     "--json"])
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout)
    calls = [line.split() for line in seen.read_text().splitlines()]
    swept = [(r["config"]["affinity"], r["config"]["threads"], r["config"]["indirect_bgemm"], r["config"]["xnnpack"])
             for r in record["results"]]
    assert len(calls) == len(swept) == 12 and all(r["ok"] for r in record["results"])  # (CPU 0, CPU 1, both) x 2 x 2
    for (affinity, threads, indirect, xnnpack), (cpus, *flags) in zip(swept, calls, strict=True):
        assert f"--num_threads={threads}" in flags
        assert ("--use_indirect_bgemm=true" in flags) == indirect and ("--use_xnnpack=true" in flags) == xnnpack
        assert cpus == (affinity or cpu_list(sorted(os.sched_getaffinity(0))))  # taskset pinned it to its cluster
    assert {a for a, *_ in swept} == {"0", "1", ""} and record["tune"]["index"] is not None
    assert json.loads((run.path / "manifest.json").read_text())["benchmarks"][-1]["tuned"] == record["tune"]["config"]


# -- 3. a hang: killed at the time limit, nothing left running --------------------------------------
def test_hanging_runtime_is_killed_on_the_board(armboard, tmp_path):  # noqa: F811
    marker = "hang-7f3a"
    profile = armboard.profile(runtime=armboard.stand_in("sleep 613\n", name=f"lce_benchmark_model-{marker}"))
    run = bench(profile, fake_run(tmp_path).tflite_path, timeout=3)
    (result,) = run.results
    assert result.error_kind == "timeout" and "killed on the device" in result.error, result.error
    wait_for(lambda: not processes("sleep 613") and not processes(marker), timeout=10,
             what="the hanging runtime was still running on the board")
    assert not scratch_left(profile)


# -- 4. a dropped link mid-upload: reconnect, retry, finish ----------------------------------------
def test_dropped_connection_mid_upload_reconnects(armboard, tmp_path):  # noqa: F811
    graph = tmp_path / "big.tflite"
    graph.write_bytes(os.urandom(3 << 20))
    proxy = DroppingProxy(armboard.port, limit=1 << 20)  # cut the first connection 1 MB into the upload
    known = tmp_path / "known_hosts"
    known.write_text(armboard.known_hosts.read_text().replace(f":{armboard.port} ", f":{proxy.port} "))
    profile = armboard.profile(port=proxy.port, known_hosts=str(known))
    try:
        run = bench(profile, graph)
    finally:
        proxy.close()
    assert run.ok, (run.error, [r.error for r in run.results])
    assert run.uploads["model"]["attempts"] == 2 and run.connections == 2
    remote = Path(run.uploads["model"]["path"])
    assert hashlib.sha256(remote.read_bytes()).hexdigest() == run.uploads["model"]["sha256"]
    assert not list(remote.parent.glob("*.part.*"))


# -- 5. a fleet: this board and the OpenSSH one in one bench ----------------------------------------
def test_fleet_of_the_arm_board_and_the_openssh_board(armboard, sshd, tmp_path, cli_runner):  # noqa: F811
    run = fake_run(tmp_path)
    listing = devices_file(tmp_path, armboard.toml("arm") + sshd.toml("loopback", runtime=printing_tool(tmp_path / "rt")))
    result = cli_runner.invoke(cli, ["bench", str(run.path), "--device", "arm,loopback", "--devices-file", str(listing),
                                     "--runs", "3", "--min-secs", "0", "--json"])
    assert result.exit_code == 0, result.output
    arm, loopback = json.loads(result.stdout)
    assert arm["device"] == "arm" and arm["ok"] and arm["fingerprint"]["arch"] == "aarch64"
    assert loopback["device"] == "loopback" and loopback["ok"] and loopback["fingerprint"]["arch"] == "x86_64"
    assert len(list((run.path / "bench").glob("arm-*.json"))) == len(list((run.path / "bench").glob("loopback-*.json"))) == 1


# -- 6. setup checks the runtime against the board's architecture -----------------------------------
def test_setup_checks_the_board_s_architecture(armboard, tmp_path, cli_runner):  # noqa: F811
    listing = devices_file(tmp_path, armboard.toml("arm"))
    setup = ["devices", "setup", "arm", "--devices-file", str(listing), "--runtime"]
    result = cli_runner.invoke(cli, [*setup, "/bin/true"])  # this machine's x86_64 executable
    assert result.exit_code == 1, result.output
    assert "/bin/true is built for x86_64, arm is aarch64 (uname -m: aarch64)" in result.output
    assert "devices setup arm --download" in result.output and not (tmp_path / "devices.setup.json").exists()
    busybox = armboard.root / "bin" / "busybox"  # an aarch64 ELF
    result = cli_runner.invoke(cli, [*setup, str(busybox)])
    assert result.exit_code == 0, result.output
    record = json.loads((tmp_path / "devices.setup.json").read_text())["arm"]
    assert Path(record["remote_path"]).read_bytes() == busybox.read_bytes()
    assert os.access(record["remote_path"], os.X_OK)
    again = cli_runner.invoke(cli, [*setup, str(busybox)])
    assert again.exit_code == 0 and "already on the board" in again.output


def test_setup_download_on_the_board(armboard, tmp_path, cli_runner, release_server, monkeypatch):  # noqa: F811
    base, _ = release_server
    monkeypatch.setenv("EDGEBNN_LCE_RELEASES", base)
    monkeypatch.setenv("EDGEBNN_CACHE", str(tmp_path / "cache"))
    listing = devices_file(tmp_path, armboard.toml("arm", runtime="lce_benchmark_model"))
    result = cli_runner.invoke(cli, ["devices", "--devices-file", str(listing), "setup", "arm", "--download"])
    assert result.exit_code == 0, result.output
    record = json.loads((tmp_path / "devices.setup.json").read_text())["arm"]
    assert record["sha256"] == hashlib.sha256(_aarch64_elf()).hexdigest() and record["source"] == "download"
    assert Path(record["remote_path"]).read_bytes() == _aarch64_elf()
    from edgebnn.device.profiles import get_profile

    assert get_profile("arm", devices_file=listing).runtime_file == record["runtime_file"]


# -- 7. failures diagnosed by cause, through the board --------------------------------------------
DIAGNOSED = f"""case "$*" in
*--num_threads=1\\ *)
  echo 'INFO: STARTING!'
  echo 'INFO: Loaded model model.tflite'
  echo 'ERROR: Encountered unresolved custom op: LceBconv2d.' >&2
  echo 'ERROR: See instructions: https://www.tensorflow.org/lite/guide/ops_custom' >&2
  echo 'ERROR: Node number 3 (LceBconv2d) failed to prepare.' >&2
  echo 'ERROR: Failed to allocate tensors!' >&2
  echo 'ERROR: Benchmarking failed.' >&2
  exit 1;;
*--num_threads=2\\ *)
  echo 'WARN: Unconsumed cmdline flags: --use_xnnpack=true';;
*--num_threads=3\\ *)
  kill -9 $$;;
esac
cat <<'EOF'
{TOOL}EOF
"""


def test_failures_are_diagnosed_by_cause_on_the_board(armboard, tmp_path, cli_runner):  # noqa: F811
    run = fake_run(tmp_path)
    listing = devices_file(tmp_path, armboard.toml("arm", runtime=armboard.stand_in(DIAGNOSED, folder="diag")))
    result = cli_runner.invoke(cli, ["bench", str(run.path), "--device", "arm", "--devices-file", str(listing),
                                     "--threads", "1,2,3,4", "--runs", "3", "--min-secs", "0", "--use-xnnpack",
                                     "--json"])
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout)
    unknown, ignored, killed, fine = record["results"]
    assert unknown["error_kind"] == "unknown_op" and not unknown["ok"] and "LceBconv2d" in unknown["error"]
    assert "Encountered unresolved custom op: LceBconv2d." in unknown["raw"]
    assert ignored["ok"] and not ignored["valid"] and ignored["error_kind"] == "flag_ignored"
    assert "--use_xnnpack=true" in ignored["error"] and "Unconsumed cmdline flags" in ignored["raw"]
    assert killed["error_kind"] == "oom" and "MB available before the run" in killed["error"]
    assert "Killed" in killed["raw"]
    cores = record["fingerprint"]["cores"]  # the emulated board has this machine's cores
    assert fine["ok"] and fine["valid"] == (4 <= cores) and fine["cores_available"] == cores
    assert fine["error_kind"] == ("" if 4 <= cores else "oversubscribed")  # 4 threads on 2 cores take turns
    assert not scratch_left(armboard.profile())


# -- 8. an interrupted bench ends the board's runtime ---------------------------------------------
def test_no_runtime_survives_an_interrupted_bench_on_the_board(armboard, tmp_path):  # noqa: F811
    marker = "interrupted-9c1e"
    profile = armboard.profile(runtime=armboard.stand_in("sleep 617\n", name=f"lce_benchmark_model-{marker}"),
                               workdir=str(armboard.workdir / marker))
    listing = devices_file(tmp_path, toml_table(profile))
    run = fake_run(tmp_path)
    proc = subprocess.Popen([EDGEBNN, "bench", str(run.path), "--device", profile.name, "--devices-file", str(listing),
                             "--runs", "1", "--min-secs", "0", "--timeout", "300"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: processes("sleep 617") or proc.poll() is not None, timeout=60, what="the runtime did not start")
        assert proc.poll() is None, proc.communicate()
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=30)
        wait_for(lambda: not processes("sleep 617") and not processes(marker), timeout=5,
                 what="a runtime survived SIGINT on the board")
        wait_for(lambda: not scratch_left(profile), timeout=5, what="the scratch folder was left")
    finally:
        proc.kill()
        for pid in processes("sleep 617"):
            os.kill(pid, signal.SIGKILL)
    assert proc.returncode != 0

