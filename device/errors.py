"""How a benchmark can fail: one enumeration of error kinds, recorded in results instead of raised."""

from __future__ import annotations

import enum

from edgebnn.errors import EdgebnnError


class ErrorKind(enum.StrEnum):
    """The kind of a failure, as results and reports record it (the value is what JSON holds)."""

    # reaching the device
    UNREACHABLE = "unreachable"  # no answer, no route, or the jump host cannot reach it
    REFUSED = "refused"  # nothing listens on the port
    HOST_KEY = "host_key"  # unknown or changed host key, or an unreadable known_hosts
    AUTH = "auth"  # no key was accepted
    CONNECTION = "connection"  # SSH failed, or the link dropped mid-run
    # preparing it
    PREFLIGHT = "preflight"  # the device cannot run a benchmark (no runtime, no timeout...)
    UPLOAD = "upload"  # a file could not be placed on the device
    DISK_FULL = "disk_full"
    # one configuration: the runtime's failures by cause (edgebnn.device.diagnose)
    RUNTIME_START = "runtime_start"  # a shared library or a GLIBC_/GLIBCXX_ version missing on the board
    WRONG_ARCH = "wrong_arch"  # exec format error, 64-bit binary on a 32-bit userland, illegal instruction
    UNKNOWN_OP = "unknown_op"  # an op (version) or custom op the runtime does not know
    DELEGATE = "delegate"  # XNNPACK could not be applied
    ALLOCATE = "allocate"  # tensors could not be allocated, or a node failed to prepare
    MODEL_FILE = "model_file"  # the runtime cannot open or read the flatbuffer
    SIGNAL = "signal"  # killed by a signal (SIGSEGV, SIGABRT...)
    OOM = "oom"  # SIGKILL before the time limit: most often the out-of-memory killer
    FLAG_IGNORED = "flag_ignored"  # ran, but a flag was not consumed: figures marked invalid
    OVERSUBSCRIBED = "oversubscribed"  # ran, but with more threads than cores: figures marked invalid
    CRASH = "crash"  # the runtime exited with an error edgebnn cannot name more precisely
    TIMEOUT = "timeout"  # killed at the time limit
    UNPARSABLE = "unparsable"  # output edgebnn cannot read (kept raw)
    SKIPPED = "skipped"  # not run: the connection was lost before it
    INTERRUPTED = "interrupted"  # the bench was interrupted (Ctrl-C) before every configuration ran
    INTERNAL = "internal"  # a bug in edgebnn, reported so the other devices still finish


class DeviceError(EdgebnnError):
    """A device could not be used; ``kind`` is what the results record.

    Attributes:
        kind: an :class:`ErrorKind`.
    """

    def __init__(self, kind: ErrorKind, message: str):
        super().__init__(message)
        self.kind = ErrorKind(kind)
