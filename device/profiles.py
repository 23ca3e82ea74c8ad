"""Device profiles: how to reach a board and what it is."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from edgebnn.errors import UsageError


@dataclass(frozen=True)
class DeviceProfile:
    """A device to benchmark on.

    Attributes:
        name: the profile's name (``local``, ``bananapi``...).
        transport: ``local`` (this machine) or ``ssh``.
        host, port, user, key: where and as whom to connect (ssh only).
        workdir: the folder on the device for models and runtimes.
        runtime: ``python`` (edgebnn's runner with LCE's interpreter) or the path of
            ``lce_benchmark_model`` on the device.
        threads: the default thread counts to benchmark.
        affinity: CPU list for ``taskset`` (empty: no pinning).
        description: what the board is.
        board: True when latencies are figures of the target board; False for host figures
            (this machine: on x86 LCE runs its portable reference kernels).
    """

    name: str
    transport: str = "ssh"
    host: str = ""
    port: int = 22
    user: str = ""
    key: str = ""
    workdir: str = "/tmp/edgebnn"
    runtime: str = "lce_benchmark_model"
    threads: tuple[int, ...] = (1,)
    affinity: str = ""
    description: str = ""
    board: bool = True

    def to_dict(self) -> dict:
        return asdict(self)


BUILTIN = {
    "local": DeviceProfile(
        name="local",
        transport="local",
        runtime="python",
        threads=(1,),
        description="this machine, LCE's Python interpreter (host figures, not board figures)",
        board=False,
    ),
    "bananapi": DeviceProfile(
        name="bananapi",
        transport="ssh",
        runtime="lce_benchmark_model",
        threads=(4, 1),
        description="Banana Pi M5: Amlogic S905X3, 4x Cortex-A55, aarch64 (the BNext paper's board)",
    ),
}


def get_profile(name: str) -> DeviceProfile:
    """The profile called ``name``.

    Raises:
        UsageError: unknown device.
    """
    try:
        return BUILTIN[name]
    except KeyError:
        raise UsageError(
            f"unknown device {name!r}: choose one of {', '.join(sorted(BUILTIN))}, "
            "or run `edgebnn devices` for the list"
        ) from None
