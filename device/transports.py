"""The transports edgebnn has, and the one that reaches a profile's device."""

from __future__ import annotations

from edgebnn.device.local import LocalTransport
from edgebnn.device.profiles import DeviceProfile
from edgebnn.device.ssh import SshTransport
from edgebnn.device.transport import Transport


def open_transport(profile: DeviceProfile, *, accept_new_host_key: bool = False) -> Transport:
    """The transport for ``profile``: this machine, or SSH (not connected yet)."""
    if profile.transport == "local":
        return LocalTransport(profile)
    return SshTransport(profile, accept_new_host_key=accept_new_host_key)
