"""Real faults for the tests: a small tmpfs that fills up, processes to signal and to look for,
and the check that a command failed the way a user should see it fail."""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
from pathlib import Path

import pytest


@contextlib.contextmanager
def small_tmpfs(path: Path, *, kib: int):
    """A real tmpfs of ``kib`` KiB mounted at ``path`` (root only), unmounted afterwards.

    Skips where mounting is not allowed, but fails in CI (``.ci/run`` runs as root), as the
    sshd tests do.
    """
    path.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={kib}k", "tmpfs", str(path)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        message = f"cannot mount a tmpfs at {path}: {done.stderr.strip()} (needs root)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def processes(pattern: str) -> list[int]:
    """PIDs of the processes whose command line contains ``pattern`` (this test's excluded)."""
    found = subprocess.run(["pgrep", "-f", "--", pattern], capture_output=True, text=True).stdout.split()
    return [int(p) for p in found if int(p) != os.getpid()]


def wait_for(condition, *, timeout: float, what: str, interval: float = 0.1):
    """Poll ``condition()`` until it is true; fail naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"{what} within {timeout:g} s")
        time.sleep(interval)


def fails_cleanly(result, code: int, *fragments: str) -> None:
    """A click result that exited ``code`` with one clear message naming each fragment, no traceback."""
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output and "unexpected" not in result.output, result.output
    for fragment in fragments:
        assert fragment in result.output, result.output
