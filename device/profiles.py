"""Device profiles: how to reach a board and what it is.

A profile comes from, in order of precedence: the environment (``EDGEBNN_<NAME>_HOST``,
``_USER``, ``_PORT``), the user's devices file, the built-ins (``local``, ``bananapi``) and,
for a host alias, the user's ``~/.ssh/config`` (asyncssh reads it at connect time). An ad-hoc
board is ``ssh://user@host:port`` (query parameters set any other field:
``ssh://pi@10.0.0.7?runtime=python&python=python3``).
"""

from __future__ import annotations

import math
import os
import re
import sys
import urllib.parse
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

from edgebnn.device.tune import check_cpu_list
from edgebnn.errors import UsageError, shell_command


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

DEVICES_FILE_ENV = "EDGEBNN_DEVICES_FILE"
_FIELDS = {f.name: f for f in fields(DeviceProfile)}


def cache_dir() -> Path:
    """edgebnn's per-user cache: ``$EDGEBNN_CACHE``, else ``~/.cache/edgebnn``."""
    return Path(os.environ.get("EDGEBNN_CACHE") or Path.home() / ".cache" / "edgebnn")


def local_workdir() -> Path:
    """The local device's default work folder: this user's ``<cache>/work`` (made private at connect)."""
    return cache_dir() / "work"


def default_devices_file() -> Path:
    """``$EDGEBNN_DEVICES_FILE``, else ``$XDG_CONFIG_HOME/edgebnn/devices.toml`` (``~/.config``)."""
    if env := os.environ.get(DEVICES_FILE_ENV):
        return Path(env).expanduser()
    base = os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config"
    return Path(base) / "edgebnn" / "devices.toml"


TRANSPORTS = ("local", "ssh")
# The fields an ssh:// URL may set: they act on the board only. The others name files or
# programs on this machine (transport=local runs a local program and labels its figures board
# figures, runtime_file uploads a local file, key / ssh_config / known_hosts read local files,
# board relabels the figures), so they belong in a devices file the user wrote, not in a URL
# that may have been pasted from anywhere.
URL_FIELDS = ("runtime", "python", "workdir", "threads", "affinity", "cooldown", "throttle_temp",
              "connect_timeout", "thermal_zones", "description")
TRUE, FALSE = ("1", "true", "yes"), ("0", "false", "no")


def _check_workdir(value: str) -> str:
    if not value.startswith("/") or any(c in value for c in "\n\r\0"):
        raise ValueError("an absolute path on the device (starting with /, no newline)")
    return value


def _check_port(value: int) -> int:
    if not 0 <= value <= 65535:
        raise ValueError("a port from 1 to 65535 (0: the SSH config's or 22)")
    return value


def _check_transport(value: str) -> str:
    if value not in TRANSPORTS:
        raise ValueError(f"one of {', '.join(TRANSPORTS)}")
    return value


def _at_least(low: float, *, strict: bool = False):
    def check(value: float) -> float:
        if not math.isfinite(value) or value < low or (strict and value == low):
            raise ValueError(f"a finite number {'above' if strict else 'of at least'} {low:g}")
        return value

    return check


# One check per field beyond its type (the type comes from the dataclass).
CHECKS = {"workdir": _check_workdir, "affinity": check_cpu_list, "port": _check_port, "transport": _check_transport,
          "connect_timeout": _at_least(0, strict=True), "cooldown": _at_least(0),
          "throttle_temp": _at_least(-273.15)}


def _typed(kind: type, value, *, from_text: bool):
    """``value`` as ``kind``; text (environment, URL) is parsed, TOML values must have the type."""
    if kind is tuple:
        items = str(value).split(",") if from_text else value
        if not isinstance(items, list) or not items:
            raise ValueError("a list of thread counts, e.g. [1, 4]")
        counts = []
        for item in items:
            if from_text and isinstance(item, str) and item.strip().isdigit():
                item = int(item)
            if isinstance(item, bool) or not isinstance(item, int) or item < 1:
                raise ValueError("a list of whole thread counts of at least 1, e.g. [1, 4]")
            counts.append(item)
        return tuple(counts)
    if kind is bool:
        if isinstance(value, bool):
            return value
        if from_text and str(value).lower() in TRUE + FALSE:
            return str(value).lower() in TRUE
        raise ValueError("true or false")
    if kind is int:
        if from_text and str(value).strip().isdigit():
            return int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError("a whole number")
        return value
    if kind is float:
        if from_text:
            try:
                return float(value)
            except ValueError:
                raise ValueError("a number") from None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError("a number")
        return float(value)
    if not isinstance(value, str):
        raise ValueError("a string")
    return value


def _coerce(name: str, key: str, value, source: str, *, from_text: bool = False):
    """A field value from TOML, the environment or a URL, checked once: its type, then :data:`CHECKS`.

    Raises:
        UsageError: naming the field, the value, where it came from and what is allowed.
    """
    if key not in _FIELDS or key == "name":
        raise UsageError(f"unknown setting {key!r} for device {name!r} in {source}: "
                         f"use one of {', '.join(k for k in _FIELDS if k != 'name')}")
    kind = type(getattr(DeviceProfile(name="x"), key))
    try:
        value = _typed(kind, value, from_text=from_text)
        return CHECKS[key](value) if key in CHECKS else value
    except ValueError as e:
        raise UsageError(f"bad {key} {value!r} for device {name!r} in {source}: give {e}") from None


def load_devices_file(path: Path | None = None) -> dict:
    """The devices file as ``{"devices": {name: {...}}, "fleets": {name: [...]}}``.

    A missing file is an empty one.

    Raises:
        UsageError: the file is not valid TOML or has an unknown setting.
    """
    import tomllib

    path = Path(path) if path else default_devices_file()
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError:
        return {"devices": {}, "fleets": {}, "path": str(path)}
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise UsageError(f"malformed devices file {path}: {e}; fix it or pass another --devices-file") from None
    except OSError as e:  # a directory, an unreadable file
        raise UsageError(f"cannot read the devices file {path}: {e.strerror or e}; give a TOML file with "
                         "--devices-file (or unset EDGEBNN_DEVICES_FILE)") from None
    devices = data.get("devices", {})
    fleets = data.get("fleets", {})
    if not isinstance(devices, dict) or not isinstance(fleets, dict):
        raise UsageError(f"malformed devices file {path}: [devices.NAME] tables and a [fleets] table expected")
    for name, entry in devices.items():
        if not isinstance(entry, dict):
            raise UsageError(f"malformed devices file {path}: devices.{name} must be a table")
        devices[name] = {k: _coerce(name, k, v, str(path)) for k, v in entry.items()}
    for name, members in fleets.items():
        if not isinstance(members, list) or not all(isinstance(m, str) for m in members):
            raise UsageError(f"malformed devices file {path}: fleets.{name} must be a list of device names")
    return {"devices": devices, "fleets": fleets, "path": str(path)}


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
        if key in _FIELDS and key not in URL_FIELDS:
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
        profile = replace(profile, **_setup_record(catalog["path"], name))
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


def setup_path(devices_file: str | Path) -> Path:
    """Where ``edgebnn devices setup`` records runtimes: beside the devices file."""
    path = Path(devices_file)
    return path.with_name(path.stem + ".setup.json")


def read_setup(path: str | Path) -> dict:
    """The setup record (``devices.setup.json``): runtimes ``devices setup`` installed, ``--save-tuned`` choices.

    A missing file is an empty record.

    Raises:
        EdgebnnError: the file cannot be read or is not a JSON object, naming it and the next
            step. It is never replaced silently: it may hold every runtime and tuned entry.
    """
    import json

    from edgebnn.errors import EdgebnnError, shell_command

    path = Path(path)
    try:
        data = json.loads(path.read_text())
        problem = "" if isinstance(data, dict) else f"it holds a JSON {type(data).__name__}, not an object"
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError, ValueError) as e:
        problem = getattr(e, "strerror", None) or str(e)
    if problem:
        raise EdgebnnError(
            f"cannot use the setup record {path}: {problem}. It holds the runtimes `edgebnn devices setup` installed "
            f"and the `--save-tuned` choices, so edgebnn does not replace it: repair it, or move it aside "
            f"(`{shell_command('mv', path, str(path) + '.broken')}`) and run `edgebnn devices setup` / `edgebnn bench "
            "--tune --save-tuned` again")
    return data


def _setup_record(devices_file: str, name: str) -> dict:
    record = read_setup(setup_path(devices_file)).get(name)
    record = record if isinstance(record, dict) else {}
    return {"runtime_file": record["runtime_file"]} if record.get("runtime_file") else {}


def _update_setup(devices_file: str | Path | None, change) -> Path:
    """Read, change and atomically rewrite the setup record; one writer at a time (flock).

    Raises:
        EdgebnnError: the record exists but cannot be read (:func:`read_setup`): it is left as it is.
    """
    import fcntl

    from edgebnn import atomic

    path = setup_path(devices_file or default_devices_file())
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        data = read_setup(path)
        change(data)
        atomic.write_json(path, data)
    return path


def record_setup(devices_file: str | Path | None, name: str, record: dict) -> Path:
    """Remember the runtime ``edgebnn devices setup`` installed for ``name`` (its tuned settings stay)."""
    def change(data: dict) -> None:
        tuned = data[name].get("tuned") if isinstance(data.get(name), dict) else None
        data[name] = {**record, **({"tuned": tuned} if isinstance(tuned, dict) else {})}

    return _update_setup(devices_file, change)


def tuned_key(model: str, input_shape, sha256: str) -> str:
    """What tuned settings are kept per: the model, its input size and the flatbuffer's sha256
    (``sabnn-r18@224x224x3/sha256:ab12...``). The name and size alone would apply a choice to
    another width of the model, or to every file called ``model.tflite``: only the bytes tuned
    get it."""
    name = f"{model}@{'x'.join(str(d) for d in input_shape)}" if input_shape else str(model)
    return f"{name}/sha256:{sha256}"


def short_key(key: str) -> str:
    """A tuned key for messages: its sha256 cut to 12 digits."""
    name, _, digest = key.partition("/sha256:")
    return f"{name} (flatbuffer sha256 {digest[:12]}...)" if digest else key


def record_tuned(devices_file: str | Path | None, name: str, key: str, entry: dict) -> Path:
    """Save ``bench --tune``'s choice as device ``name``'s defaults for the model ``key``."""
    def change(data: dict) -> None:
        device = data[name] if isinstance(data.get(name), dict) else {}
        tuned = device.get("tuned") if isinstance(device.get("tuned"), dict) else {}
        data[name] = {**device, "tuned": {**tuned, key: entry}}

    return _update_setup(devices_file, change)


def tuned_settings(devices_file: str | Path | None, name: str, key: str) -> dict | None:
    """The saved choice of :func:`record_tuned` (``{"config": {...}, "saved", "median_ms", ...}``), or None.

    Raises:
        UsageError: an entry that is not what ``--save-tuned`` writes (edited by hand, say),
            naming the file and the next step.
    """
    path = setup_path(devices_file or default_devices_file())
    try:
        entry = read_setup(path)[name]["tuned"][key]
    except (KeyError, TypeError):
        return None
    config = entry.get("config") if isinstance(entry, dict) else None
    problem = _tuned_problem(entry, config)
    if problem:
        raise UsageError(f"bad saved tuned settings for {short_key(key)} on {name} in {path}: {problem}; run "
                         f"`edgebnn bench ... {shell_command('--device', name)} --tune --save-tuned` again, or delete "
                         "that entry")
    return entry


def _tuned_problem(entry, config) -> str:
    """What is wrong with a saved tuned entry ("" when nothing)."""
    if not isinstance(config, dict):
        return "no config table"
    threads = config.get("threads")
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        return f"threads {threads!r} is not a whole number of at least 1"
    for switch in ("indirect_bgemm", "xnnpack"):
        if not isinstance(config.get(switch, False), bool):
            return f"{switch} {config.get(switch)!r} is not true or false"
    try:
        check_cpu_list(config.get("affinity") or "")
    except (ValueError, TypeError):
        return f"affinity {config.get('affinity')!r} is not a CPU list"
    median = entry.get("median_ms")
    if isinstance(median, bool) or not isinstance(median, (int, float)) or not isinstance(entry.get("saved"), str):
        return "no median_ms or saved time"
    return ""


def list_devices(*, devices_file: str | Path | None = None) -> dict:
    """Built-in and configured devices and fleets, for ``edgebnn devices`` (``setup_problem``: a broken setup record)."""
    from edgebnn.errors import EdgebnnError

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
