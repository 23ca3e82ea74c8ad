"""The one exception type the CLI turns into a clean message, and what messages are made of."""

import re
import shlex


class EdgebnnError(Exception):
    """A failure the user can act on: the message names the bad value and the next step.

    Attributes:
        exit_code: 1 for a failure, 2 for bad usage (the click convention).
    """

    exit_code = 1


class UsageError(EdgebnnError, ValueError):
    """Bad input (unknown model, target or device; an option a builder refuses).

    Also a ``ValueError``, so that builders and quantizers raise it where Python code expects one.
    """

    exit_code = 2


def shell_command(*argv) -> str:
    """A command a message suggests, quoted so that pasting it runs exactly that (odd names included)."""
    return shlex.join(str(a) for a in argv)


# What a terminal acts on rather than shows: CSI and OSC sequences (colours, cursor moves, a window
# title, hyperlinks, clipboard writes), other escape sequences, C1 controls (U+009B is a CSI too),
# and every C0 control but newline and tab (a carriage return or backspace can overwrite what was shown).
_TERMINAL = re.compile(
    r"\x1b\[[0-?]*[ -/]*[@-~]"  # CSI
    r"|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?"  # OSC, ended by BEL or ST (or cut short)
    r"|\x1b[PX^_][^\x1b]*(?:\x1b\\)?"  # DCS, SOS, PM, APC strings
    r"|\x1b[ -/]*[0-~]?"  # any other escape sequence
    r"|\x9b[0-?]*[ -/]*[@-~]|\x9d[^\x07\x1b\x9c]*[\x07\x9c]?"  # CSI and OSC in their 8-bit (C1) form
    r"|[\x00-\x08\x0b-\x1f\x7f-\x9f]"
)


def printable(text) -> str:
    """``text`` with terminal escape sequences and control characters removed (newlines and tabs kept).

    Whatever a device printed (its runtime's output, its CPU name, a path), and whatever a shared run
    directory holds, goes through this before it reaches the terminal; JSON records keep the raw text
    (JSON escapes it).
    """
    return _TERMINAL.sub("", str(text))
