"""The one exception type the CLI turns into a clean message."""


class EdgebnnError(Exception):
    """A failure the user can act on: the message names the bad value and the next step.

    Attributes:
        exit_code: 1 for a failure, 2 for bad usage (the click convention).
    """

    exit_code = 1


class UsageError(EdgebnnError):
    """Bad input on the command line (unknown model, target or device)."""

    exit_code = 2
