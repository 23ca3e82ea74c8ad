"""The emulated aarch64 board of tests/armboard.py is what it claims, through real SSH.

Both clients a user has: the system ``ssh`` and asyncssh. The board: dropbear and BusyBox from
Debian's arm64 packages under qemu-user (``.ci/armboard`` sets them up). No edgebnn code here.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import subprocess
import tempfile
import time
from pathlib import Path

import asyncssh
import pytest
from armboard import armboard, board_processes, start_board  # noqa: F401  (fixture)


def ssh(board, command: str, input: bytes | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    """``command`` on the board through the system ssh client."""
    return subprocess.run(board.ssh_command(command), input=input, capture_output=True, timeout=timeout)


def arun(board, command: str, input: bytes | str | None = None, encoding: str | None = "utf-8"):
    """``command`` on the board through asyncssh: the SSHCompletedProcess."""

    async def go():
        async with asyncssh.connect(board.host, **board.asyncssh_options()) as conn:
            return await conn.run(command, input=input, encoding=encoding, check=False, timeout=60)

    return asyncio.run(go())


def test_uname_is_aarch64_with_ssh(armboard):
    result = ssh(armboard, "uname -m")
    assert result.returncode == 0, result.stderr
    assert result.stdout.decode() == "aarch64\n"


def test_uname_is_aarch64_with_asyncssh(armboard):
    result = arun(armboard, "uname -m")
    assert result.exit_status == 0, result.stderr
    assert result.stdout == "aarch64\n"


def test_remote_commands_run_in_the_arm64_busybox_shell(armboard):
    out = arun(armboard, "sh -c 'echo $0'; echo ${BASH_VERSION:-no-bash}; sh --help 2>&1 | head -n 1; "
                         "cat /proc/$$/cmdline | tr '\\0' ' '").stdout.splitlines()
    assert out[0] == "sh"
    assert out[1] == "no-bash"
    assert out[2].startswith("BusyBox v")
    # The shell itself is qemu-aarch64 running the board's BusyBox as sh (read by a child: qemu
    # shows a process its own /proc/self/cmdline as the guest's argv).
    assert "qemu" in out[3] and f"{armboard.dir}/bin/sh" in out[3], out[3]
    assert os.path.realpath(armboard.dir / "bin" / "sh") == str(armboard.root / "bin" / "busybox")


def test_no_bash_on_the_board(armboard):
    result = ssh(armboard, "command -v bash")
    assert result.returncode != 0 and result.stdout == b""
    assert arun(armboard, "bash -c true").exit_status == 127


def test_no_getconf_on_the_board(armboard):
    result = arun(armboard, "getconf PAGESIZE")
    assert result.exit_status == 127
    assert "not found" in result.stderr
    assert ssh(armboard, "command -v getconf").returncode != 0


def test_busybox_timeout_kills_a_long_command(armboard):
    start = time.monotonic()
    result = ssh(armboard, "timeout 1 sleep 5")
    elapsed = time.monotonic() - start
    assert result.returncode != 0  # BusyBox timeout: the child's death by SIGTERM, 143
    assert elapsed < 4.5, elapsed
    assert arun(armboard, "timeout 1 sleep 5").exit_status != 0


def test_sha256sum_gives_the_right_digest(armboard, tmp_path):
    data = os.urandom(100_000) + b"edgebnn\n"
    path = armboard.workdir / "digest.bin"  # the board's workdir is the same path here
    path.write_bytes(data)
    result = ssh(armboard, f"sha256sum {path}")
    assert result.returncode == 0, result.stderr
    assert result.stdout.decode().split() == [hashlib.sha256(data).hexdigest(), str(path)]


def test_upload_with_cat_over_stdin_arrives_intact(armboard):
    data = os.urandom(1 << 20)  # every byte value, no line structure
    digest = hashlib.sha256(data).hexdigest()
    path = f"/tmp/edgebnn-armboard-{os.getpid()}-upload.bin"  # the board's /tmp is writable
    try:
        result = arun(armboard, f"cat > {path} && sha256sum {path}", input=data, encoding=None)
        assert result.exit_status == 0, result.stderr
        assert result.stdout.split()[0].decode() == digest
        assert Path(path).read_bytes() == data
        again = ssh(armboard, f"cat > {path}.2 && cat {path}.2", input=data)
        assert again.returncode == 0 and again.stdout == data
    finally:
        for p in (path, f"{path}.2"):
            Path(p).unlink(missing_ok=True)


def test_sftp_subsystem_is_absent(armboard):
    async def go():
        async with asyncssh.connect(armboard.host, **armboard.asyncssh_options()) as conn:
            with pytest.raises(asyncssh.SFTPError):
                async with conn.start_sftp_client():
                    pass
            # The connection is still good for commands: only SFTP is missing. (Under load, the
            # emulated dropbear may refuse a session while it still closes the failed one: retry.)
            for attempt in range(10):
                try:
                    return (await conn.run("echo ok", check=True)).stdout
                except asyncssh.ChannelOpenError:
                    if attempt == 9:
                        raise
                    await asyncio.sleep(0.5)

    assert asyncio.run(go()) == "ok\n"


def test_a_stopped_board_leaves_no_process_behind(armboard):
    """A second board with a detached remote sleeper: leaving the context ends all of it.
    (The session's board is asked for only to skip or fail as it does when none can run.)"""
    with tempfile.TemporaryDirectory(prefix="edgebnn-armboard-") as folder:
        with start_board(Path(folder), armboard.root) as board:
            result = ssh(board, "setsid sleep 300 </dev/null >/dev/null 2>&1 & echo started")
            assert result.stdout == b"started\n", result.stderr
            marker = str(board.dir)
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:  # the sleeper may take a moment to appear
                leftovers = [pid for pid in board_processes(-1, marker)
                             if b"sleep" in Path(f"/proc/{pid}/cmdline").read_bytes()]
                if leftovers:
                    break
                time.sleep(0.1)
            assert leftovers, "the detached sleeper never showed up"
        assert board_processes(-1, marker) == {}
