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


class DeviceError(EdgebnnError):
    """A device could not be used: unreachable, refused, wrong host key, no runtime...

    Attributes:
        kind: a short error kind recorded in results (``unreachable``, ``refused``,
            ``host_key``, ``auth``, ``connection``, ``preflight``, ``upload``, ``disk_full``).
    """

    def __init__(self, kind: str, message: str):
        super().__init__(message)
        self.kind = kind
