"""What third-party libraries would print or leave behind in an edgebnn command, kept out.

- Python warnings that no edgebnn user can act on are hidden one by one (message and raising
  module), never all warnings; ``edgebnn --debug`` shows them again (:func:`show`).
- larq warns about "starved weights" once per layer each time a model is built or loaded (a
  conversion builds it several times): edgebnn says it once, in its own words.
- TensorFlow's autograph writes ``__autograph_generated_file*.py`` into the temp folder and
  deletes them only at a normal exit: a process killed by a signal leaves them there. The
  ``edgebnn`` command keeps its temp files in a folder of its own (:func:`private_tempdir`),
  removed at exit, and removes those of edgebnn processes that died without doing so.
"""

from __future__ import annotations

import atexit
import fcntl
import logging
import os
import shutil
import tempfile
import time
import warnings
from pathlib import Path

# (category, message regex, regex of the module the warning is attributed to)
HIDDEN = (
    # cryptography >= 51 deprecates DSA; asyncssh 2.24 names DSA types at import (5 warnings).
    (UserWarning, r"DSA is deprecated", r"asyncssh\."),
    # tf_keras saving a larq-zoo model with function initializers (it reloads: edgebnn registers them).
    (UserWarning, r"The `keras\.initializers\.serialize\(\)` API should only be used", r"tf_keras\."),
)

STARVED = (
    "note: some binary kernels have no kernel_constraint (larq's weight_clip, say): in training, "
    "their latent weights can pass +-1 and starve (zero gradient); conversion and benchmarks are unaffected"
)

_LARQ_LOGGER = "larq.layers_base"  # where larq logs the starved-weights warning


class StarvedWeightsOnce(logging.Filter):
    """Lets larq's first "starved weights" record through in edgebnn's words, and no other."""

    def __init__(self):
        super().__init__()
        self.said = False

    def filter(self, record: logging.LogRecord) -> bool:
        if "starved weights" not in str(record.msg):
            return True
        if self.said:
            return False
        self.said = True
        record.msg, record.args = STARVED, None
        return True


_starved = StarvedWeightsOnce()


def hide() -> None:
    """Install the filters (``import edgebnn`` does, before any third-party import)."""
    for category, message, module in HIDDEN:
        warnings.filterwarnings("ignore", message=message, category=category, module=module)
    logger = logging.getLogger(_LARQ_LOGGER)
    if _starved not in logger.filters:
        logger.addFilter(_starved)


def show() -> None:
    """Remove the filters again (``edgebnn --debug``): every third-party warning is shown."""
    hidden = {(message, category, module) for category, message, module in HIDDEN}
    warnings.filters[:] = [f for f in warnings.filters
                           if not (f[0] == "ignore" and (_pattern(f[1]), f[2], _pattern(f[3])) in hidden)]
    logging.getLogger(_LARQ_LOGGER).removeFilter(_starved)


def _pattern(regex) -> str:
    return regex.pattern if regex is not None else ""


PREFIX = "edgebnn-"  # private temp folders: edgebnn-<pid>-<random>, holding LOCK while their process runs
LOCK = ".alive"
SETTLE_S = 60.0  # a folder younger than this may not hold its lock yet: never swept


def private_tempdir() -> str | None:
    """Point this process's ``tempfile`` at a folder of its own, removed at exit.

    Each folder holds an exclusive ``flock`` on its ``.alive`` file for its process's life; the
    kernel releases it however the process ends (SIGKILL included), so folders whose lock can
    be taken belong to dead processes and are removed first. Only Python's ``tempfile`` users
    (autograph's generated modules, any other temp file made from Python) move; ``TMPDIR`` for
    child processes is unchanged.

    Returns:
        The private folder, or None when it cannot be made (the temp folder is then used as is).
    """
    parent = Path(tempfile.gettempdir())
    for folder in parent.glob(f"{PREFIX}[0-9]*-*"):
        _remove_if_dead(folder)
    try:
        private = tempfile.mkdtemp(prefix=f"{PREFIX}{os.getpid()}-", dir=parent)
        lock = open(os.path.join(private, LOCK), "w")  # held open (and locked) for the process's life
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:  # a read-only or full temp folder: the command itself says what it cannot write
        return None
    tempfile.tempdir = private

    def remove() -> None:
        tempfile.tempdir = None
        lock.close()
        shutil.rmtree(private, ignore_errors=True)

    atexit.register(remove)  # registered before TensorFlow's removals: runs after them (LIFO)
    return private


def _remove_if_dead(folder) -> None:
    """Remove a private temp folder whose process has ended (its lock is free)."""
    try:
        if time.time() - (folder / LOCK).stat().st_mtime < SETTLE_S:
            return
        with open(folder / LOCK) as lock:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            shutil.rmtree(folder, ignore_errors=True)
    except OSError:  # alive (lock held), another user's, or not ours at all (no lock file)
        pass
