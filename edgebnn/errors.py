"""The one exception type the CLI turns into a clean message."""


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
    import shlex

    return shlex.join(str(a) for a in argv)
