"""The SSH transport: one asyncssh connection per board for a whole run.

Keys and agent, the user's ``~/.ssh/config`` (aliases, User, Port, IdentityFile, ProxyJump)
and known_hosts come from asyncssh's defaults unless the profile names other files. Every
remote command is an argv list joined with :func:`shlex.join` (never a string built from
unquoted input) and runs under the board's ``timeout``, which kills its whole process group
when the limit passes, so nothing is left running on the board.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shlex
import time
from pathlib import Path

import asyncssh

from edgebnn.device.errors import DeviceError, ErrorKind
from edgebnn.device.profiles import DeviceProfile
from edgebnn.device.transport import KILL_GRACE, LIMIT_STATUSES, CommandResult, Transport
from edgebnn.errors import shell_command


def _entry(host: str, port: int | None) -> str:
    """A host as known_hosts writes it: ``host`` on port 22, ``[host]:port`` otherwise."""
    return f"[{host}]:{port}" if port and port != 22 else host


def _read_known_hosts(name: str) -> str:
    """A known_hosts file's text; a missing file holds no keys (as for ssh).

    Raises:
        DeviceError: the file exists but cannot be read or decoded (it never counts as empty:
            ``--accept-new-host-key`` would then accept a changed key).
    """
    try:
        return Path(name).read_text()
    except FileNotFoundError:
        return ""
    except (OSError, UnicodeDecodeError) as e:
        why = getattr(e, "strerror", None) or str(e)
        raise DeviceError(ErrorKind.HOST_KEY, f"cannot read the known_hosts file {name}: {why}; make it a readable "
                                              "text file (or set `known_hosts` in your devices file) and connect "
                                              "again") from None


class _KnownHostsLookup:
    """asyncssh's known_hosts lookup, remembering what it was asked.

    asyncssh calls it with the host after ``~/.ssh/config`` resolved it (HostName, or
    HostKeyAlias), the peer's address and the port (None for 22). Keeping that lets a
    *changed* key (some entry for the host, none matching) be told from a *new* one, and a new
    key be recorded under the real ``[host]:port`` rather than under an alias.
    """

    def __init__(self, files: list[str]):
        self.files = files
        self.asked: tuple[str, int | None] | None = None
        self.found = False  # any entry (key, CA or revocation) for this host
        self.text = "".join(_read_known_hosts(name) + "\n" for name in files)

    def __call__(self, host: str, addr: str, port: int | None):
        self.asked = (host, port)
        keys, cas, revoked = asyncssh.import_known_hosts(self.text).match(host, addr, port)[:3]
        self.found = bool(keys or cas or revoked)
        return keys, cas, revoked

    def record(self, key) -> None:
        """Append ``key`` for the host asked about to the first known_hosts file."""
        path = Path(self.files[0])
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a") as f:
            f.write(f"{_entry(*self.asked)} {key.export_public_key('openssh').decode().strip()}\n")


class SshTransport(Transport):
    """Runs argv lists on a board over one SSH connection.

    Args:
        profile: the board.
        accept_new_host_key: trust and record the host key of a board that is not in
            known_hosts yet (a *changed* key is always refused).
    """

    def __init__(self, profile: DeviceProfile, *, accept_new_host_key: bool = False):
        self.profile = profile
        self.name = profile.name
        self.accept_new_host_key = accept_new_host_key
        self.connections = 0  # how many times we connected (1 unless a drop forced a reconnect)
        self._conn = None
        self._jumps: list = []  # the ProxyJump hosts' connections, in order

    # -- connection --------------------------------------------------------------------------
    def _options(self, *, known_hosts=()) -> dict:
        p = self.profile
        options: dict = {"connect_timeout": p.connect_timeout, "login_timeout": p.connect_timeout}
        if p.port:
            options["port"] = p.port
        if p.user:
            options["username"] = p.user
        if p.key:
            options["client_keys"] = [str(Path(p.key).expanduser())]
        options.update(self._common())
        if known_hosts != ():
            options["known_hosts"] = known_hosts
        return options

    def _common(self) -> dict:
        """The options every hop shares (the board and its jump hosts): the SSH config file."""
        return {"config": [str(Path(self.profile.ssh_config).expanduser())]} if self.profile.ssh_config else {}

    def _resolved(self, host: str, options: dict):
        """asyncssh's options for ``host`` after the SSH config applied (HostName, Port, ProxyJump...)."""
        return asyncssh.SSHClientConnectionOptions(
            host=host, **{k: v for k, v in options.items() if k not in ("known_hosts", "tunnel")})

    def _known_hosts_files(self, host: str | None = None, options: dict | None = None) -> list[str] | None:
        """The known_hosts files to check, the first one being where new keys are recorded.

        The profile's file, else the ``UserKnownHostsFile`` (+ ``GlobalKnownHostsFile``) that
        the SSH config gives this host, else ``~/.ssh/known_hosts``; None when the config
        says ``UserKnownHostsFile none`` (checking deliberately turned off, as in ``ssh``).
        """
        if self.profile.known_hosts:
            return [str(Path(self.profile.known_hosts).expanduser())]
        files = self._resolved(host or self.profile.host, self._options() if options is None else options).known_hosts
        if files is None:
            return None
        return [str(Path(f).expanduser()) for f in files] or [str(Path("~/.ssh/known_hosts").expanduser())]

    async def connect(self) -> None:
        """Connect and authenticate, through the ProxyJump hosts the SSH config names.

        Every hop (jump hosts included) has its host key checked against the same
        known_hosts files, under the HostName and Port its alias resolves to.

        Raises:
            DeviceError: unreachable, refused, unknown or changed host key, authentication
                failed (naming the hop that failed).
        """
        p = self.profile
        await self._close_jumps()
        try:
            tunnel, via = await self._open_jumps(p.host, self._options(), depth=0)
            offered = "" if p.key or os.environ.get("SSH_AUTH_SOCK") else (
                " (the profile names no `key` and no SSH agent is running: SSH_AUTH_SOCK is not set)")
            copy_id = shell_command("ssh-copy-id", *(["-i", p.key] if p.key else []),
                                    *(["-p", str(p.port)] if p.port else []),
                                    f"{p.user}@{p.host}" if p.user else p.host)
            self._conn = await self._hop(p.host, self._options(), tunnel=tunnel, via=via, where=f"{p.name} ({p.address})",
                                         auth_hint=f"set `user` and `key` in your devices file, add the key to your "
                                                   f"SSH agent (`ssh-add KEY`), or run `{copy_id}`{offered}")
        except BaseException:
            await self._close_jumps()
            raise
        self.connections += 1

    async def _open_jumps(self, host: str, options: dict, depth: int):
        """Connect to the ProxyJump chain of ``host``.

        Returns:
            ``(connection, ssh_args)`` of the last jump host (``ssh_args`` reach it with ``ssh``),
            ``(None, "")`` when ``host`` has no ProxyJump.
        """
        spec = self._resolved(host, options).tunnel
        if not isinstance(spec, str) or not spec.strip():
            return None, ""
        if depth >= 8:
            raise DeviceError(ErrorKind.CONNECTION, f"ProxyJump of {host!r} loops (more than 8 jump hosts): fix the ProxyJump "
                                            "lines of your SSH config")
        config = self.profile.ssh_config or "~/.ssh/config"
        conn, via, done = None, "", []
        for hop in (h.strip() for h in spec.split(",")):
            user, _, name = hop.rpartition("@")
            name, _, port_text = name.partition(":") if name.count(":") == 1 else (name, "", "")
            if not name or (port_text and not port_text.isdigit()):
                raise DeviceError(ErrorKind.CONNECTION, f"bad ProxyJump {hop!r} for {host!r}: use [user@]host[:port] in {config}")
            hop_options = {"connect_timeout": self.profile.connect_timeout,
                           "login_timeout": self.profile.connect_timeout, **self._common()}
            if user:
                hop_options["username"] = user
            if port_text:
                hop_options["port"] = int(port_text)
            if conn is None:  # the first hop may itself be behind a jump host
                conn, via = await self._open_jumps(name, hop_options, depth + 1)
            conn = await self._hop(name, hop_options, tunnel=conn, via=via, where=f"jump host {hop} (ProxyJump for "
                                                                          f"{self.profile.name})",
                                   auth_hint=f"set `User` and `IdentityFile` under `Host {name}` in {config}, or add "
                                             "its key to your SSH agent (`ssh-add KEY`)")
            self._jumps.append(conn)
            via = shlex.join([*(["-J", ",".join(done)] if done else []), *(["-p", port_text] if port_text else []),
                              f"{user}@{name}" if user else name])
            done.append(hop)
        return conn, via

    async def _hop(self, host: str, options: dict, *, tunnel, via: str, where: str, auth_hint: str):
        """One SSH connection (directly, or through ``tunnel``, which ``ssh VIA`` reaches), host key checked."""
        p = self.profile
        check = (f"check the host in your devices file or {p.ssh_config or '~/.ssh/config'}, or run "
                 f"`{shell_command('edgebnn', 'devices', 'check', p.name)}`")
        if tunnel is not None:
            options = {**options, "tunnel": tunnel}
        lookup = None
        try:
            files = self._known_hosts_files(host, options)
            lookup = _KnownHostsLookup(files) if files is not None else None
            try:
                return await asyncio.wait_for(asyncssh.connect(host, **options, known_hosts=lookup or ()),
                                              p.connect_timeout + 5)
            except asyncssh.HostKeyNotVerifiable:
                # Only a host with no entry at all may be trusted on first use; a changed key never.
                if not self.accept_new_host_key or lookup is None or lookup.asked is None or lookup.found:
                    raise
                conn = await asyncio.wait_for(asyncssh.connect(host, **options, known_hosts=None),
                                              p.connect_timeout + 5)
                lookup.record(conn.get_server_host_key())
                return conn
        except asyncssh.HostKeyNotVerifiable as e:
            name, port = lookup.asked if lookup and lookup.asked else (host, options.get("port"))
            if lookup and lookup.found:
                raise DeviceError(
                    ErrorKind.HOST_KEY,
                    f"the host key of {where} does not match {lookup.files[0]}: it CHANGED since you "
                    "last connected (a reinstalled board, or someone in between). If you trust the host, remove "
                    f"the old entry with `ssh-keygen -f {shlex.quote(lookup.files[0])} -R {shlex.quote(_entry(name, port))}` "
                    "and connect again",
                ) from None
            target = lookup.files[0] if lookup else str(Path("~/.ssh/known_hosts").expanduser())  # quoted: no ~
            keyscan = shell_command("ssh-keyscan", *(["-p", port] if port else []), name)
            if via:  # only the jump host may reach it: scan from there
                keyscan = f"ssh {via} {keyscan}"
            raise DeviceError(
                ErrorKind.HOST_KEY,
                f"the host key of {where} is not in {target} ({e.reason}): accept it deliberately with "
                f"`{keyscan} >> {shlex.quote(str(target))}` (after checking its fingerprint), `ssh` to it once, or pass "
                "--accept-new-host-key",
            ) from None
        except asyncssh.PermissionDenied:
            raise DeviceError(ErrorKind.AUTH, f"authentication failed for {where}: no key was accepted; {auth_hint}") from None
        except asyncssh.ChannelOpenError as e:  # the jump host could not open the way on
            raise DeviceError(ErrorKind.UNREACHABLE, f"the jump host cannot reach {where}: {e.reason}; check its HostName and "
                                             f"Port in {p.ssh_config or '~/.ssh/config'}") from None
        except ConnectionRefusedError:
            raise DeviceError(ErrorKind.REFUSED, f"connection refused by {where}: is sshd running and is the port right? {check}") from None
        except (TimeoutError, asyncssh.TimeoutError):
            raise DeviceError(ErrorKind.UNREACHABLE, f"cannot reach {where} after {p.connect_timeout:g} s: {check}") from None
        except OSError as e:
            raise DeviceError(ErrorKind.UNREACHABLE, f"cannot reach {where}: {e.strerror or e}; {check}") from None
        except asyncssh.Error as e:
            raise DeviceError(ErrorKind.CONNECTION, f"SSH to {where} failed: {e.reason}; {check}") from None

    async def _close_jumps(self) -> None:
        for conn in reversed(self._jumps):
            conn.close()
            with contextlib.suppress(Exception):
                await conn.wait_closed()
        self._jumps = []

    @property
    def connected(self) -> bool:
        return self._conn is not None

    async def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            await self._conn.wait_closed()
            self._conn = None
        await self._close_jumps()

    # -- commands ----------------------------------------------------------------------------
    async def run(self, argv: list[str], *, timeout: float, input: bytes | None = None,
                  watch: bool = False) -> CommandResult:
        """Run ``argv`` on the board under a time limit (``timeout`` there, a backstop here).

        The remote stdin stays open until the command ends unless ``input`` is given, so a
        watching command sees it end when this connection does (``watch`` asks nothing more).

        Raises:
            DeviceError: the connection was lost (kind ``connection``).
        """
        if self._conn is None:
            await self.connect()
        command = shlex.join(["timeout", "-k", str(KILL_GRACE), f"{timeout:g}", *argv])
        start = time.perf_counter()
        try:
            done = await asyncio.wait_for(self._conn.run(command, input=input, encoding=None),
                                          timeout + KILL_GRACE + 10)
        except TimeoutError:
            return CommandResult(None, "", f"no answer from the board within {timeout:g} s", True)
        except (asyncssh.Error, OSError) as e:
            self._conn = None
            reason = getattr(e, "reason", "") or str(e) or type(e).__name__
            raise DeviceError(ErrorKind.CONNECTION, f"lost the connection to {self.profile.name}: {reason}") from None
        out, err = (done.stdout or b"").decode(errors="replace"), (done.stderr or b"").decode(errors="replace")
        status = done.exit_status
        if status is None:
            if done.exit_signal is None:  # the channel closed without an exit status: the link dropped
                self._conn = None
                raise DeviceError(ErrorKind.CONNECTION, f"lost the connection to {self.profile.name} mid-command (the board "
                                               "rebooted or crashed, or the network dropped)")
            status = 255
            err += f"\nkilled by signal {done.exit_signal[0]}"
        # timeout's own statuses after its limit (coreutils and BusyBox), not the runtime's own code.
        timed_out = status in LIMIT_STATUSES and time.perf_counter() - start >= timeout * 0.95
        return CommandResult(None if timed_out else status, out, err, timed_out)
