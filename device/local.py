"""The local transport: commands run on this machine as subprocesses, in a private work folder.

The work folder holds the runner and the model that the runtime runs a moment after their
sha256 was checked. Another local user who could write that folder (or rename it, or one of
its parents) could swap them in between and have code run as the user who benchmarks. So the
folder must be this user's alone: :func:`private_workdir` creates it with mode 0700 and refuses
one that another user owns, that group or others can write, or whose parents someone else can
change; nothing in it may belong to another user. Once that holds, nobody but this user (and
root) can change what is checked before it runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pwd
import signal
import stat
from pathlib import Path

from edgebnn.device.errors import DeviceError, ErrorKind
from edgebnn.device.transport import CommandResult, Transport
from edgebnn.errors import shell_command

STOP_GRACE = 3.0  # seconds a cancelled command has to end its runtime and remove its scratch


class UnsafeWorkdir(DeviceError):
    """The local work folder is not private to this user: a configuration to fix (exit 2)."""

    exit_code = 2

    def __init__(self, message: str):
        super().__init__(ErrorKind.PREFLIGHT, message)


def _owner(uid: int) -> str:
    try:
        return f"{pwd.getpwuid(uid).pw_name} (uid {uid})"
    except KeyError:
        return f"uid {uid}"


def _parent_problem(folder: Path) -> str:
    """Which parent of ``folder`` (as given, and with its links resolved) another user could change."""
    me = os.geteuid()
    for chain in (folder, Path(os.path.realpath(folder))):
        for parent in reversed(chain.parents):
            link, st = os.lstat(parent), os.stat(parent)
            if stat.S_ISLNK(link.st_mode) and link.st_uid not in (0, me):
                return f"its parent {parent} is a link owned by {_owner(link.st_uid)}"
            if st.st_uid not in (0, me):
                return f"its parent {parent} is owned by {_owner(st.st_uid)}"
            # A sticky folder (/tmp) lets others add entries, never rename or remove ours.
            if st.st_mode & 0o022 and not st.st_mode & stat.S_ISVTX:
                return f"its parent {parent} has mode {stat.S_IMODE(st.st_mode):04o}: group or others can write it"
    return ""


def private_workdir(path: str) -> Path:
    """Create the local work folder ``path`` if missing (mode 0700), and check it is this user's alone.

    Raises:
        UnsafeWorkdir: naming the folder, what is wrong (its owner or mode, a parent, a file in
            it that another user owns) and the next step.
    """
    folder = Path(path)
    me = os.geteuid()
    fix = "set a private `workdir` for this device in your devices file (a folder only you can write)"
    try:
        missing = [p for p in [folder, *folder.parents] if not os.path.lexists(p)]
        for part in reversed(missing):  # mkdir is atomic: a folder someone made first is never taken as ours
            with contextlib.suppress(FileExistsError):
                os.mkdir(part, 0o700)
        st = os.lstat(folder)
        problem = _parent_problem(folder)
    except OSError as e:
        raise UnsafeWorkdir(f"cannot make the local work folder {folder}: {e.strerror or e}; set a `workdir` "
                            "you can write for this device in your devices file") from None
    mine = problem  # a parent's problem: nothing to remove here
    if stat.S_ISLNK(st.st_mode) or not stat.S_ISDIR(st.st_mode):
        problem = "it is a link or not a folder"
    elif st.st_uid != me:
        problem = f"it is owned by {_owner(st.st_uid)}, not by you ({_owner(me)}), mode {stat.S_IMODE(st.st_mode):04o}"
    elif st.st_mode & 0o022:
        problem = f"its mode is {stat.S_IMODE(st.st_mode):04o}: group or others can write it"
    if not problem:
        problem = _foreign_entry(folder, me)
    if problem and problem != mine:
        fix = f"remove it (`{shell_command('rm', '-rf', folder)}`) if you did not make it, or {fix}"
    if problem:
        raise UnsafeWorkdir(f"refusing the local work folder {folder}: {problem}. Another user could swap the runner "
                            f"or the model in it between edgebnn's check and the run; {fix}")
    return folder


def _foreign_entry(folder: Path, me: int) -> str:
    """A file or folder edgebnn keeps in ``folder`` that another user owns ("" when none)."""
    for top in [folder / "bin", folder / "models", *folder.glob("run-*")]:
        if not os.path.lexists(top):
            continue
        for root, dirs, files in os.walk(top):
            for name in [".", *dirs, *files]:
                entry = Path(root, name)
                uid = os.lstat(entry).st_uid
                if uid != me:
                    return f"{entry} in it is owned by {_owner(uid)}"
    return ""


class LocalTransport(Transport):
    """Runs argv lists (never a shell string) on this machine, each in its own process group."""

    def __init__(self, profile=None):
        self.name = profile.name if profile is not None else "local"
        self.workdir = profile.workdir if profile is not None else None

    async def connect(self) -> None:
        """Check the work folder (:func:`private_workdir`): nothing runs from a folder others can change."""
        if self.workdir:
            private_workdir(self.workdir)

    async def run(self, argv: list[str], *, timeout: float, input: bytes | None = None,
                  watch: bool = False) -> CommandResult:
        """Run ``argv``; with ``watch``, its stdin stays open (and empty) until it ends or we do."""
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.PIPE if input is not None or watch else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
            start_new_session=True,  # its own process group: a timeout kills its children too
        )
        try:
            out, err = await asyncio.wait_for(proc.communicate(input), timeout)
        except TimeoutError:
            _kill_group(proc)
            out, err = await proc.communicate()
            return CommandResult(None, out.decode(errors="replace"), err.decode(errors="replace"), True)
        except BaseException:  # cancelled (Ctrl-C) or failed: nothing of it may outlive us
            await _end(proc)
            raise
        return CommandResult(proc.returncode, out.decode(errors="replace"), err.decode(errors="replace"))


async def _end(proc) -> None:
    """Close the command's stdin (a watching wrapper then ends its runtime's group), then kill its own."""
    if proc.stdin is not None:
        proc.stdin.close()
    with contextlib.suppress(asyncio.TimeoutError, asyncio.CancelledError):
        await asyncio.wait_for(proc.wait(), STOP_GRACE)
    _kill_group(proc)


def _kill_group(proc) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)


def check_local_workdirs(profiles) -> None:
    """:func:`private_workdir` for every profile of ``profiles`` on this machine, before anything runs.

    Raises:
        UnsafeWorkdir: a work folder another user could change (exit 2).
    """
    for profile in profiles:
        if profile.transport == "local":
            private_workdir(profile.workdir)
