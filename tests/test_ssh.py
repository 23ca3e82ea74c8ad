"""The device harness against a real OpenSSH server on 127.0.0.1 (see tests/sshd.py).

The "board" is this machine through sshd; its runtime is edgebnn's python runner, or a small
shell script standing in for lce_benchmark_model where a test needs a fault (a crash, a hang,
garbage output). No test touches an address other than 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import shutil
import subprocess
import time
from dataclasses import replace
from pathlib import Path

import pytest
from faults import small_tmpfs
from sshd import TOOL, DroppingProxy, SilentServer, free_port, keygen, running, sshd  # noqa: F401  (fixture)

from edgebnn.cli import cli
from edgebnn.device.errors import DeviceError
from edgebnn.device.preflight import check_device
from edgebnn.device.protocol import BenchConfig, bench_device
from edgebnn.device.ssh import SshTransport
from edgebnn.device.transport import Upload
from edgebnn.run.rundir import RunDir, sha256_of

FAST = dict(runs=3, warmup=1, min_secs=0.0, timeout=60)

def fake_runtime(folder: Path, body: str, name: str = "lce_benchmark_model") -> str:
    """A shell script standing in for lce_benchmark_model."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)
    return str(path)


def printing_tool(folder: Path, extra: str = "") -> str:
    return fake_runtime(folder, extra + f"cat <<'EOF'\n{TOOL}EOF\n")


def fake_run(tmp_path: Path, name: str = "run") -> RunDir:
    run = RunDir.create(tmp_path / name, {"model": "fake"})
    run.tflite_path.write_bytes(os.urandom(4096))
    run.record_file(run.tflite_path)  # as `edgebnn convert` records it
    return run


def devices_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "devices.toml"
    path.write_text(text)
    return path


def bench(profile, graph, threads=(1,), **kw):
    configs = [BenchConfig(threads=t, **{**FAST, **kw}) for t in threads]
    return asyncio.run(bench_device(profile, graph, configs))


# -- the happy path: edgebnn's python runner over SSH ------------------------------------------
def test_bench_over_ssh_uploads_once_and_cleans_up(sshd, tiny_run, tmp_path, cli_runner):  # noqa: F811
    listing = devices_file(tmp_path, sshd.toml("loopback") + '\n[fleets]\nlab = ["loopback"]\n')
    args = ["bench", str(tiny_run.path), "--device", "lab", "--devices-file", str(listing), "--threads", "1,2",
            "--runs", "5", "--warmup", "1", "--min-secs", "0", "--json"]
    first = cli_runner.invoke(cli, args)
    assert first.exit_code == 0, first.output
    record = json.loads(first.stdout)
    # the "board" is this x86 machine: its figures are host figures, whatever the profile says
    assert record["figure_kind"] == "host" and record["connections"] == 1
    assert "loopback is x86_64 (uname -m), not an ARM board" in record["warnings"][0]
    assert [r["config"]["threads"] for r in record["results"]] == [1, 2]
    assert all(r["ok"] and r["valid"] for r in record["results"]), record["results"]
    assert record["results"][0]["latency"]["p90_ms"] >= record["results"][0]["latency"]["median_ms"] > 0
    assert record["fingerprint"]["cores"] == os.cpu_count() and record["fingerprint"]["os_bits"] == 64
    assert record["runtime"]["kind"] == "python" and record["runtime"]["lce_version"] == "0.16.0"
    assert record["uploads"]["model"]["uploaded"] and record["uploads"]["model"]["sha256"] == sha256_of(tiny_run.tflite_path)
    assert set(record["steps_s"]) == {"connect", "preflight", "upload", "run", "cleanup"}
    assert Path(record["file"]).exists() and tiny_run.manifest["benchmarks"][-1]["file"] == str(
        Path(record["file"]).relative_to(tiny_run.path))
    # A repeat run reuses the model and the runner on the board; no scratch folder is left.
    second = json.loads(cli_runner.invoke(cli, args).stdout)
    assert not second["uploads"]["model"]["uploaded"] and not second["uploads"]["runner"]["uploaded"]
    workdir = Path(sshd.profile("loopback").workdir)
    assert sorted(p.name for p in workdir.iterdir()) == ["bin", "models"]


def test_devices_list_and_check(sshd, tmp_path, cli_runner):  # noqa: F811
    listing = devices_file(tmp_path, sshd.toml("loopback") + '\n[fleets]\nlab = ["loopback", "bananapi"]\n')
    result = cli_runner.invoke(cli, ["devices", "--devices-file", str(listing), "--json"])
    assert result.exit_code == 0, result.output
    names = [row["profile"]["name"] for row in json.loads(result.stdout)["devices"]]
    assert names == ["local", "bananapi", "loopback"]
    result = cli_runner.invoke(cli, ["devices", "--devices-file", str(listing), "check", "loopback"])
    assert result.exit_code == 0, result.output
    assert f"({os.cpu_count()} cores)" in result.output and "64-bit" in result.output


def test_devices_file_from_the_environment_and_on_subcommands(sshd, tmp_path, cli_runner):  # noqa: F811
    from_env = devices_file(tmp_path, sshd.toml("envboard"))
    env = {"EDGEBNN_DEVICES_FILE": str(from_env)}
    listing = json.loads(cli_runner.invoke(cli, ["devices", "--json"], env=env).stdout)
    assert listing["path"] == str(from_env) and "envboard" in [r["profile"]["name"] for r in listing["devices"]]
    result = cli_runner.invoke(cli, ["devices", "check", "envboard", "--json"], env=env)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["device"] == "envboard"

    (tmp_path / "other").mkdir()
    given = devices_file(tmp_path / "other", sshd.toml("given"))
    result = cli_runner.invoke(cli, ["devices", "check", "given"], env=env)
    assert result.exit_code != 0 and "unknown device 'given'" in result.output and str(from_env) in result.output
    # --devices-file after the subcommand or before it; either beats the environment.
    for args in (["devices", "check", "given", "--devices-file", str(given)],
                 ["devices", "--devices-file", str(given), "check", "given"]):
        result = cli_runner.invoke(cli, args, env=env)
        assert result.exit_code == 0, (args, result.output)
        assert f"given ({sshd.user}@127.0.0.1:{sshd.port})" in result.output
    runtime = tmp_path / "lce_benchmark_model"
    runtime.write_bytes(_aarch64_elf(machine=62))  # the OpenSSH board is this machine: x86_64
    result = cli_runner.invoke(cli, ["devices", "setup", "given", "--runtime", str(runtime), "--devices-file", str(given)],
                               env=env)
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "other" / "devices.setup.json").read_text())["given"]["sha256"] == sha256_of(runtime)
    assert not (tmp_path / "devices.setup.json").exists()


def test_ssh_config_alias(sshd, tmp_path):  # noqa: F811
    config = tmp_path / "ssh_config"
    config.write_text(f"Host myboard\n  HostName 127.0.0.1\n  Port {sshd.port}\n  User {sshd.user}\n"
                      f"  IdentityFile {sshd.client_key}\n")
    # Like OpenSSH, the host key is looked up under the HostName the alias resolves to.
    profile = sshd.profile("myboard", host="myboard", port=0, user="", key="", ssh_config=str(config))
    report = asyncio.run(check_device(profile))
    assert report["errors"] == [] and report["fingerprint"]["cores"] == os.cpu_count()


def test_host_key_of_an_alias_is_checked_under_its_hostname_and_port(sshd, tmp_path):  # noqa: F811
    config = tmp_path / "ssh_config"
    config.write_text(f"Host myboard\n  HostName 127.0.0.1\n  Port {sshd.port}\n")
    entry = f"[127.0.0.1]:{sshd.port}"
    other = Path(f"{keygen(tmp_path / 'other')}.pub").read_text().split()
    changed = tmp_path / "changed"
    changed.write_text(f"{entry} {other[0]} {other[1]}\n")
    alias = dict(host="myboard", port=0, ssh_config=str(config))
    # A changed key is refused as CHANGED under the alias too, even with --accept-new-host-key.
    for accept in (False, True):
        with pytest.raises(DeviceError, match="CHANGED") as caught:
            asyncio.run(check_device(sshd.profile("myboard", known_hosts=str(changed), **alias),
                                     accept_new_host_key=accept))
        assert f"-R '{entry}'" in str(caught.value)
    assert changed.read_text() == f"{entry} {other[0]} {other[1]}\n"

    # A new key is recorded under the real [host]:port, once, and found there next time.
    unknown = tmp_path / "empty"
    unknown.write_text("")
    profile = sshd.profile("myboard", known_hosts=str(unknown), **alias)
    error = _connect_error(profile)
    assert "not in" in str(error) and f"ssh-keyscan -p {sshd.port} 127.0.0.1" in str(error)
    asyncio.run(check_device(profile, accept_new_host_key=True))
    asyncio.run(check_device(profile, accept_new_host_key=True))
    asyncio.run(check_device(profile))
    (line,) = unknown.read_text().splitlines()
    assert line.startswith(f"{entry} ssh-ed25519 ")


def test_proxyjump_from_the_ssh_config(sshd, tmp_path):  # noqa: F811
    # The jump host is the same sshd reached at another port (a forwarder that counts connections),
    # so each hop has its own known_hosts entry: [127.0.0.1]:<jump port> and [127.0.0.1]:<board port>.
    jump = DroppingProxy(sshd.port, limit=None)
    config = tmp_path / "ssh_config"
    config.write_text(f"Host board\n  HostName 127.0.0.1\n  Port {sshd.port}\n  User {sshd.user}\n"
                      f"  IdentityFile {sshd.client_key}\n  ProxyJump jumphost\n\n"
                      f"Host jumphost\n  HostName 127.0.0.1\n  Port {jump.port}\n  User {sshd.user}\n"
                      f"  IdentityFile {sshd.client_key}\n")
    key = " ".join(sshd.known_hosts.read_text().split()[1:3])
    board, jumphost = f"[127.0.0.1]:{sshd.port}", f"[127.0.0.1]:{jump.port}"
    known = tmp_path / "known_hosts"
    known.write_text(f"{board} {key}\n{jumphost} {key}\n")
    profile = sshd.profile("board", host="board", port=0, user="", key="", ssh_config=str(config),
                           known_hosts=str(known), runtime=printing_tool(tmp_path / "rt"))

    def keys(text: str) -> Path:
        path = tmp_path / f"kh{len(list(tmp_path.glob('kh*')))}"
        path.write_text(text)
        return path

    try:
        run = bench(profile, fake_run(tmp_path).tflite_path, threads=(1, 2))
        assert run.ok, run.error
        assert jump.connections == 1 and run.connections == 1  # through the jump host, once for the whole run
        # Each hop's key is looked up under its own resolved [HostName]:Port.
        error = _connect_error(replace(profile, known_hosts=str(keys(f"{board} {key}\n"))))
        assert error.kind == "host_key" and "jump host jumphost (ProxyJump for board)" in str(error)
        assert f"ssh-keyscan -p {jump.port} 127.0.0.1 >>" in str(error)
        error = _connect_error(replace(profile, known_hosts=str(keys(f"{jumphost} {key}\n"))))
        assert error.kind == "host_key" and "of board (board)" in str(error)
        assert f"`ssh jumphost ssh-keyscan -p {sshd.port} 127.0.0.1 >>" in str(error)  # scanned from the jump host
        other = Path(f"{keygen(tmp_path / 'other')}.pub").read_text().split()
        changed = keys(f"{board} {key}\n{jumphost} {other[0]} {other[1]}\n")
        with pytest.raises(DeviceError, match="jump host jumphost.*CHANGED") as caught:
            asyncio.run(check_device(replace(profile, known_hosts=str(changed)), accept_new_host_key=True))
        assert f"-R '{jumphost}'" in str(caught.value)
        # --accept-new-host-key records both hops, each under its own entry, once.
        empty = keys("")
        asyncio.run(check_device(replace(profile, known_hosts=str(empty)), accept_new_host_key=True))
        asyncio.run(check_device(replace(profile, known_hosts=str(empty))))
        assert sorted(line.split()[0] for line in empty.read_text().splitlines()) == sorted([jumphost, board])
        # A board the jump host cannot reach is named as such.
        closed = tmp_path / "closed_config"
        closed.write_text(config.read_text().replace(f"Port {sshd.port}\n", f"Port {free_port()}\n"))
        error = _connect_error(replace(profile, ssh_config=str(closed)))
        assert error.kind == "unreachable" and "the jump host cannot reach board (board)" in str(error)
        assert str(closed) in str(error)
    finally:
        jump.close()


# -- faults ------------------------------------------------------------------------------------
def _connect_error(profile) -> DeviceError:
    with pytest.raises(DeviceError) as caught:
        asyncio.run(check_device(profile))
    return caught.value


def test_unreachable_host(sshd):  # noqa: F811
    silent = SilentServer()  # accepts TCP, never speaks SSH
    try:
        error = _connect_error(sshd.profile(port=silent.port, connect_timeout=1))
    finally:
        silent.close()
    assert error.kind == "unreachable" and "cannot reach loopback" in str(error) and "after 1 s" in str(error)


def test_refused_connection(sshd):  # noqa: F811
    error = _connect_error(sshd.profile(port=free_port()))
    assert error.kind == "refused" and "connection refused" in str(error)


def test_wrong_and_unknown_host_key(sshd, tmp_path):  # noqa: F811
    other = Path(f"{keygen(tmp_path / 'other')}.pub").read_text().split()
    changed = tmp_path / "changed"
    changed.write_text(f"[127.0.0.1]:{sshd.port} {other[0]} {other[1]}\n")
    error = _connect_error(sshd.profile(known_hosts=str(changed)))
    assert error.kind == "host_key" and "CHANGED" in str(error)
    # --accept-new-host-key never overrides a changed key.
    with pytest.raises(DeviceError, match="CHANGED"):
        asyncio.run(check_device(sshd.profile(known_hosts=str(changed)), accept_new_host_key=True))

    unknown = tmp_path / "empty"
    unknown.write_text("")
    error = _connect_error(sshd.profile(known_hosts=str(unknown)))
    assert error.kind == "host_key" and "ssh-keyscan -p" in str(error) and "--accept-new-host-key" in str(error)
    asyncio.run(check_device(sshd.profile(known_hosts=str(unknown)), accept_new_host_key=True))
    assert f"[127.0.0.1]:{sshd.port} ssh-ed25519" in unknown.read_text()
    asyncio.run(check_device(sshd.profile(known_hosts=str(unknown))))  # now known: no flag needed


def test_authentication_failure(sshd, tmp_path):  # noqa: F811
    error = _connect_error(sshd.profile(key=str(keygen(tmp_path / "stranger"))))
    assert error.kind == "auth" and "authentication failed" in str(error)


def test_ssh_agent_authentication(sshd, tmp_path, monkeypatch):  # noqa: F811
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.ssh keys of whoever runs the tests
    profile = sshd.profile(key="")  # no key file: only the agent can authenticate
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    error = _connect_error(profile)
    assert error.kind == "auth" and "authentication failed for loopback" in str(error)
    assert "no SSH agent is running: SSH_AUTH_SOCK is not set" in str(error) and "ssh-add" in str(error)

    sock = tmp_path / "agent.sock"
    agent = subprocess.Popen(["ssh-agent", "-D", "-a", str(sock)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 10
        while not sock.exists():
            assert agent.poll() is None and time.monotonic() < deadline, f"ssh-agent did not start: {agent.stderr.read()}"
            time.sleep(0.05)
        monkeypatch.setenv("SSH_AUTH_SOCK", str(sock))
        # An empty agent offers nothing: still refused, without blaming a missing agent.
        error = _connect_error(profile)
        assert error.kind == "auth" and "SSH_AUTH_SOCK is not set" not in str(error)
        subprocess.run(["ssh-add", str(sshd.client_key)], check=True, capture_output=True)
        report = asyncio.run(check_device(profile))
        assert report["errors"] == [] and report["fingerprint"]["cores"] == os.cpu_count()
    finally:
        agent.terminate()
        agent.wait(10)


def test_missing_and_non_executable_runtime(sshd, tmp_path):  # noqa: F811
    graph = fake_run(tmp_path).tflite_path
    run = bench(sshd.profile(runtime=str(tmp_path / "nope" / "lce_benchmark_model")), graph)
    assert run.error_kind == "preflight" and "not found on loopback" in run.error and "devices setup" in run.error
    assert not run.results
    plain = tmp_path / "plain"
    plain.write_text("#!/bin/sh\n")
    run = bench(sshd.profile(runtime=str(plain)), graph)
    assert run.error_kind == "preflight" and "is not executable" in run.error


def test_crash_in_one_configuration_keeps_the_others(sshd, tmp_path, cli_runner):  # noqa: F811
    tool = printing_tool(tmp_path / "rt", 'case "$*" in *--num_threads=4*) echo "Segmentation fault" >&2; exit 139;; esac\n')
    run = fake_run(tmp_path)
    listing = devices_file(tmp_path, sshd.toml("loopback", runtime=tool))
    result = cli_runner.invoke(cli, ["bench", str(run.path), "--device", "loopback", "--devices-file", str(listing),
                                     "--threads", "1,4,2", "--runs", "3", "--min-secs", "0", "--json"])
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout)
    ok, crashed, after = record["results"]
    assert ok["ok"] and ok["latency"]["mean_ms"] == pytest.approx(1.65025) and ok["latency"]["peak_memory_mb"] == 9.5
    # diagnosed by cause (edgebnn.device.diagnose), the raw output kept
    assert crashed["error_kind"] == "signal" and "SIGSEGV" in crashed["error"] and "Segmentation fault" in crashed["raw"]
    assert after["ok"]
    saved = json.loads(Path(record["file"]).read_text())
    assert [r["error_kind"] for r in saved["results"]] == ["", "signal", ""]
    assert record["runtime"] == {"kind": "lce_benchmark_model", "path": tool, "sha256": sha256_of(tool)}


def test_hanging_runtime_is_killed_on_the_board(sshd, tmp_path):  # noqa: F811
    tool = fake_runtime(tmp_path / "rt", "sleep 987654\n")
    run = bench(sshd.profile(runtime=tool), fake_run(tmp_path).tflite_path, timeout=2)
    (result,) = run.results
    assert result.error_kind == "timeout" and "killed on the device" in result.error
    deadline = time.monotonic() + 10
    while running("sleep 987654"):
        assert time.monotonic() < deadline, "the hanging runtime is still running on the board"
        time.sleep(0.2)


def test_dropped_connection_mid_upload_is_retried(sshd, tmp_path):  # noqa: F811
    blob = tmp_path / "big.tflite"
    blob.write_bytes(os.urandom(3 << 20))
    proxy = DroppingProxy(sshd.port, limit=1 << 20)  # cut the first connection 1 MB into the upload
    profile = sshd.profile(port=proxy.port)
    known = tmp_path / "known_hosts"
    known.write_text(sshd.known_hosts.read_text().replace(str(sshd.port), str(proxy.port)))
    profile = replace(profile, known_hosts=str(known))
    remote = f"{profile.workdir}/models/x/big.tflite"

    async def go():
        transport = SshTransport(profile)
        await transport.connect()
        try:
            attempts = await transport.upload(Upload(blob, remote, sha256_of(blob)))
        finally:
            await transport.close()
        return attempts, transport.connections

    try:
        attempts, connections = asyncio.run(go())
    finally:
        proxy.close()
    assert attempts == 2 and connections == 2
    assert hashlib.sha256(Path(remote).read_bytes()).hexdigest() == sha256_of(blob)
    assert not list(Path(remote).parent.glob("*.part.*"))  # the dropped attempt's part file is gone


def test_full_disk_on_the_board(sshd, tmp_path):  # noqa: F811
    run = fake_run(tmp_path)
    profile = sshd.profile(runtime=printing_tool(tmp_path / "rt"))
    digest = sha256_of(run.tflite_path)
    # The model's folder lies on a real tmpfs that is full; the workdir's own disk has room, so
    # the preflight lets the upload start and the write itself fails with ENOSPC.
    with small_tmpfs(tmp_path / "full", kib=64) as disk:
        (disk / "filler").write_bytes(b"x" * 64 * 1024)
        (Path(profile.workdir) / "models").mkdir(parents=True, exist_ok=True)
        (Path(profile.workdir) / "models" / digest).symlink_to(disk)
        result = bench(profile, run.tflite_path)
    assert result.error_kind == "disk_full" and "No space left on device" in result.error
    assert "workdir" in result.error and not result.results


def test_unparsable_output_is_saved_raw(sshd, tmp_path, cli_runner):  # noqa: F811
    tool = fake_runtime(tmp_path / "rt", "echo 'benchmark tool v0: all good'\n")
    run = fake_run(tmp_path)
    listing = devices_file(tmp_path, sshd.toml("loopback", runtime=tool))
    result = cli_runner.invoke(cli, ["bench", str(run.path), "--device", "loopback", "--devices-file", str(listing),
                                     "--runs", "3", "--min-secs", "0"])
    assert result.exit_code == 1 and "every configuration failed on loopback" in result.output
    (saved,) = (run.path / "bench").glob("loopback-*.json")
    (entry,) = json.loads(saved.read_text())["results"]
    assert entry["error_kind"] == "unparsable" and "all good" in entry["raw"] and "no 'count=" in entry["error"]


def test_shell_metacharacters_never_reach_a_shell(sshd, tmp_path):  # noqa: F811
    folder = tmp_path / "m $(touch PWNED1)"
    folder.mkdir()
    graph = folder / "q'; touch PWNED2; echo \"$(touch PWNED3)`touch PWNED4`.tflite"
    graph.write_bytes(os.urandom(1024))
    seen = tmp_path / "seen"
    tool = printing_tool(tmp_path / "rt", f'for a in "$@"; do echo "$a" >> {seen}; done\n')
    workdir = tmp_path / "board; touch PWNED5 & $HOME"
    run = bench(sshd.profile(runtime=tool, workdir=str(workdir)), graph)
    assert run.ok, (run.error, [r.error for r in run.results])
    remote = run.uploads["model"]["path"]
    assert f"--graph={remote}" in seen.read_text().splitlines()
    assert Path(remote).name == graph.name and Path(remote).read_bytes() == graph.read_bytes()
    for where in (Path.home(), tmp_path, workdir, Path("/tmp")):
        assert not list(where.glob("PWNED*")) if where.exists() else True


def test_fleet_with_an_unreachable_board(sshd, tmp_path, cli_runner):  # noqa: F811
    tool = printing_tool(tmp_path / "rt")
    run = fake_run(tmp_path)
    listing = devices_file(tmp_path, sshd.toml("good", runtime=tool) + sshd.toml("dead", port=free_port()))
    result = cli_runner.invoke(cli, ["bench", str(run.path), "--device", "good,dead", "--devices-file", str(listing),
                                     "--runs", "3", "--min-secs", "0", "--json"])
    assert result.exit_code == 0, result.output
    good, dead = json.loads(result.stdout)
    assert good["ok"] and good["results"][0]["ok"]
    assert dead["error_kind"] == "refused" and not dead["results"] and Path(dead["file"]).exists()
    assert "dead" in result.stderr and "refused" in result.stderr
    assert {b["device"] for b in run.manifest["benchmarks"]} == {"good", "dead"}


def test_whole_run_failure_exits_non_zero(sshd, tmp_path, cli_runner):  # noqa: F811
    run = fake_run(tmp_path)
    listing = devices_file(tmp_path, sshd.toml("dead", port=free_port()))
    result = cli_runner.invoke(cli, ["bench", str(run.path), "--device", "dead", "--devices-file", str(listing)])
    assert result.exit_code == 1 and "connection refused by dead" in result.output
    assert list((run.path / "bench").glob("dead-*.json"))


# -- setup: upload a runtime once, or download LCE's release ----------------------------------
def _aarch64_elf(machine: int = 183) -> bytes:
    import struct

    header = b"\x7fELF" + bytes([2, 1, 1, 0]) + bytes(8) + struct.pack("<HHI", 2, machine, 1)
    return header + bytes(64 - len(header)) + b"\x00" * 256


@pytest.fixture
def release_server(tmp_path):
    """LCE's GitHub release layout served by http.server on 127.0.0.1."""
    import functools
    import http.server
    import threading
    from importlib import metadata

    version = metadata.version("larq-compute-engine")
    (tmp_path / "www" / f"v{version}").mkdir(parents=True)
    (tmp_path / "www" / f"v{version}" / "lce_benchmark_model_aarch64").write_bytes(_aarch64_elf())
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path / "www"))
    handler.log_message = lambda *a: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", tmp_path / "www" / f"v{version}"
    server.shutdown()


def test_setup_rejects_what_the_board_cannot_execute(sshd, tmp_path, cli_runner, release_server, monkeypatch):  # noqa: F811
    # (Downloading onto an aarch64 board: tests/test_board_arm.py.)
    base, folder = release_server
    monkeypatch.setenv("EDGEBNN_LCE_RELEASES", base)
    monkeypatch.setenv("EDGEBNN_CACHE", str(tmp_path / "cache"))
    listing = devices_file(tmp_path, sshd.toml("pi"))
    arm = tmp_path / "arm"
    arm.write_bytes(_aarch64_elf())
    result = cli_runner.invoke(cli, ["devices", "--devices-file", str(listing), "setup", "pi", "--runtime", str(arm)])
    assert result.exit_code == 1 and "is built for aarch64, pi is x86_64 (uname -m: x86_64)" in result.output
    # LCE's release is an aarch64 build: refused for this x86_64 board, after the download checked it.
    result = cli_runner.invoke(cli, ["devices", "--devices-file", str(listing), "setup", "pi", "--download"],
                               env={"EDGEBNN_CACHE": str(tmp_path / "cache-x86")})
    assert result.exit_code == 1 and "is built for aarch64, pi is x86_64" in result.output
    assert not (tmp_path / "devices.setup.json").exists()
    (folder / "lce_benchmark_model_aarch64").write_bytes(b"<html>Not Found</html>")
    result = cli_runner.invoke(cli, ["devices", "--devices-file", str(listing), "setup", "pi", "--download"])
    assert result.exit_code == 1 and "not an ELF executable" in result.output
    assert not (tmp_path / "cache" / "runtimes").exists() or not list((tmp_path / "cache" / "runtimes").rglob("lce_*"))
    monkeypatch.setenv("EDGEBNN_LCE_RELEASES", base + "/missing")
    result = cli_runner.invoke(cli, ["devices", "--devices-file", str(listing), "setup", "pi", "--download"])
    assert result.exit_code == 1 and "HTTP 404" in result.output


def test_uploaded_runtime_file_runs(sshd, tmp_path):  # noqa: F811
    tool = printing_tool(tmp_path / "local-build")
    run = bench(sshd.profile(runtime="lce_benchmark_model", runtime_file=tool), fake_run(tmp_path).tflite_path)
    assert run.ok, run.error
    assert run.runtime["path"].startswith(sshd.profile().workdir) and run.runtime["sha256"] == sha256_of(tool)


def test_affinity_pins_the_runtime_with_taskset(sshd, tmp_path):  # noqa: F811
    seen = tmp_path / "cpus"
    tool = printing_tool(tmp_path / "rt", f"grep Cpus_allowed_list /proc/self/status > {seen}\n")
    run = bench(sshd.profile(runtime=tool, affinity="0"), fake_run(tmp_path).tflite_path)
    assert run.ok, run.error
    assert seen.read_text().split() == ["Cpus_allowed_list:", "0"]


def test_op_profiling_and_peak_memory_flags_reach_the_runtime(sshd, tmp_path):  # noqa: F811
    seen = tmp_path / "args"
    tool = printing_tool(tmp_path / "rt", f'echo "$@" > {seen}\n')
    run = bench(sshd.profile(runtime=tool), fake_run(tmp_path).tflite_path, op_profiling=True, xnnpack=True)
    assert run.ok, run.error
    args = seen.read_text().split()
    assert "--enable_op_profiling=true" in args and "--report_peak_memory_footprint=true" in args
    assert "--num_threads=1" in args and "--num_runs=3" in args and "--warmup_runs=1" in args
    assert "--use_xnnpack=true" in args
    assert run.results[0].config.xnnpack  # recorded with the result


def test_ad_hoc_ssh_url(sshd, tmp_path, cli_runner, monkeypatch):  # noqa: F811
    from urllib.parse import urlencode

    # A URL names no local file: the user's own ~/.ssh keys and known_hosts are used.
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    shutil.copy(sshd.client_key, home / ".ssh" / "id_ed25519")
    shutil.copy(sshd.known_hosts, home / ".ssh" / "known_hosts")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    run = fake_run(tmp_path)
    query = urlencode({"runtime": printing_tool(tmp_path / "rt"), "workdir": tmp_path / "adhoc", "cooldown": 0})
    url = f"ssh://{sshd.user}@127.0.0.1:{sshd.port}?{query}"
    result = cli_runner.invoke(cli, ["bench", str(run.path), "--device", url, "--runs", "3", "--min-secs", "0", "--json"])
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout)
    assert record["device"] == f"127.0.0.1:{sshd.port}" and record["results"][0]["ok"]
    assert Path(record["file"]).name.startswith(f"127.0.0.1_{sshd.port}-")


def test_preflight_refuses_a_board_without_room(sshd, tmp_path):  # noqa: F811
    tiny = tmp_path / "tiny-disk"
    tiny.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(tiny)], capture_output=True).returncode:
        pytest.skip("cannot mount a tmpfs here (needs root); the /dev/full test covers a failing write")
    try:
        graph = tmp_path / "big.tflite"
        graph.write_bytes(os.urandom(2 << 20))
        run = bench(sshd.profile(runtime=printing_tool(tmp_path / "rt"), workdir=str(tiny / "work")), graph)
    finally:
        subprocess.run(["umount", str(tiny)], check=True)
    assert run.error_kind == "disk_full" and "MB free" in run.error and "needs 2.0 MB" in run.error


def test_connection_lost_mid_run_keeps_earlier_results(sshd, tmp_path):  # noqa: F811
    # At 4 threads the "runtime" kills the sshd process serving its connection: the link drops.
    tool = printing_tool(tmp_path / "rt", """case "$*" in *--num_threads=4*)
  pid=$$
  while [ "$pid" -gt 1 ]; do
    pid=$(awk '/^PPid:/ {print $2}' /proc/$pid/status)
    case "$(cat /proc/$pid/comm)" in sshd*) kill -9 "$pid"; exit 0;; esac
  done;;
esac
""")
    profile = sshd.profile(runtime=tool)
    run = bench(profile, fake_run(tmp_path).tflite_path, threads=(1, 4, 2))
    assert [r.error_kind for r in run.results] == ["", "connection", "skipped"]
    assert run.results[0].ok and "lost the connection" in run.results[1].error
    assert run.connections == 2  # reconnected once to clean up
    assert not list(Path(profile.workdir).glob("run-*"))


def test_cooldown_between_configurations_and_throttle_warnings(sshd, tmp_path):  # noqa: F811
    # The board's thermal zones are files the test writes; the real preflight and the per-configuration
    # readings read them over SSH. The "runtime" heats zone0 to 91 C at 2 threads, 45 C otherwise.
    zones = tmp_path / "thermal"
    for name, millidegrees in (("zone0", 85000), ("zone1", 40000)):
        (zones / name).mkdir(parents=True)
        (zones / name / "temp").write_text(f"{millidegrees}\n")
    stamps = tmp_path / "stamps"
    tool = printing_tool(tmp_path / "rt", f'date +%s.%N >> {stamps}\n'
                                          f'case "$*" in *--num_threads=2*) t=91000;; *) t=45000;; esac\n'
                                          f'echo $t > {zones / "zone0" / "temp"}\n')
    profile = sshd.profile(runtime=tool, cooldown=1.5, throttle_temp=80.0, thermal_zones=str(zones / "zone*" / "temp"))
    run = bench(profile, fake_run(tmp_path).tflite_path, threads=(2, 1))
    assert run.ok, run.error
    assert run.temps["before"] == [85.0, 40.0] and run.temps["after"] == [45.0, 40.0]
    assert [r.temps_c for r in run.results] == [[91.0, 40.0], [45.0, 40.0]]
    first, second = map(float, stamps.read_text().split())
    assert second - first >= 1.5  # the cooldown passed between the two configurations
    assert any("at 85 C before the run" in w for w in run.warnings), run.warnings
    # Hot at 2 threads, cool again by the end: still flagged, naming the configuration.
    (hot,) = [w for w in run.warnings if "during the run" in w]
    assert "reached 91 C" in hot and "after threads=2)" in hot and "cooldown` (now 1.5 s)" in hot
