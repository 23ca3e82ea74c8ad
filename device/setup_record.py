"""The setup record beside the devices file (``devices.setup.json``): what edgebnn wrote for a device.

Per device: the runtime ``edgebnn devices setup`` installed (``runtime_file``, whose sha256 the
board's content-addressed folder is named by), and the configurations ``edgebnn bench --tune
--save-tuned`` chose, per flatbuffer (``tuned``). The user writes the devices file; edgebnn
writes this one, one writer at a time, atomically, and never replaces one it cannot read.
"""

from __future__ import annotations

import fcntl
import json
from pathlib import Path

from edgebnn import atomic
from edgebnn.device.checks import number, switch, taskset_cpus, text, whole
from edgebnn.device.devices_file import default_devices_file
from edgebnn.errors import EdgebnnError, UsageError, shell_command


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


def recorded_fields(devices_file: str | Path, name: str) -> dict:
    """The profile fields the record sets for device ``name``: its installed ``runtime_file``, if any."""
    record = read_setup(setup_path(devices_file)).get(name)
    record = record if isinstance(record, dict) else {}
    return {"runtime_file": record["runtime_file"]} if record.get("runtime_file") else {}


def _update_setup(devices_file: str | Path | None, change) -> Path:
    """Read, change and atomically rewrite the setup record; one writer at a time (flock).

    Raises:
        EdgebnnError: the record exists but cannot be read (:func:`read_setup`): it is left as it is.
    """
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


# What a saved choice's config may hold: the settings --save-tuned writes (bench.TUNED_FIELDS).
TUNED_CHECKS = {"threads": whole(1), "indirect_bgemm": switch, "xnnpack": switch, "affinity": taskset_cpus}


def _tuned_problem(entry, config) -> str:
    """What is wrong with a saved tuned entry ("" when nothing)."""
    if not isinstance(config, dict):
        return "no config table"
    values = {"threads": config.get("threads"), "indirect_bgemm": config.get("indirect_bgemm", False),
              "xnnpack": config.get("xnnpack", False), "affinity": config.get("affinity") or ""}
    for key, check in TUNED_CHECKS.items():
        try:
            check(values[key])
        except ValueError as e:
            return f"{key} {values[key]!r} is not {e}"
    try:
        number()(entry.get("median_ms"))
        text(entry.get("saved"))
    except ValueError:
        return "no median_ms or saved time"
    return ""
