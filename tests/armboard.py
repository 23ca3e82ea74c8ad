"""An emulated aarch64 "board" on 127.0.0.1: Debian's arm64 dropbear and BusyBox under qemu-user.

Imported by tests for its ``armboard`` fixture. ``.ci/armboard`` unpacks the arm64 packages into
a root folder (``EDGEBNN_ARMBOARD_ROOT``, default /opt/edgebnn-armboard/root) and registers
qemu-aarch64 with binfmt_misc, so the arm64 programs run here as plain executables. The board
mimics a Buildroot/OpenWrt one: dropbear as the SSH server, BusyBox's ``sh`` as the shell (no
bash), no SFTP subsystem, no getconf, a writable /tmp.

How dropbear runs (no chroot, no mount, nothing written outside the session's folder):

* dropbear is dynamically linked; ``QEMU_LD_PREFIX=<dir>/sysroot`` makes qemu look every
  absolute path up under that folder first, so the arm64 loader and libraries come from the
  root (``sysroot/lib`` and ``sysroot/usr`` are symlinks to it), and so do ``/etc/passwd``,
  ``/etc/group``, ``/etc/shells`` and ``/etc/nsswitch.conf``: the session's own files in
  ``sysroot/etc``. The login user (the one running the tests) thus gets ``<dir>/home`` as its
  home, where dropbear finds ``.ssh/authorized_keys`` with the throwaway client key, and
  ``<dir>/bin/sh`` (the arm64 BusyBox) as its shell. This machine's own home folders and
  /etc are never touched.
* dropbear clears the environment of the session it starts (so QEMU_LD_PREFIX is gone there:
  the static BusyBox needs none) and sets PATH to host folders. A forced command (``-c``)
  therefore sets ``PATH=<dir>/bin``, a folder that exists only here and holds BusyBox applet
  symlinks only, then runs ``sh -c "$SSH_ORIGINAL_COMMAND"`` in the arm64 BusyBox: ``bash`` or
  ``getconf`` are not found, as on a BusyBox board. Absolute paths (``/usr/bin/...``) still
  reach this machine's programs, and a ``#!/bin/sh`` script started by path is run by this
  machine's /bin/sh (the kernel reads the shebang); commands given by name run on BusyBox.
* The SFTP subsystem: dropbear turns it into the command /usr/lib/sftp-server, which the
  forced command refuses as a board without sftp-server does ("not found", status 127).
"""

from __future__ import annotations

import contextlib
import getpass
import grp
import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
from sshd import TOOL, toml_table

ROOT = Path(os.environ.get("EDGEBNN_ARMBOARD_ROOT", "/opt/edgebnn-armboard/root"))
BINFMT_ENTRY = Path("/proc/sys/fs/binfmt_misc/qemu-aarch64")
SETUP_HINT = "run `sudo bash .ci/armboard` to set the board up"
SFTP_SERVER = "/usr/lib/sftp-server"  # Debian's dropbear runs this for the sftp subsystem

# BusyBox applets left out of the board's PATH: on this "board" they would act on the test
# machine itself (power, kernel modules, disks, network, consoles, logins).
UNSAFE_APPLETS = frozenset(
    "halt poweroff reboot init linuxrc nuke swapoff swapon mkswap fdisk mke2fs mkdosfs blkdiscard "
    "freeramdisk switch_root pivot_root run-init hwclock adjtimex rdate insmod rmmod modprobe "
    "depmod mdev fsfreeze fstrim partprobe watchdog devmem losetup umount sysctl ifconfig ifup "
    "ifdown ip route tc vconfig brctl nameif tunctl udhcpc udhcpd arp ipneigh klogd syslogd crond "
    "loadkmap loadfont setkeycodes chvt openvt deallocvt getty login sulogin su passwd telnetd "
    "httpd".split()
)


class BoardUnavailable(RuntimeError):
    """The board cannot be set up on this machine (not unpacked, binfmt_misc not ready)."""


@dataclass
class ArmBoard:
    """The running board and the files a client needs to reach it."""

    port: int
    dir: Path  # the session's folder on this machine (keys, logs, sysroot, bin, home)
    client_key: Path
    known_hosts: Path
    user: str
    root: Path  # the unpacked arm64 packages
    workdir: Path  # a writable folder on the board (the same path here)

    host = "127.0.0.1"

    def ssh_command(self, *command: str) -> list[str]:
        """The system ``ssh`` client's argv for ``command`` on the board (no user config)."""
        return [
            "ssh", "-F", "none", "-p", str(self.port), "-i", str(self.client_key),
            "-o", f"UserKnownHostsFile={self.known_hosts}", "-o", "StrictHostKeyChecking=yes",
            "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes", "-o", "ConnectTimeout=10",
            "-o", "LogLevel=ERROR", f"{self.user}@{self.host}", *command,
        ]

    @property
    def ssh_config(self) -> Path:
        """An empty SSH client config: the user's ~/.ssh/config never applies to the board."""
        return self.dir / "ssh_config"

    def stand_in(self, body: str, name: str = "lce_benchmark_model", folder: str = "rt") -> str:
        """A BusyBox shell script standing in for lce_benchmark_model, run by the board's aarch64 sh."""
        path = self.dir / folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"#!{self.dir}/bin/sh\n" + body)
        path.chmod(0o755)
        return str(path)

    def profile(self, name: str = "arm", runtime: str | None = None, **overrides):
        """An edgebnn device profile for the board: its runtime a stand-in script (default: one that
        prints lce_benchmark_model's output, see :data:`TOOL`), one thread, no cooldown."""
        from edgebnn.device.profiles import DeviceProfile

        self.ssh_config.touch()
        base = DeviceProfile(
            name=name, host=self.host, port=self.port, user=self.user, key=str(self.client_key),
            known_hosts=str(self.known_hosts), ssh_config=str(self.ssh_config), connect_timeout=10,
            workdir=str(self.workdir / name), runtime=runtime or self.stand_in(f"cat <<'EOF'\n{TOOL}EOF\n", folder="tool"),
            threads=(1,), cooldown=0.0, description="the emulated aarch64 board (dropbear + BusyBox under qemu-user)",
        )
        return replace(base, **overrides)

    def toml(self, name: str = "arm", runtime: str | None = None, **overrides) -> str:
        """A devices-file table for :meth:`profile`."""
        return toml_table(self.profile(name, runtime, **overrides))

    def asyncssh_options(self) -> dict:
        """Keyword arguments for ``asyncssh.connect(board.host, **board.asyncssh_options())``."""
        return dict(
            port=self.port, username=self.user, client_keys=[str(self.client_key)],
            known_hosts=str(self.known_hosts), agent_path=None, config=None, connect_timeout=10,
        )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def check_board(root: Path = ROOT) -> None:
    """Raise :class:`BoardUnavailable` with the reason when the board cannot run here."""
    for rel in ("bin/busybox", "usr/sbin/dropbear", "usr/bin/dropbearkey", "lib/ld-linux-aarch64.so.1"):
        if not (root / rel).exists():
            raise BoardUnavailable(f"the arm64 board is not unpacked: {root / rel} is missing ({SETUP_HINT})")
    if not BINFMT_ENTRY.exists():
        raise BoardUnavailable(f"qemu-aarch64 is not registered with binfmt_misc: no {BINFMT_ENTRY} ({SETUP_HINT})")
    entry = BINFMT_ENTRY.read_text()
    if "enabled" not in entry.splitlines():
        raise BoardUnavailable(f"the qemu-aarch64 binfmt_misc entry is disabled ({SETUP_HINT})")
    flags = next((line.split(":", 1)[1].strip() for line in entry.splitlines() if line.startswith("flags:")), "")
    if "F" not in flags or "O" not in flags:  # F: any folder layout; O: dropbear's fexecve re-exec
        raise BoardUnavailable(f"qemu-aarch64 is registered without the O and F flags (flags '{flags}') ({SETUP_HINT})")
    try:
        machine = subprocess.run([str(root / "bin/busybox"), "uname", "-m"], capture_output=True, text=True,
                                 timeout=30).stdout.strip()
    except (OSError, subprocess.TimeoutExpired) as e:
        raise BoardUnavailable(f"the arm64 BusyBox does not run through binfmt_misc: {e}") from None
    if machine != "aarch64":
        raise BoardUnavailable(f"the arm64 BusyBox's `uname -m` printed {machine!r}, not 'aarch64'")


def _forced_command(bin_dir: Path, marker: str) -> str:
    """The command dropbear runs (in the user's shell, BusyBox sh) for every session."""
    return (
        f"PATH={bin_dir}; export PATH; EDGEBNN_ARMBOARD={marker}; export EDGEBNN_ARMBOARD; "
        'cmd=$SSH_ORIGINAL_COMMAND; unset SSH_ORIGINAL_COMMAND; '
        f'case "$cmd" in {SFTP_SERVER}) echo "sh: {SFTP_SERVER}: not found" >&2; exit 127;; '
        '"") exec sh;; esac; exec sh -c "$cmd"'
    )


def board_processes(main_pid: int, marker: str, zombies: bool = False) -> dict[int, int]:
    """Every live process of the board, as pid: parent pid: dropbear and its descendants, and
    anything that carries the board's marker in its environment or its folder in its command
    line (detached remote processes, the qemu running them). Zombies (only with ``zombies``,
    as descendants) wait for their parents to reap them."""
    parents: dict[int, int] = {}
    dead: set[int] = set()
    found: set[int] = set()
    for proc in Path("/proc").glob("[0-9]*"):
        pid = int(proc.name)
        if pid == os.getpid():
            continue
        try:
            state, ppid = (proc / "stat").read_text().rsplit(")", 1)[1].split()[:2]
            parents[pid] = int(ppid)
            if state in ("Z", "X"):
                dead.add(pid)
                continue
            cmdline = (proc / "cmdline").read_bytes()
            environ = (proc / "environ").read_bytes()
        except (OSError, ValueError, IndexError):
            continue
        if marker.encode() in cmdline or f"EDGEBNN_ARMBOARD={marker}".encode() in environ.split(b"\0"):
            found.add(pid)
    tree = {main_pid}
    changed = True
    while changed:
        changed = False
        for pid, ppid in parents.items():
            if ppid in tree and pid not in tree:
                tree.add(pid)
                changed = True
    keep = (found | tree) & set(parents)
    if not zombies:
        keep -= dead
    return {pid: parents[pid] for pid in sorted(keep)}


def _stop(proc: subprocess.Popen, marker: str, grace: float = 10.0) -> None:
    """End the board from the leaves up (remote commands, then dropbear's connection processes,
    then dropbear), so that each parent reaps its children: SIGTERM, SIGKILL after ``grace``."""
    deadline = time.monotonic() + grace
    while True:
        proc.poll()  # reaps dropbear once it is gone
        board = board_processes(proc.pid, marker, zombies=True)
        live = board_processes(proc.pid, marker)
        if not live:
            break
        now = time.monotonic()
        if now > deadline + 5:
            break
        # A leaf has no child left, not even one still to be reaped: its parent is next.
        leaves = list(live) if now > deadline else [pid for pid in live if pid not in board.values()]
        for pid in leaves:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL if now > deadline else signal.SIGTERM)
        time.sleep(0.05)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(5)


def _setup_tree(dir: Path, root: Path, user: str) -> tuple[Path, Path, Path, Path]:
    """The session's sysroot, BusyBox bin folder, home and board workdir under ``dir``."""
    uid, gid = os.getuid(), os.getgid()
    try:
        group = grp.getgrgid(gid).gr_name
    except KeyError:
        group = user
    bin_dir, home, workdir, sysroot = dir / "bin", dir / "home", dir / "work", dir / "sysroot"
    # BusyBox and its applets, the board's whole PATH.
    bin_dir.mkdir()
    (bin_dir / "busybox").symlink_to(root / "bin/busybox")
    listed = subprocess.run([str(bin_dir / "busybox"), "--list"], capture_output=True, text=True, timeout=60)
    if listed.returncode or "sh" not in listed.stdout.split():
        raise RuntimeError(f"the arm64 BusyBox does not list its applets: {listed.stderr.strip()}")
    for applet in listed.stdout.split():
        if applet not in UNSAFE_APPLETS and applet != "busybox" and "/" not in applet:
            (bin_dir / applet).symlink_to("busybox")
    # What dropbear sees under QEMU_LD_PREFIX: the arm64 libraries and the board's /etc.
    sysroot.mkdir()
    for name in ("lib", "usr"):
        (sysroot / name).symlink_to(root / name)
    etc = sysroot / "etc"
    etc.mkdir()
    (etc / "passwd").write_text(f"{user}:x:{uid}:{gid}:edgebnn armboard:{home}:{bin_dir}/sh\n")
    (etc / "group").write_text(f"{group}:x:{gid}:\n")
    (etc / "shells").write_text(f"{bin_dir}/sh\n")
    (etc / "nsswitch.conf").write_text("passwd: files\ngroup: files\nshadow: files\nhosts: files\n")
    # dropbear is strict: home, ~/.ssh and authorized_keys owned by the user, not group/other-writable.
    home.mkdir(mode=0o755)
    (home / ".ssh").mkdir(mode=0o700)
    workdir.mkdir(mode=0o755)
    return sysroot, bin_dir, home, workdir


@contextlib.contextmanager
def start_board(dir: Path, root: Path = ROOT, timeout: float = 30.0):
    """Run the arm64 dropbear on 127.0.0.1 at a free port with throwaway keys in ``dir``.

    Raises:
        BoardUnavailable: the board is not set up on this machine.
        RuntimeError: dropbear or its keys failed.
    """
    import asyncssh  # the client key in OpenSSH format, without needing ssh-keygen

    check_board(root)
    dir = Path(dir).resolve()
    user = getpass.getuser()
    sysroot, bin_dir, home, workdir = _setup_tree(dir, root, user)
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "QEMU_LD_PREFIX": str(sysroot)}

    client_key = dir / "client_key"
    key = asyncssh.generate_private_key("ssh-ed25519", comment="edgebnn-armboard")
    key.write_private_key(str(client_key))
    client_key.chmod(0o600)
    key.write_public_key(f"{client_key}.pub")
    authorized = home / ".ssh" / "authorized_keys"
    authorized.write_text(Path(f"{client_key}.pub").read_text())
    authorized.chmod(0o600)

    host_key = dir / "host_key"
    dropbearkey = str(root / "usr/bin/dropbearkey")
    made = subprocess.run([dropbearkey, "-t", "ed25519", "-f", str(host_key)], env=env, capture_output=True,
                          text=True, timeout=60)
    shown = subprocess.run([dropbearkey, "-y", "-f", str(host_key)], env=env, capture_output=True, text=True,
                           timeout=60)
    host_pub = next((line.split()[:2] for line in shown.stdout.splitlines() if line.startswith("ssh-ed25519 ")), None)
    if made.returncode or not host_pub:
        raise RuntimeError(f"dropbearkey failed: {made.stderr.strip()} {shown.stderr.strip()}")
    port = free_port()
    known_hosts = dir / "known_hosts"
    known_hosts.write_text(f"[127.0.0.1]:{port} {host_pub[0]} {host_pub[1]}\n")

    marker = str(dir)
    pidfile = dir / "dropbear.pid"
    log_path = dir / "dropbear.log"
    argv = [
        str(root / "usr/sbin/dropbear"), "-F", "-E", "-s", "-m", "-j", "-k", "-p", f"127.0.0.1:{port}",
        "-r", str(host_key), "-P", str(pidfile), "-c", _forced_command(bin_dir, marker),
    ]
    with open(log_path, "w") as log:
        proc = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=log, cwd=dir,
                                start_new_session=True)
    try:
        deadline = time.monotonic() + timeout
        while not (pidfile.exists() and pidfile.read_text().strip()):  # written once it listens
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"dropbear did not start: {log_path.read_text().strip()}")
            time.sleep(0.05)
        os.environ.pop("SSH_AUTH_SOCK", None)  # only the throwaway key, never the developer's agent
        yield ArmBoard(port, dir, client_key, known_hosts, user, root, workdir)
    finally:
        _stop(proc, marker)


@pytest.fixture(scope="session")
def armboard(tmp_path_factory):
    """The emulated aarch64 board for the whole session (CI fails loudly when it is missing)."""
    try:
        check_board()
    except BoardUnavailable as e:
        if os.environ.get("CI"):
            pytest.fail(str(e))  # CI must run the board tests, never skip them
        pytest.skip(str(e))
    try:
        with start_board(tmp_path_factory.mktemp("armboard")) as board:
            yield board
    except RuntimeError as e:
        pytest.fail(str(e))
