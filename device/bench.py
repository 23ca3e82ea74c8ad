"""``edgebnn bench``: a run's flatbuffer on one or more devices, every result recorded.

:func:`bench_run` runs the protocol (:mod:`edgebnn.device.protocol`) on every device
concurrently and writes one record per device, ``bench/<device>-<utc>-<id>.json``: the one
shape of a benchmark result, rewritten after every configuration (results already obtained
survive an interruption) and read by the report as it is. ``manifest["benchmarks"]`` indexes
those files.
"""

from __future__ import annotations

import asyncio
import math
import uuid
from dataclasses import replace

from edgebnn import atomic
from edgebnn.device.arch import machine_arch
from edgebnn.device.devices_file import default_devices_file
from edgebnn.device.errors import ErrorKind
from edgebnn.device.local import check_local_workdirs
from edgebnn.device.profiles import resolve_devices
from edgebnn.device.protocol import BenchConfig, DeviceRun, bench_devices
from edgebnn.device.setup_record import read_setup, record_tuned, setup_path, short_key, tuned_key, tuned_settings
from edgebnn.errors import EdgebnnError, UsageError, shell_command
from edgebnn.run.rundir import RunDir, file_record, utc_now


def parse_threads(text: str) -> list[int]:
    """``"1,4"`` -> ``[1, 4]``.

    Raises:
        UsageError: not positive integers separated by commas.
    """
    try:
        threads = [int(t) for t in str(text).split(",") if t.strip()]
    except ValueError:
        threads = []
    if not threads or min(threads) < 1:
        raise UsageError(f"bad --threads {text!r}: give positive integers separated by commas, e.g. 1,4")
    return threads


def bench_configs(threads: str | None, *, runs: int = 50, warmup: int = 5, min_secs: float = 1.0,
                  max_secs: float = 150.0, timeout: float = 600.0, op_profiling: bool = False,
                  xnnpack: bool = False, indirect_bgemm: bool = False) -> list[BenchConfig]:
    """One configuration per thread count of ``threads`` (``"1,4"``; None: each device's default).

    Raises:
        UsageError: a bad value, named.
    """
    counts = parse_threads(threads) if threads is not None else [0]
    return [BenchConfig(threads=t, runs=runs, warmup=warmup, min_secs=min_secs, max_secs=max_secs, timeout=timeout,
                        op_profiling=op_profiling, xnnpack=xnnpack, indirect_bgemm=indirect_bgemm) for t in counts]


def check_cooldown(cooldown: float | None) -> None:
    """Raises UsageError unless ``cooldown`` is None or a finite number of seconds >= 0."""
    if cooldown is not None and not (math.isfinite(cooldown) and cooldown >= 0):
        raise UsageError(f"bad --cooldown {cooldown!r}: give a finite number of seconds of at least 0")


def result_record(result, fingerprint: dict, binary_macs: int | None) -> dict:
    """One configuration's record: its figures and its roofline (achieved binary MACs/s, share of the limits)."""
    from dataclasses import asdict

    from edgebnn.device.roofline import roofline
    from edgebnn.device.tune import parse_cpu_list

    record = result.to_dict()
    latency = result.latency.get("median_ms", result.latency.get("mean_ms")) if result.ok else None
    cores, clocks = fingerprint.get("cpu_cores") or [], fingerprint.get("cpu_freq_mhz") or []
    clock = fingerprint.get("freq_mhz") or fingerprint.get("max_freq_mhz")  # cpu0's
    if result.config.affinity:  # pinned: the limit of the cores (and the clocks) it runs on
        ids = fingerprint.get("cpu_ids") or list(range(len(cores)))
        pinned = parse_cpu_list(result.config.affinity)
        where = [ids.index(cpu) for cpu in pinned if cpu in ids]
        cores = [cores[i] for i in where if i < len(cores)]
        clocks = [clocks[i] if i < len(clocks) else None for i in where]
        clock = clock if 0 in pinned else None  # never another cluster's clock
    record["roofline"] = asdict(roofline(binary_macs=binary_macs, latency_ms=latency, cores=cores, clock_mhz=clock,
                                         clocks_mhz=clocks, threads=result.config.threads))
    return record


ARM = ("aarch64", "arm")


def figure_kind(profile, fingerprint: dict) -> tuple[str, str]:
    """``(kind, why)``: ``board`` for an ARM board the profile calls a board, else ``host``.

    The kind follows what the preflight saw (``uname -m``), not the profile's name: an x86 machine
    runs LCE's portable reference kernels, so even a profile called ``bananapi`` that reaches one
    gives host figures (``why`` says so). ``unknown`` when the device never told its architecture.
    """
    uname = fingerprint.get("arch") or ""
    arch = machine_arch(uname)
    if not profile.board:
        return "host", ""
    if arch in ARM:
        return "board", ""
    if arch:
        return "host", (f"{profile.name} is {uname} (uname -m), not an ARM board: LCE runs its portable reference "
                        "kernels there, so these are host figures")
    return "unknown", ""


def device_record(device_run: DeviceRun, *, model: str, model_file: dict, started: str,
                  binary_macs: int | None = None, tune: bool = False, tuned_from: dict | None = None) -> dict:
    """The bench JSON of one device: everything the run produced, failures included."""
    from edgebnn import __version__

    profile = device_run.profile
    kind, why = figure_kind(profile, device_run.fingerprint)
    record = {
        "device": profile.name,
        "profile": profile.to_dict(),
        "figure_kind": kind,
        "fingerprint": device_run.fingerprint,
        "runtime": device_run.runtime,
        "model": model,
        "model_file": model_file,
        "started": started,
        "edgebnn": __version__,
        "ok": device_run.ok,
        "error_kind": device_run.error_kind,
        "error": device_run.error,
        "warnings": ([why] if why else []) + device_run.warnings,
        "complete": device_run.complete,
        "configurations": {"planned": device_run.planned, "ran": device_run.ran},
        "temps_c": device_run.temps,
        "steps_s": device_run.steps,
        "uploads": device_run.uploads,
        "connections": device_run.connections,
        "binary_macs": binary_macs,
        "results": [result_record(r, device_run.fingerprint, binary_macs) for r in device_run.results],
    }
    if tuned_from:  # the configuration came from a saved `--tune --save-tuned`
        record["tuned_from"] = tuned_from
    if tune:
        from edgebnn.device.tune import RULE, choose

        counts = {"planned": device_run.planned, "ran": device_run.ran}
        if device_run.complete:
            record["tune"] = {**choose(record["results"]), "complete": True, **counts}
        else:  # a choice among part of the sweep is no choice: an interrupted or cut sweep chooses nothing
            record["tune"] = {"index": None, "config": None, "median_ms": None, "ties": [], "rule": RULE,
                              "complete": False, **counts}
    return record


def tune_summary(choice: dict) -> str:
    """What a ``tune`` record says in one line: the choice, or why there is none."""
    if choice.get("complete") is False:
        planned = choice.get("planned")
        return (f"tune incomplete: {choice.get('ran', 0)} of {planned or 'the'} configurations ran, nothing chosen "
                "(run the sweep again to choose)")
    if choice.get("index") is None:
        return "tune: no configuration was valid, nothing chosen"
    return f"chosen: {describe(choice['config'])} (median {choice['median_ms']:.3f} ms; {choice['rule']})"


def check_flatbuffer(run: RunDir) -> dict:
    """The run's ``model.tflite`` record, after checking it is the one the manifest describes.

    Raises:
        EdgebnnError: no flatbuffer, or one whose sha256 differs from the manifest's (a
            truncated or replaced file never reaches a runtime).
    """
    if not run.tflite_path.is_file():
        raise EdgebnnError(f"no model.tflite in {str(run.path)!r}: run "
                           f"`{shell_command('edgebnn', 'convert', run.path, '--to', 'tflite')}` first")
    found = file_record(run.tflite_path)
    recorded = run.section("files").get(run.tflite_path.name)
    if not isinstance(recorded, dict) or recorded.get("sha256") != found["sha256"]:
        raise EdgebnnError(
            f"{run.tflite_path} is not the flatbuffer the manifest records (sha256 {found['sha256'][:12]}..., "
            f"manifest {str((recorded or {}).get('sha256'))[:12]}...): convert again with "
            f"`{shell_command('edgebnn', 'convert', run.path, '--to', 'tflite')}`"
        )
    return found


# The settings a saved tune choice sets; the timing settings stay the user's.
TUNED_FIELDS = ("threads", "indirect_bgemm", "xnnpack", "affinity")


def describe(config: dict) -> str:
    """``threads=2, indirect BGEMM on, XNNPACK off[, CPUs 4-7]`` for a config (a dict)."""
    on = lambda key: "on" if config.get(key) else "off"  # noqa: E731
    pinned = f", CPUs {config['affinity']}" if config.get("affinity") else ""
    return f"threads={config['threads']}, indirect BGEMM {on('indirect_bgemm')}, XNNPACK {on('xnnpack')}{pinned}"


def tuned_config(base: BenchConfig, entry: dict) -> BenchConfig:
    """``base``'s timing settings with a saved tune choice's placement and switches."""
    return replace(base, **{k: v for k, v in entry["config"].items() if k in TUNED_FIELDS})


def bench_run(run: RunDir, *, devices: str, configs: list[BenchConfig], devices_file=None,
              accept_new_host_key: bool = False, cooldown: float | None = None, tune: bool = False,
              save_tuned: bool = False, use_tuned: bool = False) -> list[dict]:
    """Benchmark the run's flatbuffer on every device in ``devices`` concurrently.

    Args:
        run: a converted run directory.
        devices: a name, a fleet, an ``ssh://`` URL or a comma list of them.
        configs: the timing configurations.
        devices_file: the devices file (default: the user's).
        accept_new_host_key: trust boards whose host key is not yet known.
        cooldown: seconds between configurations, instead of each device's.
        tune: sweep threads, indirect BGEMM and XNNPACK on each device (:mod:`edgebnn.device.tune`)
            from ``configs[0]``'s timing settings, and record the choice.
        save_tuned: with ``tune``, save each device's choice as its defaults for this flatbuffer
            (:func:`edgebnn.device.setup_record.record_tuned`); the record names the file (``saved_tuned``).
        use_tuned: on a device with saved defaults for this flatbuffer, run those instead of
            ``configs``' settings (the caller gave none of its own); the record says so (``tuned_from``).

    Returns:
        The records, in the order of ``devices``, each with its ``file``; one that could not be
        saved (a full disk) carries ``unsaved``, the message saying what is on disk.

    Raises:
        EdgebnnError: interrupted (Ctrl-C): the records say so, and keep what was measured.
        UnsafeWorkdir: this machine's work folder is not private to this user (exit 2).
    """
    check_cooldown(cooldown)
    if save_tuned and not tune:
        raise UsageError("--save-tuned saves the configuration --tune chooses: add --tune")
    profiles = resolve_devices(devices, devices_file=devices_file)
    check_local_workdirs(profiles)
    if cooldown is not None:
        profiles = [replace(p, cooldown=cooldown) for p in profiles]
    if save_tuned:  # before the sweep, not after it: a broken setup record is refused, never replaced
        read_setup(setup_path(devices_file or default_devices_file()))
    model_file = check_flatbuffer(run)
    started = utc_now()
    stamp = started.replace(":", "")
    # A random part: two benches started in the same second never share a file.
    paths = {p.name: run.bench_dir / f"{p.file_name}-{stamp}-{uuid.uuid4().hex[:8]}.json" for p in profiles}
    model = run.manifest["model"]
    key = tuned_key(model, run.manifest.get("input_shape"), model_file["sha256"])
    binary_macs = run.section("stats").get("binary_macs")  # at the run's input size
    saved = {p.name: tuned_settings(devices_file, p.name, key) for p in profiles} if use_tuned and not tune else {}
    plans = [(p, [tuned_config(configs[0], saved[p.name])] if saved.get(p.name) else configs) for p in profiles]

    def record_of(device_run: DeviceRun) -> dict:
        return device_record(device_run, model=model, model_file=model_file, started=started, binary_macs=binary_macs,
                             tune=tune, tuned_from=saved.get(device_run.profile.name))

    latest: dict[str, DeviceRun] = {}  # each device's run as last seen: what an interruption keeps
    kept: dict[str, int] = {}  # configurations in the last copy saved of each device's record
    failed: dict[str, OSError] = {}  # the last save that failed (a full disk), per device

    def save(device_run: DeviceRun) -> None:
        """Write the device's record; a failed write is remembered, never the end of the bench."""
        name = device_run.profile.name
        latest[name] = device_run
        try:
            atomic.write_json(paths[name], record_of(device_run))
        except OSError as e:
            failed[name] = e
        else:
            failed.pop(name, None)
            kept[name] = len(device_run.results)

    converter = run.section("versions").get("larq-compute-engine")
    interrupted = False
    try:
        device_runs = asyncio.run(bench_devices(plans, run.tflite_path, accept_new_host_key=accept_new_host_key,
                                                on_result=save, converter_lce_version=converter, tune=tune))
    except KeyboardInterrupt:
        interrupted = True
        device_runs = [latest.get(p.name) or DeviceRun(p) for p in profiles]
        for device_run in device_runs:
            if not device_run.finished:
                device_run.error_kind = ErrorKind.INTERRUPTED
                device_run.error = (f"interrupted (Ctrl-C) after {device_run.ran} of "
                                    f"{device_run.planned or 'the planned'} configurations: the figures measured "
                                    "are kept")
    final = []
    for device_run in device_runs:
        name = device_run.profile.name
        if device_run.error_kind == ErrorKind.INTERNAL and name in latest:
            # a bug after some configurations ran: keep them, with the error
            latest[name].error_kind, latest[name].error = device_run.error_kind, device_run.error
            device_run = latest[name]
        save(device_run)
        final.append(device_run)
    records = []
    for device_run in final:
        name = device_run.profile.name
        record, path = record_of(device_run), paths[name]
        choice = record.get("tune") or {}
        if save_tuned and choice.get("index") is not None:
            entry = {"config": {k: choice["config"].get(k) for k in TUNED_FIELDS}, "median_ms": choice["median_ms"],
                     "rule": choice["rule"], "saved": started, "run": str(run.path),
                     "file": str(path.relative_to(run.path)), "model_sha256": model_file["sha256"]}
            try:
                where = record_tuned(devices_file, name, key, entry)
                record["saved_tuned"] = {"key": key, "label": short_key(key), "path": str(where)}
            except OSError as e:  # the sweep itself is safe in the record already
                record["warnings"].append(f"could not save the tuned settings: {e.strerror or e} ({e.filename}); "
                                          "pass a writable --devices-file folder")
            try:
                atomic.write_json(path, record)
            except OSError as e:
                failed[name] = e
        if name in failed:
            record["unsaved"] = _unsaved(path, failed[name], kept.get(name), len(record["results"]))
        records.append({**record, "file": str(path)})
    index = [{"device": r["device"], "file": str(paths[r["device"]].relative_to(run.path)), "started": started,
              "figure_kind": r["figure_kind"], "ok": r["ok"], "error_kind": r["error_kind"],
              "model_sha256": model_file["sha256"], "complete": r["complete"],
              **({"tuned": r["tune"]["config"]} if "tune" in r else {})}
             for r in records if r["device"] in kept]  # only records on disk
    try:
        run.edit(lambda data: data.__setitem__("benchmarks", [*(data.get("benchmarks") or []), *index]))
    except EdgebnnError as e:  # the records hold the figures; the index is what could not be written
        for record in records:
            record.setdefault("unsaved", f"the manifest could not index {record['file']}: {e}")
    if interrupted:
        files = ", ".join(r["file"] for r in records if kept.get(r["device"]))
        ran = "; ".join(f"{r['device']}: {r['configurations']['ran']} of {r['configurations']['planned'] or '?'}"
                        for r in records)
        raise EdgebnnError(f"interrupted: configurations measured {ran}"
                           + (f"; kept in {files} (marked incomplete)" if files else "; nothing was measured yet"))
    return records


def _unsaved(path, error: OSError, kept: int | None, measured: int) -> str:
    """What a failed save of a bench record left: the path, why, what the last saved copy holds, the next step."""
    why = error.strerror or str(error)
    held = (f"the copy saved before holds {kept} of the {measured} configurations measured" if kept
            else "nothing of it is saved")
    return (f"cannot save the bench record {path}: {why}; {held} (all are printed above): free some space in "
            f"{path.parent} and run the bench again")
