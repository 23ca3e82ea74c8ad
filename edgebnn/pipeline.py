"""The stages as library calls: train, convert and bench a run directory.

The CLI is a thin layer over these; each stage reads what the previous one wrote to the run
directory and nothing else.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from edgebnn import atomic
from edgebnn.errors import EdgebnnError, UsageError
from edgebnn.rundir import RunDir, file_record, utc_now

CONVERT_TARGETS = ("tflite",)


def resolve_source(src: str, *, out: str | None = None) -> RunDir:
    """A run directory for ``src``: an existing run directory, or a bare model name.

    A model name gets a run directory (``out``, or ``runs/<name>``) holding the model with
    random weights: latency does not depend on the weights.

    Raises:
        EdgebnnError: ``src`` is neither a run directory nor a registered model.
    """
    from edgebnn.registry import get_card, is_model_name

    path = Path(src)
    if path.exists():
        return RunDir.open(path)
    if not is_model_name(src):
        if "/" in src or src.startswith("."):
            raise EdgebnnError(f"no run directory at {src!r}: check the path, or give a model name")
        get_card(src)  # raises with the nearest names
    card = get_card(src)
    run_path = Path(out) if out else Path("runs") / card.name
    if (run_path / "manifest.json").exists():
        run = RunDir.open(run_path)
        if run.manifest.get("model") == card.name:
            return run
    from edgebnn.models.stats import model_stats
    from edgebnn.registry import create_model

    model = create_model(card.name)
    run = RunDir.create(
        run_path,
        {
            "model": card.name,
            "card": card.to_dict(),
            "weights": "random",
            "input_shape": list(card.input_shape),
            "num_classes": card.num_classes,
            "stats": model_stats(model),
        },
    )
    run.save_model(model)
    return run


def convert_run(run: RunDir, *, to: str = "tflite", parity_inputs=None) -> dict:
    """Convert the run's Keras model; write ``model.tflite`` and the report in the manifest.

    Raises:
        UsageError: unknown ``to``.
    """
    if to not in CONVERT_TARGETS:
        raise UsageError(f"unknown target {to!r} for --to: choose one of {', '.join(CONVERT_TARGETS)}")
    import time

    from edgebnn.converters.lce import convert
    from edgebnn.converters.report import conversion_report

    model = run.load_model()
    start = time.perf_counter()
    flatbuffer = convert(model)
    seconds = time.perf_counter() - start
    report = conversion_report(model, flatbuffer, parity_inputs=parity_inputs)
    report.update(
        target=to,
        converted=utc_now(),
        convert_seconds=round(seconds, 3),
        keras_bytes=run.keras_path.stat().st_size,
    )
    atomic.write_bytes(run.tflite_path, flatbuffer)
    run.record_file(run.tflite_path)
    run.update(conversion=report)
    return report


def parse_threads(text: str) -> list[int]:
    try:
        threads = [int(t) for t in str(text).split(",") if t.strip()]
    except ValueError:
        threads = []
    if not threads or min(threads) < 1:
        raise UsageError(f"bad --threads {text!r}: give positive integers separated by commas, e.g. 1,4")
    return threads


def bench_run(run: RunDir, *, device: str, configs: list, devices_file=None, accept_new_host_key: bool = False) -> dict:
    """Benchmark the run's flatbuffer on one device; write ``bench/<device>-<utc>.json``.

    Every configuration's result is saved, failed ones with their error kind.

    Returns:
        The saved record (``device``, ``fingerprint``, ``results``...).
    """
    return bench_runs(run, devices=device, configs=configs, devices_file=devices_file,
                      accept_new_host_key=accept_new_host_key)[0]


def bench_runs(run: RunDir, *, devices: str, configs: list, devices_file=None,
               accept_new_host_key: bool = False, cooldown: float | None = None) -> list[dict]:
    """Benchmark the run's flatbuffer on every device in ``devices`` concurrently.

    ``devices`` is a name, a fleet, an ``ssh://`` URL or a comma list of them. Each device
    gets ``bench/<device>-<utc>.json``, rewritten after every configuration so results
    already obtained survive an interruption, and a summary in ``manifest["benchmarks"]``;
    a device that could not be used at all is recorded with its error kind.

    Returns:
        The saved records, in the order of ``devices``.
    """
    from edgebnn import __version__
    from edgebnn.device.bench import bench_devices
    from edgebnn.device.profiles import resolve_devices

    profiles = resolve_devices(devices, devices_file=devices_file)
    if cooldown is not None:
        from dataclasses import replace

        profiles = [replace(p, cooldown=cooldown) for p in profiles]
    if not run.tflite_path.exists():
        raise EdgebnnError(f"no model.tflite in {str(run.path)!r}: run `edgebnn convert {run.path} --to tflite` first")
    started = utc_now()
    model_file = file_record(run.tflite_path)
    paths = {p.name: run.bench_dir / f"{p.file_name}-{started.replace(':', '')}.json" for p in profiles}

    def record_of(device_run) -> dict:
        profile = device_run.profile
        return {
            "device": profile.name,
            "profile": profile.to_dict(),
            "figure_kind": "board" if profile.board else "host",
            "fingerprint": device_run.fingerprint,
            "runtime": device_run.runtime,
            "model": run.manifest["model"],
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
            "results": [r.to_dict() for r in device_run.results],
        }

    def save(device_run) -> None:
        atomic.write_json(paths[device_run.profile.name], record_of(device_run))

    device_runs = asyncio.run(bench_devices(profiles, run.tflite_path, configs,
                                            accept_new_host_key=accept_new_host_key, on_result=save))
    records, summaries = [], []
    for device_run in device_runs:
        save(device_run)
        record = record_of(device_run)
        path = paths[device_run.profile.name]
        summaries.append({
            "device": record["device"],
            "figure_kind": record["figure_kind"],
            "file": str(path.relative_to(run.path)),
            "started": started,
            "cpu": record["fingerprint"].get("cpu", ""),
            "runtime": record["runtime"].get("kind", ""),
            "error_kind": record["error_kind"],
            "results": [
                {"threads": r.config.threads, "ok": r.ok, "valid": r.valid, "error_kind": r.error_kind, **r.latency}
                for r in device_run.results
            ],
        })
        record["file"] = str(path)
        records.append(record)
    manifest = run.manifest
    run.update(benchmarks=[*manifest.get("benchmarks", []), *summaries])
    return records
