"""A real OpenSSH server on 127.0.0.1 as the test "board", and faults around it.

Imported by the SSH tests for its fixtures. The server gets throwaway host and client keys
and its own sshd_config in a temporary folder; it listens on 127.0.0.1 only.
"""

from __future__ import annotations

import contextlib
import getpass
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from edgebnn.device.profiles import DeviceProfile

SSHD = shutil.which("sshd") or "/usr/sbin/sshd"

# What lce_benchmark_model prints (TFLite >= 2.13 prefixes its log lines with "INFO: ").
TOOL = """\
INFO: STARTING!
INFO: Num threads: [1]
INFO: Graph: [model.tflite]
INFO: Loaded model model.tflite
INFO: The input model file size (MB): 0.0041
INFO: Initialized session in 1.5ms.
INFO: Running benchmark for at least 1 iterations and at least 0.5 seconds but terminate if exceeding 150 seconds.
INFO: count=300 first=2100 curr=1650 min=1600 max=2100 avg=1660.5 std=40

INFO: Running benchmark for at least 3 iterations and at least 0 seconds but terminate if exceeding 150 seconds.
INFO: count=600 first=1655 curr=1640 min=1590 max=1900 avg=1650.25 std=30

INFO: Inference timings in us: Init: 1500, First inference: 2100, Warmup (avg): 1660.5, Inference (avg): 1650.25
INFO: Memory footprint delta from the start of the tool (MB): init=1.5 overall=3.25
INFO: Overall peak memory footprint (MB) via periodic monitoring: 9.5
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def keygen(path: Path) -> Path:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "edgebnn-test", "-f", str(path)], check=True)
    return path


@dataclass
class Sshd:
    """The running server and the files a client needs to reach it."""

    port: int
    dir: Path
    client_key: Path
    known_hosts: Path
    ssh_config: Path
    user: str

    def profile(self, name: str = "loopback", **overrides) -> DeviceProfile:
        """A board profile for this server: edgebnn's python runner on this venv's Python."""
        base = DeviceProfile(
            name=name, host="127.0.0.1", port=self.port, user=self.user, key=str(self.client_key),
            known_hosts=str(self.known_hosts), ssh_config=str(self.ssh_config), connect_timeout=5,
            workdir=str(self.dir / "board" / name), runtime="python", python=sys.executable, threads=(1,),
            cooldown=0.0, description="this machine through sshd on 127.0.0.1",
        )
        return replace(base, **overrides)

    def toml(self, name: str = "loopback", **overrides) -> str:
        """A devices-file table for :meth:`profile`."""
        return toml_table(self.profile(name, **overrides))


def toml_table(profile: DeviceProfile) -> str:
    """A devices-file table for ``profile`` (only the fields that differ from the defaults)."""
    lines = [f"[devices.{profile.name}]"]
    for key, value in profile.to_dict().items():
        if key == "name" or value == getattr(DeviceProfile(name="x"), key):
            continue
        if isinstance(value, tuple):
            value = list(value)
        lines.append(f"{key} = {_toml_value(value)}")
    return "\n".join(lines) + "\n"


def _toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


@contextlib.contextmanager
def start_sshd(root: Path):
    """Run ``sshd -D`` on 127.0.0.1 at a free port with throwaway keys in ``root``.

    Raises:
        RuntimeError: sshd rejected the config or did not start.
    """
    host_key = keygen(root / "host_key")
    client_key = keygen(root / "client_key")
    (root / "authorized_keys").write_text(Path(f"{client_key}.pub").read_text())
    port = free_port()
    host_pub = Path(f"{host_key}.pub").read_text().split()
    known_hosts = root / "known_hosts"
    known_hosts.write_text(f"[127.0.0.1]:{port} {host_pub[0]} {host_pub[1]}\n")
    ssh_config = root / "ssh_config"
    ssh_config.write_text("")  # keeps the user's ~/.ssh/config out of the tests
    config = root / "sshd_config"
    config.write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {host_key}\nPidFile {root}/sshd.pid\n"
        f"AuthorizedKeysFile {root}/authorized_keys\nStrictModes no\nUsePAM no\nPermitRootLogin yes\n"
        "PasswordAuthentication no\nKbdInteractiveAuthentication no\nPubkeyAuthentication yes\n"
        "MaxStartups 100\nMaxSessions 50\nLogLevel ERROR\nSubsystem sftp internal-sftp\n"
    )
    if os.geteuid() == 0:
        os.makedirs("/run/sshd", mode=0o755, exist_ok=True)  # sshd's privilege separation folder
    check = subprocess.run([SSHD, "-t", "-f", str(config)], capture_output=True, text=True)
    if check.returncode:
        raise RuntimeError(f"sshd rejects the test config: {check.stderr.strip()}")
    with open(root / "sshd.log", "w") as log:
        proc = subprocess.Popen([SSHD, "-D", "-e", "-f", str(config)], stderr=log)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"sshd did not start: {(root / 'sshd.log').read_text()}") from None
                time.sleep(0.05)
        os.environ.pop("SSH_AUTH_SOCK", None)  # only the throwaway key, never the developer's agent
        yield Sshd(port, root, client_key, known_hosts, ssh_config, getpass.getuser())
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture(scope="session")
def sshd(tmp_path_factory):
    """A real sshd on 127.0.0.1 for the whole session (CI fails loudly when it is missing)."""
    if not os.path.exists(SSHD):
        message = f"OpenSSH's server is not installed ({SSHD}): apt-get install openssh-server"
        if os.environ.get("CI"):
            pytest.fail(message)  # CI must run the SSH tests, never skip them
        pytest.skip(message)
    try:
        with start_sshd(tmp_path_factory.mktemp("sshd")) as server:
            yield server
    except RuntimeError as e:
        pytest.fail(str(e))


class DroppingProxy:
    """A TCP proxy to 127.0.0.1:``port`` that cuts its first connection after ``limit`` bytes
    from the client (a dropped link in the middle of an upload); later connections pass.
    With ``limit=None`` it never cuts: the same server at another port, counting connections."""

    def __init__(self, port: int, limit: int | None):
        self.target, self.limit = port, limit
        self.connections = 0
        self.server = socket.socket()
        self.server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.server.bind(("127.0.0.1", 0))
        self.server.listen(8)
        self.port = self.server.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            self.connections += 1
            upstream = socket.create_connection(("127.0.0.1", self.target))
            limit = self.limit if self.connections == 1 else None
            threading.Thread(target=self._pipe, args=(client, upstream, limit), daemon=True).start()
            threading.Thread(target=self._pipe, args=(upstream, client, None), daemon=True).start()

    @staticmethod
    def _pipe(src, dst, limit):
        sent = 0
        try:
            while data := src.recv(65536):
                dst.sendall(data)
                sent += len(data)
                if limit is not None and sent > limit:
                    break
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()

    def close(self):
        self.server.close()


class SilentServer:
    """Accepts TCP connections on 127.0.0.1 and never answers: a host that cannot be reached."""

    def __init__(self):
        self.server = socket.socket()
        self.server.bind(("127.0.0.1", 0))
        self.server.listen(8)
        self.port = self.server.getsockname()[1]

    def close(self):
        self.server.close()


def running(command_line: str) -> bool:
    """True when a process with this exact command line runs (read from /proc, no pgrep needed)."""
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if cmdline.read_bytes().replace(b"\0", b" ").strip() == command_line.encode():
                return True
        except OSError:
            continue
    return False
