"""The local transport: commands run on this machine as subprocesses."""

from __future__ import annotations

import asyncio
import contextlib
import os
import platform
import signal
from dataclasses import dataclass


@dataclass
class CommandResult:
    """What a command did: exit status (None when killed at the time limit) and its output."""

    exit_status: int | None  # None: killed at the time limit
    stdout: str
    stderr: str
    timed_out: bool = False


class LocalTransport:
    """Runs argv lists (never a shell string) on this machine."""

    async def run(self, argv: list[str], *, timeout: float) -> CommandResult:
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
            start_new_session=True,  # its own process group: a timeout kills its children too
        )
        try:
            out, err = await asyncio.wait_for(proc.communicate(), timeout)
        except asyncio.TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            out, err = await proc.communicate()
            return CommandResult(None, out.decode(errors="replace"), err.decode(errors="replace"), True)
        return CommandResult(proc.returncode, out.decode(errors="replace"), err.decode(errors="replace"))

    async def fingerprint(self) -> dict:
        """What this machine is (the local counterpart of a board's preflight)."""
        cpu = ""
        try:
            with open("/proc/cpuinfo") as f:
                cpu = next((l.split(":", 1)[1].strip() for l in f if l.startswith("model name")), "")
        except OSError:
            pass
        return {
            "arch": platform.machine(),
            "kernel": platform.release(),
            "cpu": cpu or platform.processor(),
            "cores": os.cpu_count(),
        }

    async def close(self) -> None:
        pass
