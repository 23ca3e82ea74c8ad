"""The user's devices file: where it is, and its TOML read into device tables and fleets.

``[devices.NAME]`` tables set a profile's fields (checked field by field in
:func:`edgebnn.device.profiles.load_devices_file`); ``[fleets]`` names lists of devices::

    [devices.pi]
    host = "10.0.0.7"
    threads = [1, 4]

    [fleets]
    lab = ["pi", "bananapi"]
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path

from edgebnn.errors import UsageError

DEVICES_FILE_ENV = "EDGEBNN_DEVICES_FILE"


def default_devices_file() -> Path:
    """``$EDGEBNN_DEVICES_FILE``, else ``$XDG_CONFIG_HOME/edgebnn/devices.toml`` (``~/.config``)."""
    if env := os.environ.get(DEVICES_FILE_ENV):
        return Path(env).expanduser()
    base = os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config"
    return Path(base) / "edgebnn" / "devices.toml"


def read_devices_file(path: str | Path | None = None) -> dict:
    """The devices file as ``{"devices": {name: {...}}, "fleets": {name: [...]}, "path"}``, its
    settings as the TOML holds them (not checked yet). A missing file is an empty one.

    Raises:
        UsageError: the file cannot be read, is not valid TOML, or its tables are not shaped so.
    """
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
    for name, members in fleets.items():
        if not isinstance(members, list) or not all(isinstance(m, str) for m in members):
            raise UsageError(f"malformed devices file {path}: fleets.{name} must be a list of device names")
    return {"devices": devices, "fleets": fleets, "path": str(path)}
