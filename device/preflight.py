"""Preflight: what a device is and whether it can run a benchmark, in one remote command.

The script is a constant; the workdir, runtime and Python paths reach it as positional
arguments (``sh -c SCRIPT sh ARG...``), never spliced into it.
"""

from __future__ import annotations

import time

from edgebnn.device.profiles import DeviceProfile
from edgebnn.device.roofline import PARTS, name_cores
from edgebnn.device.transports import open_transport
from edgebnn.errors import shell_command

# Below this much available memory a benchmark's figures are doubtful: the board may swap, or the
# kernel's OOM killer may end the runtime mid-run.
LOW_MEMORY_MB = 256

# Prints the temperatures of the thermal zones that "$zones" names: one glob a line, expanded on the
# board (word splitting on newlines only, so a path with spaces works; never eval'd). The leading
# space keeps "$(" + TEMPS from reading as arithmetic "$((".
TEMPS = r""" (IFS='
'; for z in $zones; do [ -r "$z" ] && t=$(cat "$z") && echo "$t"; done) 2>/dev/null | tr '\n' ' '"""

SCRIPT = r"""
workdir=$1 runtime=$2 python=$3 deep=$4 zones=$5
shift 5
echo "arch=$(uname -m)"
echo "kernel=$(uname -sr)"
echo "hostname=$(uname -n)"
echo "long_bit=$(getconf LONG_BIT 2>/dev/null)"
[ -r /proc/device-tree/model ] && echo "board=$(tr -d '\000' < /proc/device-tree/model)"
echo "cores=$(grep -c '^processor' /proc/cpuinfo)"
echo "cpu_model=$(grep -m1 -E '^(model name|Model|Hardware)[[:space:]]*:' /proc/cpuinfo | cut -d: -f2-)"
echo "cpu_parts=$(grep '^CPU part' /proc/cpuinfo | awk '{print $NF}' | tr '\n' ' ')"
echo "cpu_implementers=$(grep '^CPU implementer' /proc/cpuinfo | awk '{print $NF}' | tr '\n' ' ')"
ids=$(grep '^processor' /proc/cpuinfo | awk '{print $NF}' | tr '\n' ' ')
echo "cpu_ids=$ids"
caps="" clocks=""  # per online CPU, in cpuinfo's order: capacity and clock (big.LITTLE clusters differ)
for i in $ids; do
  d=/sys/devices/system/cpu/cpu$i
  caps="$caps $(cat $d/cpu_capacity 2>/dev/null || echo -)"
  clocks="$clocks $(cat $d/cpufreq/scaling_cur_freq 2>/dev/null || cat $d/cpufreq/cpuinfo_max_freq 2>/dev/null || echo -)"
done
echo "cpu_capacity=$caps"
echo "cpu_freq_khz=$clocks"
c=/sys/devices/system/cpu/cpu0/cpufreq
echo "governor=$(cat $c/scaling_governor 2>/dev/null)"
echo "freq_khz=$(cat $c/scaling_cur_freq 2>/dev/null)"
echo "max_freq_khz=$(cat $c/cpuinfo_max_freq 2>/dev/null)"
echo "temps=$(TEMPS)"
echo "mem_total_kb=$(awk '/^MemTotal/ {print $2}' /proc/meminfo)"
echo "mem_available_kb=$(awk '/^MemAvailable/ {print $2}' /proc/meminfo)"
if mkdir -p "$workdir" 2>/dev/null && [ -w "$workdir" ]; then echo workdir_ok=1; else echo workdir_ok=0; fi
echo "disk_free_kb=$(df -Pk "$workdir" 2>/dev/null | awk 'NR==2 {print $4}')"
for tool in timeout taskset sha256sum; do
  command -v $tool >/dev/null 2>&1 && echo "has_$tool=1" || echo "has_$tool=0"
done
# A taskset that takes a CPU list (-c): BusyBox may be built without it.
first=${ids%% *}
taskset -c "${first:-0}" true >/dev/null 2>&1 && echo has_taskset_list=1 || echo has_taskset_list=0
if [ "$runtime" = python ]; then
  if command -v "$python" >/dev/null 2>&1; then
    echo "runtime_path=$(command -v "$python")"
    echo "runtime_exec=1"
    [ "$deep" = 1 ] && echo "lce_version=$("$python" -c 'import importlib.metadata as m; print(m.version("larq-compute-engine"))' 2>/dev/null)"
  else echo runtime_exec=0; fi
elif [ -n "$runtime" ]; then
  path=$(command -v "$runtime" 2>/dev/null || echo "$runtime")
  echo "runtime_path=$path"
  [ -e "$path" ] && echo runtime_exists=1 || echo runtime_exists=0
  [ -f "$path" ] && [ -x "$path" ] && echo runtime_exec=1 || echo runtime_exec=0
  [ -f "$path" ] && echo "runtime_sha256=$(sha256sum "$path" | cut -d' ' -f1)"
fi
while [ $# -ge 2 ]; do  # (path, sha256) pairs: which uploads the board already has
  [ -f "$1" ] && [ "$(sha256sum "$1" | cut -d' ' -f1)" = "$2" ] && echo "present=$1"
  shift 2
done
exit 0
""".replace("$(TEMPS)", "$(" + TEMPS + ")")


def preflight_argv(profile: DeviceProfile, *, runtime: str | None = None, deep: bool = True,
                   uploads=()) -> list[str]:
    """The argv that prints the preflight's ``key=value`` lines.

    Args:
        runtime: the runtime to check (default the profile's; ``""`` skips the check).
        deep: also check that the board's Python has LCE (a Python start-up: ``devices
            check`` does it; ``bench`` leaves it to the runner, which reports its version).
        uploads: :class:`~edgebnn.device.transport.Upload` items; ``present=PATH`` lines name those
            the board already has with the right sha256 (saves a round trip).
    """
    runtime = profile.runtime if runtime is None else runtime
    pairs = [x for u in uploads for x in (u.remote, u.sha256)]
    return ["sh", "-c", SCRIPT, "sh", profile.workdir, runtime, profile.python, "1" if deep else "0",
            profile.thermal_zones, *pairs]


def temperatures(text: str) -> list[float]:
    """SoC temperatures in C from the thermal zones' millidegrees."""
    temps = []
    for t in text.split():
        try:
            value = float(t)
        except ValueError:
            continue
        temps.append(value / 1000 if abs(value) > 200 else value)
    return temps


def parse_preflight(text: str) -> dict:
    """The device fingerprint from the preflight's output."""
    raw = dict(line.split("=", 1) for line in text.splitlines() if "=" in line and not line.startswith("present="))
    num = lambda k: int(raw[k]) if raw.get(k, "").strip().isdigit() else None  # noqa: E731
    parts = raw.get("cpu_parts", "").split()
    cores = [PARTS.get(p, p) for p in parts]
    cpu = raw.get("cpu_model", "").strip()
    if cores:  # ARM boards: name the cores ("4x Cortex-A55"), which cpuinfo only numbers
        counts = {c: cores.count(c) for c in dict.fromkeys(cores)}
        cpu = " + ".join(f"{n}x {c}" for c, n in counts.items()) + (f" ({cpu})" if cpu else "")
    return {
        "arch": raw.get("arch", ""),
        "kernel": raw.get("kernel", ""),
        "hostname": raw.get("hostname", ""),
        "os_bits": num("long_bit"),
        "board": raw.get("board", "").strip(),
        "cpu": cpu,
        "cpu_cores": name_cores(parts, raw.get("cpu_implementers", "").split()),
        "cpu_ids": [int(c) for c in raw.get("cpu_ids", "").split() if c.isdigit()],
        "cpu_capacity": [int(c) if c.isdigit() else None for c in raw.get("cpu_capacity", "").split()],
        "cpu_freq_mhz": [int(c) // 1000 if c.isdigit() else None for c in raw.get("cpu_freq_khz", "").split()],
        "cores": num("cores"),
        "governor": raw.get("governor", "") or None,
        "freq_mhz": num("freq_khz") // 1000 if num("freq_khz") else None,
        "max_freq_mhz": num("max_freq_khz") // 1000 if num("max_freq_khz") else None,
        "temps_c": temperatures(raw.get("temps", "")),
        "mem_total_mb": num("mem_total_kb") // 1024 if num("mem_total_kb") else None,
        "mem_available_mb": num("mem_available_kb") // 1024 if num("mem_available_kb") else None,
        "disk_free_mb": num("disk_free_kb") / 1024 if num("disk_free_kb") is not None else None,
        "workdir_ok": raw.get("workdir_ok") == "1",
        "tools": {t: raw.get(f"has_{t}") == "1" for t in ("timeout", "taskset", "taskset_list", "sha256sum")},
        "runtime": {
            k: raw[f"runtime_{k}"] if k in ("path", "sha256") else raw[f"runtime_{k}"] == "1"
            for k in ("path", "exists", "exec", "sha256") if f"runtime_{k}" in raw
        } | ({"lce_version": raw["lce_version"]} if raw.get("lce_version") else {}),
        "present": [line[len("present="):] for line in text.splitlines() if line.startswith("present=")],
    }


def problems(profile: DeviceProfile, fingerprint: dict, *, check_runtime: bool = True, deep: bool = True) -> tuple[list[str], list[str]]:
    """``(errors, warnings)``: what stops a benchmark, and what makes its figures doubtful."""
    errors, warnings = [], []
    name = profile.name
    if fingerprint["os_bits"] == 32:
        errors.append(f"{name} runs a 32-bit OS ({fingerprint['arch']}): LCE's optimized kernels need a 64-bit "
                      "(aarch64) OS; install a 64-bit image")
    if not fingerprint["workdir_ok"]:
        errors.append(f"cannot write the workdir {profile.workdir!r} on {name}: set a writable `workdir` "
                      "in your devices file")
    if not fingerprint["tools"]["timeout"]:
        errors.append(f"{name} has no `timeout` command (coreutils or busybox): install coreutils")
    if not fingerprint["tools"]["sha256sum"]:
        errors.append(f"{name} has no `sha256sum` command: install coreutils")
    if profile.affinity and not (fingerprint["tools"]["taskset"] and fingerprint["tools"].get("taskset_list", True)):
        errors.append(f"{name} has no `taskset -c` (CPU lists) for affinity {profile.affinity!r}: install util-linux or "
                      "remove `affinity`")
    runtime = fingerprint["runtime"]
    setup = shell_command("edgebnn", "devices", "setup", name, "--download")
    if check_runtime and profile.runtime == "python":
        if not runtime.get("exec"):
            errors.append(f"no Python {profile.python!r} on {name}: set `python` in your devices file")
        elif deep and not runtime.get("lce_version"):
            errors.append(f"{profile.python!r} on {name} has no larq-compute-engine (no LCE wheel for this "
                          f"board?): use the lce_benchmark_model runtime (`{setup}`)")
    elif check_runtime:
        if not runtime.get("exists"):
            errors.append(f"runtime {profile.runtime!r} not found on {name}: run `{setup}` (or --runtime FILE), "
                          "or set `runtime` to its path in your devices file")
        elif not runtime.get("exec"):
            errors.append(f"runtime {runtime.get('path')!r} on {name} is not executable: "
                          f"`{shell_command('chmod', '+x', runtime.get('path'))}` on the board, or run "
                          f"`{shell_command('edgebnn', 'devices', 'setup', name)}`")
    if fingerprint["governor"] and fingerprint["governor"] != "performance" and profile.board:
        warnings.append(f"cpufreq governor is {fingerprint['governor']!r}, not 'performance': latencies may vary "
                        "with the clock (`echo performance | sudo tee /sys/devices/system/cpu/cpu*/cpufreq/"
                        "scaling_governor`)")
    clock, top = fingerprint.get("freq_mhz"), fingerprint.get("max_freq_mhz")
    if clock and top and clock < 0.98 * top and profile.board:
        warnings.append(f"{name} runs at {clock} MHz, below its maximum {top} MHz, before the run: the figures depend "
                        "on the governor's choice; set the `performance` governor for steady, comparable figures")
    free = fingerprint.get("mem_available_mb")
    if free is not None and free < LOW_MEMORY_MB:
        warnings.append(f"{name} has only {free} MB of memory available (< {LOW_MEMORY_MB} MB): the runtime may "
                        "swap or be killed by the OOM killer; stop other programs on the board")
    temps = fingerprint["temps_c"]
    if temps and max(temps) >= profile.throttle_temp:
        warnings.append(f"{name} is at {max(temps):.0f} C before the run: it may throttle; let it cool")
    return errors, warnings


async def check_device(profile: DeviceProfile, *, accept_new_host_key: bool = False) -> dict:
    """Connect to the device and run the preflight: ``edgebnn devices check``.

    Returns:
        ``{"fingerprint", "errors", "warnings", "seconds"}``.

    Raises:
        DeviceError: the device cannot be reached or logged in to.
    """
    start = time.perf_counter()
    transport = open_transport(profile, accept_new_host_key=accept_new_host_key)
    try:
        await transport.connect()
        out = await transport.run(preflight_argv(profile, runtime="" if profile.runtime_file else None), timeout=60)
    finally:
        await transport.close()
    fingerprint = parse_preflight(out.stdout)
    errors, warnings = problems(profile, fingerprint, check_runtime=not profile.runtime_file)
    return {"fingerprint": fingerprint, "errors": errors, "warnings": warnings,
            "seconds": round(time.perf_counter() - start, 3)}
