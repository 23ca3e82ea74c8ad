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
from edgebnn.device.protocol import BenchConfig, DeviceRun, bench_devices
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


def device_record(device_run: DeviceRun, *, model: str, model_file: dict, started: str,
                  binary_macs: int | None = None, tune: bool = False, tuned_from: dict | None = None) -> dict:
    """The bench JSON of one device: everything the run produced, failures included."""
    from edgebnn import __version__

    profile = device_run.profile
    record = {
        "device": profile.name,
        "profile": profile.to_dict(),
        "figure_kind": "board" if profile.board else "host",
        "fingerprint": device_run.fingerprint,
        "runtime": device_run.runtime,
        "model": model,
        "model_file": model_file,
        "started": started,
        "edgebnn": __version__,
        "ok": device_run.ok,
        "error_kind": device_run.error_kind,
        "error": device_run.error,
        "warnings": device_run.warnings,
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
        from edgebnn.device.tune import choose

        record["tune"] = choose(record["results"])
    return record


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
        save_tuned: with ``tune``, save each device's choice as its defaults for this model
            (:func:`edgebnn.device.profiles.record_tuned`); the record names the file (``saved_tuned``).
        use_tuned: on a device with saved defaults for this model, run those instead of
            ``configs``' settings (the caller gave none of its own); the record says so (``tuned_from``).

    Returns:
        The saved records, in the order of ``devices``, each with its ``file``.
    """
    from edgebnn.device.profiles import record_tuned, resolve_devices, tuned_key, tuned_settings

    check_cooldown(cooldown)
    if save_tuned and not tune:
        raise UsageError("--save-tuned saves the configuration --tune chooses: add --tune")
    profiles = resolve_devices(devices, devices_file=devices_file)
    if cooldown is not None:
        profiles = [replace(p, cooldown=cooldown) for p in profiles]
    model_file = check_flatbuffer(run)
    started = utc_now()
    stamp = started.replace(":", "")
    # A random part: two benches started in the same second never share a file.
    paths = {p.name: run.bench_dir / f"{p.file_name}-{stamp}-{uuid.uuid4().hex[:8]}.json" for p in profiles}
    model = run.manifest["model"]
    key = tuned_key(model, run.manifest.get("input_shape"))
    binary_macs = run.section("stats").get("binary_macs")  # at the run's input size
    saved = {p.name: tuned_settings(devices_file, p.name, key) for p in profiles} if use_tuned and not tune else {}
    plans = [(p, [tuned_config(configs[0], saved[p.name])] if saved.get(p.name) else configs) for p in profiles]

    def record_of(device_run: DeviceRun) -> dict:
        return device_record(device_run, model=model, model_file=model_file, started=started, binary_macs=binary_macs,
                             tune=tune, tuned_from=saved.get(device_run.profile.name))

    converter = run.section("versions").get("larq-compute-engine")
    device_runs = asyncio.run(bench_devices(plans, run.tflite_path, accept_new_host_key=accept_new_host_key,
                                            on_result=lambda r: atomic.write_json(paths[r.profile.name], record_of(r)),
                                            converter_lce_version=converter, tune=tune))
    records = []
    for device_run in device_runs:
        record = record_of(device_run)
        path = paths[device_run.profile.name]
        atomic.write_json(path, record)
        choice = record.get("tune") or {}
        if save_tuned and choice.get("index") is not None:
            entry = {"config": {k: choice["config"].get(k) for k in TUNED_FIELDS}, "median_ms": choice["median_ms"],
                     "rule": choice["rule"], "saved": started, "run": str(run.path),
                     "file": str(path.relative_to(run.path)), "model_sha256": model_file["sha256"]}
            try:
                record["saved_tuned"] = {"key": key, "path": str(record_tuned(devices_file, record["device"], key, entry))}
            except OSError as e:  # the sweep itself is safe in the record already
                record["warnings"].append(f"could not save the tuned settings: {e.strerror or e} ({e.filename}); "
                                          "pass a writable --devices-file folder")
            atomic.write_json(path, record)
        records.append({**record, "file": str(path)})
    index = [{"device": r["device"], "file": str(paths[r["device"]].relative_to(run.path)), "started": started,
              "figure_kind": r["figure_kind"], "ok": r["ok"], "error_kind": r["error_kind"],
              **({"tuned": r["tune"]["config"]} if "tune" in r else {})} for r in records]
    run.edit(lambda data: data.__setitem__("benchmarks", [*(data.get("benchmarks") or []), *index]))
    return records
