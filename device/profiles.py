"""Device profiles: how to reach a board and what it is.

A profile comes from, in order of precedence: the environment (``EDGEBNN_<NAME>_HOST``,
``_USER``, ``_PORT``), the user's devices file, the built-ins (``local``, ``bananapi``) and,
for a host alias, the user's ``~/.ssh/config`` (asyncssh reads it at connect time). An ad-hoc
board is ``ssh://user@host:port`` (query parameters set any other field:
``ssh://pi@10.0.0.7?runtime=python&python=python3``). Every field is checked once, whichever of
those it came from (:data:`CHECKS`). The devices file is read by :mod:`edgebnn.device.devices_file`;
the runtime ``edgebnn devices setup`` installed comes from :mod:`edgebnn.device.setup_record`.
"""

from __future__ import annotations

import os
import re
import sys
import urllib.parse
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

from edgebnn.device.checks import number, switch, taskset_cpus, text, thread_counts, whole
from edgebnn.device.devices_file import read_devices_file
from edgebnn.device.setup_record import read_setup, recorded_fields, setup_path
from edgebnn.errors import EdgebnnError, UsageError


@dataclass(frozen=True)
class DeviceProfile:
    """A device to benchmark on.

    Attributes:
        name: the profile's name (``local``, ``bananapi``...).
        transport: ``local`` (this machine) or ``ssh``.
        host, port, user, key: where and as whom to connect (ssh only). ``host`` may be an
            alias of the user's SSH config, whose HostName, User, Port, IdentityFile and
            ProxyJump then apply; ``port`` 0 means the SSH config's port or 22.
        ssh_config: an SSH client config file instead of ``~/.ssh/config``.
        known_hosts: a known_hosts file instead of ``~/.ssh/known_hosts``.
        connect_timeout: seconds allowed to connect and authenticate.
        workdir: the folder on the device for models, runtimes and scratch files (for this
            machine, by default this user's private ``~/.cache/edgebnn/work``: see
            :func:`edgebnn.device.local.private_workdir`).
        runtime: ``python`` (edgebnn's runner with LCE's interpreter) or the path of
            ``lce_benchmark_model`` on the device.
        runtime_file: a local ``lce_benchmark_model`` that edgebnn uploads (once, by hash)
            and runs instead of ``runtime``.
        python: the device's Python, for the ``python`` runtime.
        threads: the default thread counts to benchmark.
        affinity: CPU list for ``taskset`` (empty: no pinning).
        cooldown: seconds of rest between configurations (lets the SoC cool down).
        throttle_temp: SoC temperature (C) at or above which a run is flagged as throttled.
        thermal_zones: the files on the device whose millidegrees are the SoC temperatures, a
            glob (several: one a line) expanded on the device.
        description: what the board is.
        board: True when latencies are figures of the target board; False for host figures
            (this machine: on x86 LCE runs its portable reference kernels).
    """

    name: str
    transport: str = "ssh"
    host: str = ""
    port: int = 0
    user: str = ""
    key: str = ""
    ssh_config: str = ""
    known_hosts: str = ""
    connect_timeout: float = 10.0
    workdir: str = "/tmp/edgebnn-work"
    runtime: str = "lce_benchmark_model"
    runtime_file: str = ""
    python: str = "python3"
    threads: tuple[int, ...] = (1,)
    affinity: str = ""
    cooldown: float = 2.0
    throttle_temp: float = 80.0
    thermal_zones: str = "/sys/class/thermal/thermal_zone*/temp"
    description: str = ""
    board: bool = True

    def to_dict(self) -> dict:
        return asdict(self)

    @property
    def address(self) -> str:
        """``user@host:port`` as far as known here (the SSH config may fill in the rest)."""
        user = f"{self.user}@" if self.user else ""
        port = f":{self.port}" if self.port else ""
        return f"{user}{self.host}{port}"

    @property
    def file_name(self) -> str:
        """The name made safe for a file name (``bench/<file_name>-<utc>.json``)."""
        return re.sub(r"[^A-Za-z0-9_.-]+", "_", self.name).strip("_") or "device"


BUILTIN = {
    "local": DeviceProfile(
        name="local",
        transport="local",
        runtime="python",
        python=sys.executable,
        threads=(1,),
        cooldown=0.0,
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


def cache_dir() -> Path:
    """edgebnn's per-user cache: ``$EDGEBNN_CACHE``, else ``~/.cache/edgebnn``."""
    return Path(os.environ.get("EDGEBNN_CACHE") or Path.home() / ".cache" / "edgebnn")


def local_workdir() -> Path:
    """The local device's default work folder: this user's ``<cache>/work`` (made private at connect)."""
    return cache_dir() / "work"


TRANSPORTS = ("local", "ssh")
# The fields an ssh:// URL may set: they act on the board only. The others name files or
# programs on this machine (transport=local runs a local program and labels its figures board
# figures, runtime_file uploads a local file, key / ssh_config / known_hosts read local files,
# board relabels the figures), so they belong in a devices file the user wrote, not in a URL
# that may have been pasted from anywhere.
URL_FIELDS = ("runtime", "python", "workdir", "threads", "affinity", "cooldown", "throttle_temp",
              "connect_timeout", "thermal_zones", "description")


def _workdir(value, *, from_text: bool = False) -> str:
    if not text(value).startswith("/") or any(c in value for c in "\n\r\0"):
        raise ValueError("an absolute path on the device (starting with /, no newline)")
    return value


def _port(value, *, from_text: bool = False) -> int:
    port = whole()(value, from_text=from_text)
    if not 0 <= port <= 65535:
        raise ValueError("a port from 1 to 65535 (0: the SSH config's or 22)")
    return port


def _transport(value, *, from_text: bool = False) -> str:
    if text(value) not in TRANSPORTS:
        raise ValueError(f"one of {', '.join(TRANSPORTS)}")
    return value


# What each field may hold (:mod:`edgebnn.device.checks`): the type of its default, narrowed for some.
_BY_TYPE = {str: text, int: whole(), float: number(), bool: switch, tuple: thread_counts}
_NARROWED = {"workdir": _workdir, "affinity": taskset_cpus, "port": _port, "transport": _transport,
             "connect_timeout": number(0, above=True), "cooldown": number(0), "throttle_temp": number(-273.15)}
CHECKS = {f.name: _NARROWED.get(f.name) or _BY_TYPE[type(f.default)] for f in fields(DeviceProfile) if f.name != "name"}


def _coerce(name: str, key: str, value, source: str, *, from_text: bool = False):
    """A field value from TOML, the environment or a URL, checked once (:data:`CHECKS`).

    Raises:
        UsageError: naming the field, the value, where it came from and what is allowed.
    """
    if key not in CHECKS:
        raise UsageError(f"unknown setting {key!r} for device {name!r} in {source}: use one of {', '.join(CHECKS)}")
    try:
        return CHECKS[key](value, from_text=from_text)
    except ValueError as e:
        raise UsageError(f"bad {key} {value!r} for device {name!r} in {source}: give {e}") from None


def load_devices_file(path: str | Path | None = None) -> dict:
    """The devices file (:func:`edgebnn.device.devices_file.read_devices_file`), every setting checked.

    Returns:
        ``{"devices": {name: {field: value}}, "fleets": {name: [...]}, "path"}``; a missing file
        is an empty one.

    Raises:
        UsageError: the file cannot be read, is not valid TOML, or has an unknown or bad setting.
    """
    catalog = read_devices_file(path)
    for name, entry in catalog["devices"].items():
        catalog["devices"][name] = {k: _coerce(name, k, v, catalog["path"]) for k, v in entry.items()}
    return catalog


def _env_overrides(name: str) -> dict:
    prefix = "EDGEBNN_" + re.sub(r"[^A-Za-z0-9]", "_", name).upper() + "_"
    found = {}
    for key in ("host", "user", "port", "key", "workdir", "runtime", "python"):
        if (value := os.environ.get(prefix + key.upper())) is not None:
            found[key] = _coerce(name, key, value, f"${prefix}{key.upper()}", from_text=True)
    return found


def _ssh_config_has_host(alias: str, config: str = "") -> bool:
    """True when the user's SSH config has a ``Host`` entry naming ``alias`` exactly."""
    path = Path(config).expanduser() if config else Path.home() / ".ssh" / "config"
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return False
    for line in lines:
        words = line.strip().split()
        if len(words) > 1 and words[0].lower() == "host" and alias in words[1:]:
            return True
    return False


def parse_ssh_url(url: str) -> DeviceProfile:
    """A profile from ``ssh://user@host:port[?field=value&...]``; only :data:`URL_FIELDS` may be set.

    Raises:
        UsageError: no host, a bad port, or a field that is unknown or not allowed in a URL.
    """
    parts = urllib.parse.urlsplit(url)
    try:
        port = parts.port or 0
    except ValueError:
        raise UsageError(f"bad port in {url!r}: use ssh://user@host:22 (a port from 1 to 65535)") from None
    if not parts.hostname:
        raise UsageError(f"no host in {url!r}: use ssh://user@host:port")
    name = parts.hostname + (f":{port}" if port else "")
    extra = {}
    for key, value in urllib.parse.parse_qsl(parts.query, keep_blank_values=True):
        if key in ("host", "port", "user", "name"):
            raise UsageError(f"{key!r} in the query of {url!r}: give user, host and port in the URL itself, "
                             "ssh://user@host:port")
        if key in CHECKS and key not in URL_FIELDS:
            raise UsageError(f"{key!r} cannot be set in an ssh:// URL ({url!r}): it names something on this "
                             f"machine; put the board in your devices file instead (a URL may set "
                             f"{', '.join(URL_FIELDS)})")
        extra[key] = _coerce(name, key, value, url, from_text=True)
    return DeviceProfile(name=name, host=parts.hostname, port=port,
                         user=urllib.parse.unquote(parts.username or ""), **extra)


def get_profile(name: str, *, devices_file: str | Path | None = None) -> DeviceProfile:
    """The profile called ``name`` (or an ``ssh://`` URL), fully resolved.

    Raises:
        UsageError: unknown device, or an SSH device whose host is not set anywhere.
    """
    if name.startswith("ssh://"):
        return parse_ssh_url(name)
    catalog = load_devices_file(devices_file)
    entry = catalog["devices"].get(name)
    if name not in BUILTIN and entry is None:
        known = sorted({*BUILTIN, *catalog["devices"]})
        raise UsageError(
            f"unknown device {name!r}: choose one of {', '.join(known)}, add it to "
            f"{catalog['path']}, or give ssh://user@host:port (see `edgebnn devices`)"
        )
    profile = BUILTIN.get(name, DeviceProfile(name=name))
    given = {**(entry or {}), **_env_overrides(name)}
    profile = replace(profile, **given)
    if profile.transport == "local":
        if "workdir" not in given:  # never the shared /tmp folder: this user's own (checked at connect)
            profile = replace(profile, workdir=str(local_workdir()))
    else:
        profile = replace(profile, **recorded_fields(catalog["path"], name))
    if profile.transport == "ssh" and not profile.host:
        if _ssh_config_has_host(name, profile.ssh_config):
            return replace(profile, host=name)  # the SSH config supplies HostName, User, Port...
        var = "EDGEBNN_" + re.sub(r"[^A-Za-z0-9]", "_", name).upper() + "_HOST"
        raise UsageError(
            f"no host set for device {name!r}: add `[devices.{name}]` with `host = \"...\"` to "
            f"{catalog['path']}, set {var}=..., or add `Host {name}` to ~/.ssh/config"
        )
    return profile


def resolve_devices(spec: str, *, devices_file: str | Path | None = None) -> list[DeviceProfile]:
    """Profiles for ``spec``: a name, an ``ssh://`` URL, a fleet, or a comma list of those.

    Raises:
        UsageError: an unknown name, or an empty list.
    """
    catalog = load_devices_file(devices_file)
    names: list[str] = []
    for item in (s.strip() for s in spec.split(",")):
        if not item:
            continue
        names.extend(catalog["fleets"].get(item, [item]) if item not in catalog["devices"] else [item])
    if not names:
        raise UsageError(f"bad --device {spec!r}: give a device name, a fleet or ssh://user@host")
    profiles = [get_profile(n, devices_file=devices_file) for n in dict.fromkeys(names)]
    if len({p.file_name for p in profiles}) < len(profiles):
        raise UsageError(f"two devices in {spec!r} share a name: give each its own profile")
    return profiles


def list_devices(*, devices_file: str | Path | None = None) -> dict:
    """Built-in and configured devices and fleets, for ``edgebnn devices`` (``setup_problem``: a broken setup record)."""
    catalog = load_devices_file(devices_file)
    try:
        read_setup(setup_path(catalog["path"]))
        setup_problem = ""
    except EdgebnnError as e:
        setup_problem = str(e)
    rows = []
    for name in dict.fromkeys([*BUILTIN, *catalog["devices"]]):
        try:
            profile, problem = get_profile(name, devices_file=devices_file), ""
        except EdgebnnError as e:
            profile = replace(BUILTIN.get(name, DeviceProfile(name=name)), **catalog["devices"].get(name, {}))
            problem = "" if str(e) == setup_problem else str(e)  # said once, below the table
        rows.append({"profile": profile.to_dict(), "builtin": name in BUILTIN, "problem": problem})
    return {"path": catalog["path"], "devices": rows, "fleets": catalog["fleets"], "setup_problem": setup_problem}
