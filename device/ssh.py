"""The SSH transport: one asyncssh connection per board for a whole run.

Keys and agent, the user's ``~/.ssh/config`` (aliases, User, Port, IdentityFile, ProxyJump)
and known_hosts come from asyncssh's defaults unless the profile names other files. Every
remote command is an argv list joined with :func:`shlex.join` (never a string built from
unquoted input) and runs under the board's ``timeout``, which kills its whole process group
when the limit passes, so nothing is left running on the board.
"""

from __future__ import annotations

import asyncio
import hashlib
import shlex
import time
from dataclasses import dataclass
from pathlib import Path

from edgebnn.device.local import CommandResult
from edgebnn.device.profiles import DeviceProfile
from edgebnn.errors import DeviceError

KILL_GRACE = 3  # seconds between timeout's TERM and its KILL
UPLOAD_ATTEMPTS = 3

# Writes stdin to "$1", checks its sha256 against "$3", then renames it to "$2" (atomic on
# the board: a dropped upload never leaves a file at the content-addressed path).
_PUT = r"""
part=$1 final=$2 want=$3 mode=$4
mkdir -p "${final%/*}" || exit 10
trap 'rm -f "$part"' EXIT
cat > "$part" || exit 11
got=$(sha256sum "$part" | cut -d' ' -f1)
[ "$got" = "$want" ] || { echo "checksum mismatch: $got on the board, $want sent" >&2; exit 12; }
chmod "$mode" "$part" && mv -f "$part" "$final"
"""
# Prints the paths among "$@" (path, sha256 pairs) that are present with the right content.
_PRESENT = r"""
while [ $# -ge 2 ]; do
  [ -f "$1" ] && [ "$(sha256sum "$1" | cut -d' ' -f1)" = "$2" ] && echo "$1"
  shift 2
done
exit 0
"""


def sha256_file(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _entry(host: str, port: int | None) -> str:
    """A host as known_hosts writes it: ``host`` on port 22, ``[host]:port`` otherwise."""
    return f"[{host}]:{port}" if port and port != 22 else host


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

    def __call__(self, host: str, addr: str, port: int | None):
        import asyncssh

        self.asked = (host, port)
        text = ""
        for name in self.files:
            try:
                text += Path(name).read_text() + "\n"
            except OSError:
                continue  # like ssh: a missing known_hosts file holds no keys
        keys, cas, revoked = asyncssh.import_known_hosts(text).match(host, addr, port)[:3]
        self.found = bool(keys or cas or revoked)
        return keys, cas, revoked

    def record(self, key) -> None:
        """Append ``key`` for the host asked about to the first known_hosts file."""
        path = Path(self.files[0])
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a") as f:
            f.write(f"{_entry(*self.asked)} {key.export_public_key('openssh').decode().strip()}\n")


@dataclass
class Upload:
    """A file to place on the board at a content-addressed path."""

    local: Path
    remote: str
    sha256: str
    mode: str = "644"


class SshTransport:
    """Runs argv lists on a board over one SSH connection.

    Args:
        profile: the board.
        accept_new_host_key: trust and record the host key of a board that is not in
            known_hosts yet (a *changed* key is always refused).
    """

    def __init__(self, profile: DeviceProfile, *, accept_new_host_key: bool = False):
        self.profile = profile
        self.accept_new_host_key = accept_new_host_key
        self.connections = 0  # how many times we connected (1 unless a drop forced a reconnect)
        self._conn = None

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
        if p.ssh_config:
            options["config"] = [str(Path(p.ssh_config).expanduser())]
        if known_hosts != ():
            options["known_hosts"] = known_hosts
        return options

    def _known_hosts_files(self) -> list[str] | None:
        """The known_hosts files to check, the first one being where new keys are recorded.

        The profile's file, else the ``UserKnownHostsFile`` (+ ``GlobalKnownHostsFile``) that
        the SSH config gives this host, else ``~/.ssh/known_hosts``; None when the config
        says ``UserKnownHostsFile none`` (checking deliberately turned off, as in ``ssh``).
        """
        import asyncssh

        if self.profile.known_hosts:
            return [str(Path(self.profile.known_hosts).expanduser())]
        files = asyncssh.SSHClientConnectionOptions(host=self.profile.host, **self._options()).known_hosts
        if files is None:
            return None
        return [str(Path(f).expanduser()) for f in files] or [str(Path("~/.ssh/known_hosts").expanduser())]

    async def connect(self) -> None:
        """Connect and authenticate.

        Raises:
            DeviceError: unreachable, refused, unknown or changed host key, authentication failed.
        """
        import asyncssh

        p = self.profile
        where = f"{p.name} ({p.address})"
        check = f"check the host in your devices file or ~/.ssh/config, or run `edgebnn devices check {p.name}`"
        try:
            files = self._known_hosts_files()
            lookup = _KnownHostsLookup(files) if files is not None else None
            try:
                self._conn = await asyncio.wait_for(asyncssh.connect(p.host, **self._options(known_hosts=lookup or ())),
                                                    p.connect_timeout + 5)
            except asyncssh.HostKeyNotVerifiable:
                # Only a host with no entry at all may be trusted on first use; a changed key never.
                if not self.accept_new_host_key or lookup is None or lookup.asked is None or lookup.found:
                    raise
                self._conn = await asyncio.wait_for(
                    asyncssh.connect(p.host, **self._options(known_hosts=None)), p.connect_timeout + 5
                )
                lookup.record(self._conn.get_server_host_key())
        except asyncssh.HostKeyNotVerifiable as e:
            host, port = lookup.asked if lookup and lookup.asked else (p.host, p.port or None)
            if lookup and lookup.found:
                raise DeviceError(
                    "host_key",
                    f"the host key of {where} does not match {lookup.files[0]}: it CHANGED since you "
                    "last connected (a reinstalled board, or someone in between). If you trust the board, remove "
                    f"the old entry with `ssh-keygen -f {shlex.quote(lookup.files[0])} -R {shlex.quote(_entry(host, port))}` "
                    "and connect again",
                ) from None
            target = lookup.files[0] if lookup else "~/.ssh/known_hosts"
            raise DeviceError(
                "host_key",
                f"the host key of {where} is not in {target} ({e.reason}): accept it deliberately with "
                f"`ssh-keyscan {f'-p {port} ' if port else ''}{host} >> {target}` (after checking its "
                "fingerprint), `ssh` to it once, or pass --accept-new-host-key",
            ) from None
        except asyncssh.PermissionDenied:
            raise DeviceError(
                "auth",
                f"authentication failed for {where}: no key was accepted; set `user` and `key` in your devices "
                f"file, add the key to your SSH agent, or run `ssh-copy-id {p.address.rsplit(':', 1)[0]}`",
            ) from None
        except ConnectionRefusedError:
            raise DeviceError("refused", f"connection refused by {where}: is sshd running and is the port right? {check}") from None
        except (asyncio.TimeoutError, asyncssh.TimeoutError):
            raise DeviceError("unreachable", f"cannot reach {where} after {p.connect_timeout:g} s: {check}") from None
        except OSError as e:
            raise DeviceError("unreachable", f"cannot reach {where}: {e.strerror or e}; {check}") from None
        except asyncssh.Error as e:
            raise DeviceError("connection", f"SSH to {where} failed: {e.reason}; {check}") from None
        self.connections += 1

    @property
    def connected(self) -> bool:
        return self._conn is not None

    async def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            await self._conn.wait_closed()
            self._conn = None

    # -- commands ----------------------------------------------------------------------------
    async def run(self, argv: list[str], *, timeout: float, input: bytes | None = None) -> CommandResult:
        """Run ``argv`` on the board under a time limit (``timeout`` there, a backstop here).

        Raises:
            DeviceError: the connection was lost (kind ``connection``).
        """
        import asyncssh

        if self._conn is None:
            await self.connect()
        command = shlex.join(["timeout", "-k", str(KILL_GRACE), f"{timeout:g}", *argv])
        start = time.perf_counter()
        try:
            done = await asyncio.wait_for(self._conn.run(command, input=input, encoding=None),
                                          timeout + KILL_GRACE + 10)
        except asyncio.TimeoutError:
            return CommandResult(None, "", f"no answer from the board within {timeout:g} s", True)
        except (asyncssh.Error, OSError) as e:
            self._conn = None
            reason = getattr(e, "reason", "") or str(e) or type(e).__name__
            raise DeviceError("connection", f"lost the connection to {self.profile.name}: {reason}") from None
        out, err = (done.stdout or b"").decode(errors="replace"), (done.stderr or b"").decode(errors="replace")
        status = done.exit_status
        if status is None:
            if done.exit_signal is None:  # the channel closed without an exit status: the link dropped
                self._conn = None
                raise DeviceError("connection", f"lost the connection to {self.profile.name} mid-command (the board "
                                               "rebooted or crashed, or the network dropped)")
            status = 255
            err += f"\nkilled by signal {done.exit_signal[0]}"
        # timeout exits 124 after TERM and 137 after KILL: the limit passed (not the runtime's own code).
        timed_out = status in (124, 137) and time.perf_counter() - start >= timeout * 0.95
        return CommandResult(None if timed_out else status, out, err, timed_out)

    async def present(self, uploads: list[Upload]) -> set[str]:
        """The remote paths among ``uploads`` already on the board with the right content."""
        args = [x for u in uploads for x in (u.remote, u.sha256)]
        result = await self.run(["sh", "-c", _PRESENT, "sh", *args], timeout=60)
        return set(result.stdout.split("\n")) - {""} if result.exit_status == 0 else set()

    async def upload(self, item: Upload) -> int:
        """Copy ``item`` to the board, verify its sha256 there, then move it into place.

        A dropped connection or a checksum mismatch is retried (reconnecting) up to
        :data:`UPLOAD_ATTEMPTS` times.

        Returns:
            The number of attempts it took.

        Raises:
            DeviceError: ``disk_full`` when the board's disk is full, ``upload`` otherwise.
        """
        data = item.local.read_bytes()
        where = f"{self.profile.name}:{item.remote}"
        last = ""
        for attempt in range(1, UPLOAD_ATTEMPTS + 1):
            try:
                result = await self.run(["sh", "-c", _PUT, "sh", item.remote + ".part", item.remote, item.sha256,
                                         item.mode], timeout=max(60.0, len(data) / 1e5), input=data)
            except DeviceError as e:
                last = str(e)
                await self.close()
                try:
                    await self.connect()
                except DeviceError as again:
                    raise DeviceError("upload", f"cannot upload {item.local.name} to {where}: {last}; reconnecting "
                                                f"failed: {again}") from None
                continue
            if result.exit_status == 0:
                return attempt
            last = (result.stderr.strip().splitlines() or [f"exit status {result.exit_status}"])[-1]
            if "No space left" in last or "Disk quota" in last:
                raise DeviceError("disk_full", f"cannot upload {item.local.name} ({len(data) / 1e6:.2f} MB) to {where}: "
                                               f"{last}; free space on the board or set another `workdir` for "
                                               f"{self.profile.name} in your devices file")
            if result.exit_status != 12:  # only a checksum mismatch is worth sending again
                break
        raise DeviceError("upload", f"cannot upload {item.local.name} to {where}: {last}")
