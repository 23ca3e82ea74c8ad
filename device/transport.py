"""What the protocol needs of a way to reach a device; this machine and an SSH board alike.

A transport runs argv lists (never a shell string built from input) under a time limit and
places files at content-addressed paths. :class:`Transport` implements placing on top of
``run``, the same shell script for every device, so the protocol has no "if remote" branch:
``local`` is one more transport (:mod:`edgebnn.device.local`), SSH another
(:mod:`edgebnn.device.ssh`); :func:`edgebnn.device.transports.open_transport` picks one.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from edgebnn.device.errors import DeviceError, ErrorKind

UPLOAD_ATTEMPTS = 3
KILL_GRACE = 3  # seconds between timeout's TERM and its KILL
# What `timeout` exits with when its limit passed: coreutils 124 after TERM, BusyBox the child's
# own death by TERM (128 + 15), both 137 after KILL. Only counted as the limit when it took that long.
LIMIT_STATUSES = (124, 137, 143)

# Writes stdin to a unique part file beside "$2", checks its sha256 against "$3", then renames
# it to "$2" (atomic on the device: a dropped upload never leaves a file at the content-addressed
# path, and two uploads of one file at once do not collide). The digest is read from stdin, so a
# name with a backslash or a newline (which sha256sum escapes) cannot make it differ. A dropped
# link ends the script by a signal (SIGHUP from the SSH server, SIGPIPE writing to the gone
# client), and a shell killed by a signal skips its EXIT trap (BusyBox ash, dash): those signals
# are turned into an exit, so the part file is removed whatever ends the upload short of SIGKILL.
_PUT = r"""
final=$1 want=$2 mode=$3
mkdir -p "${final%/*}" || exit 10
part="$final.part.$$"
trap 'rm -f "$part"' EXIT
trap 'exit 13' HUP INT PIPE TERM
cat > "$part" || exit 11
got=$(sha256sum < "$part" | cut -d' ' -f1)
[ "$got" = "$want" ] || { echo "checksum mismatch: $got on the device, $want sent" >&2; exit 12; }
chmod "$mode" "$part" && mv -f "$part" "$final"
"""
# Prints the paths among "$@" (path, sha256 pairs) that are present with the right content.
PRESENT = r"""
while [ $# -ge 2 ]; do
  [ -f "$1" ] && [ "$(sha256sum < "$1" | cut -d' ' -f1)" = "$2" ] && echo "$1"
  shift 2
done
exit 0
"""


@dataclass
class CommandResult:
    """What a command did: exit status (None when killed at the time limit) and its output."""

    exit_status: int | None  # None: killed at the time limit
    stdout: str
    stderr: str
    timed_out: bool = False


@dataclass
class Upload:
    """A file to place on the device at a content-addressed path."""

    local: Path
    remote: str
    sha256: str
    mode: str = "644"


class Transport:
    """The base of every transport: subclasses implement ``connect``, ``run`` and ``close``.

    Attributes:
        name: the device's name, for messages.
        connections: how many connections were opened (1 unless a drop forced a reconnect;
            0 for this machine).
    """

    name = "device"
    connections = 0

    async def connect(self) -> None:
        """Reach the device (a no-op for this machine)."""

    @property
    def connected(self) -> bool:
        return True

    async def run(self, argv: list[str], *, timeout: float, input: bytes | None = None,
                  watch: bool = False) -> CommandResult:
        """Run ``argv`` on the device within ``timeout`` seconds (killed after it).

        ``input`` is sent to its stdin; with ``watch`` its stdin stays open, and empty, until it
        ends, so that it can tell when edgebnn is gone (its stdin then ends).

        Raises:
            DeviceError: the connection was lost (kind ``connection``).
        """
        raise NotImplementedError

    async def close(self) -> None:
        """Release the connection (a no-op for this machine)."""

    async def present(self, uploads: list[Upload]) -> set[str]:
        """The device paths among ``uploads`` already there with the right content."""
        args = [x for u in uploads for x in (u.remote, u.sha256)]
        result = await self.run(["sh", "-c", PRESENT, "sh", *args], timeout=60)
        return set(result.stdout.split("\n")) - {""} if result.exit_status == 0 else set()

    async def upload(self, item: Upload) -> int:
        """Copy ``item`` to the device, verify its sha256 there, then move it into place.

        A dropped connection or a checksum mismatch is retried (reconnecting) up to
        :data:`UPLOAD_ATTEMPTS` times.

        Returns:
            The number of attempts it took.

        Raises:
            DeviceError: ``disk_full`` when the device's disk is full, ``upload`` otherwise.
        """
        data = item.local.read_bytes()
        where = f"{self.name}:{item.remote}"
        last = ""
        for attempt in range(1, UPLOAD_ATTEMPTS + 1):
            try:
                result = await self.run(["sh", "-c", _PUT, "sh", item.remote, item.sha256, item.mode],
                                        timeout=max(60.0, len(data) / 1e5), input=data)
            except DeviceError as e:
                last = str(e)
                await self.close()
                try:
                    await self.connect()
                except DeviceError as again:
                    raise DeviceError(ErrorKind.UPLOAD, f"cannot upload {item.local.name} to {where}: {last}; "
                                                        f"reconnecting failed: {again}") from None
                continue
            if result.exit_status == 0:
                return attempt
            last = (result.stderr.strip().splitlines() or [f"exit status {result.exit_status}"])[-1]
            if "No space left" in last or "Disk quota" in last:
                raise DeviceError(ErrorKind.DISK_FULL, f"cannot upload {item.local.name} ({len(data) / 1e6:.2f} MB) "
                                                       f"to {where}: {last}; free space on the device or set another "
                                                       f"`workdir` for {self.name} in your devices file")
            if result.exit_status != 12:  # only a checksum mismatch is worth sending again
                break
        raise DeviceError(ErrorKind.UPLOAD, f"cannot upload {item.local.name} to {where}: {last}")
