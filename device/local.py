"""The local transport: commands run on this machine as subprocesses."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal

from edgebnn.device.transport import CommandResult, Transport

STOP_GRACE = 3.0  # seconds a cancelled command has to end its runtime and remove its scratch


class LocalTransport(Transport):
    """Runs argv lists (never a shell string) on this machine, each in its own process group."""

    def __init__(self, profile=None):
        self.name = profile.name if profile is not None else "local"

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
