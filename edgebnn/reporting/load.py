"""Reading run directories for reports: one summary per run.

Everything here reads only ``manifest.json`` and ``bench/*.json`` (never TensorFlow), so a
report over many runs is instant. Run directories are read defensively: other stages add keys
over time, and a run may be partial (trained but not converted, a failed bench configuration),
so a missing figure is shown as "-" and never stops the report.

A run summary (what :func:`load_run` returns, and what the JSON format holds) is a dict::

    path, name (in reports: the path below the runs' common folder), model, data, weights, top1 (percent,
    the training run's last validation), evaluated_top1 / evaluated_data / evaluated_file (what
    ``edgebnn evaluate`` measured), published_top1 (percent), published_dataset,
    params, binary_params, float_params, binary_mac_share, tflite_bytes, bconv, binary_layers,
    bconv_coverage, model_sha256 (the run's ``model.tflite`` as its manifest records it),
    benchmarks (one entry per device and configuration: threads, indirect BGEMM, XNNPACK and CPU
    affinity; the latest result measured on that flatbuffer), stale (the same for results measured
    on another flatbuffer, or on one no record names: never figures of the run), tuned and sweeps
    (the latest ``bench --tune`` of each device on that flatbuffer: its choice, or that it was
    incomplete, and every configuration's median with its 95 % interval),
    flips_per_epoch (the training's flip ratio per epoch), model_options, recipe, lr,
    problems (what could not be read)
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from edgebnn.errors import UsageError
from edgebnn.reporting.published import published_points
from edgebnn.run.records import BenchRecord, ConversionReport, Result, TuneChoice, number
from edgebnn.run.rundir import MANIFEST, utc_now

DASH = "-"


def find_runs(paths) -> list[Path]:
    """Run directories in ``paths``: each is a run directory or a folder holding some.

    Raises:
        UsageError: a path does not exist or holds no run directory.
    """
    found: dict[Path, None] = {}
    for p in map(Path, paths):
        if not p.exists():
            raise UsageError(f"no such run directory or folder: {str(p)!r}; give run directories made by edgebnn")
        if (p / MANIFEST).is_file():
            found[p] = None
            continue
        runs = sorted(m.parent for m in p.rglob(MANIFEST) if not any(part.startswith(".") for part in m.relative_to(p).parts))
        if not runs:
            raise UsageError(f"no run directory (no {MANIFEST}) in {str(p)!r}: give a run directory or a folder of them")
        found.update(dict.fromkeys(runs))
    return list(found)


def _read_json(path: Path, problems: list[str]) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        problems.append(f"cannot read {path.name}: {e}")
        return None


def _get(d: Any, *keys: str) -> Any:
    """``d[k1][k2]...`` of the manifest, or None where any level is missing or not a dict."""
    for k in keys:
        if not isinstance(d, dict):
            return None
        d = d.get(k)
    return d


def _percent(x: Any) -> float | None:
    """Accuracy in percent: fractions (0..1, what Keras reports) are scaled."""
    x = number(x)
    return None if x is None else (x * 100 if x <= 1 else x)


def _published(card: Any) -> tuple[float | None, str | None]:
    """The paper's top-1 (percent) and its dataset from the card's ``published`` figures."""
    published = _get(card, "published") or {}
    for key, value in published.items() if isinstance(published, dict) else ():
        if str(key).endswith("top1") and number(value) is not None:
            dataset = str(key)[: -len("top1")].rstrip("_") or None
            return _percent(value), dataset
    return None, None


def settings(config: Any) -> dict:
    """A configuration's runtime settings beside its threads; absent ones (older records) are the defaults."""
    config = config if isinstance(config, dict) else {}
    return {"indirect_bgemm": bool(config.get("indirect_bgemm")), "xnnpack": bool(config.get("xnnpack")),
            "affinity": str(config.get("affinity") or "")}


def is_default(entry: dict) -> bool:
    """True for an entry (or config) run with the runtime's defaults: no indirect BGEMM, no XNNPACK, no pinning."""
    return not (entry.get("indirect_bgemm") or entry.get("xnnpack") or entry.get("affinity"))


def config_key(entry: dict) -> tuple:
    """What tells an entry's configuration apart on one device, in table order (defaults first)."""
    threads = entry.get("threads")
    return (threads if isinstance(threads, int) else -1, entry.get("affinity") or "",
            bool(entry.get("indirect_bgemm")), bool(entry.get("xnnpack")))


def lce_limit_ms(result: Result) -> float | None:
    """The latency LCE's kernel mix allows on the cores used: binary MACs / the roofline's LCE limit."""
    macs, limit = result.limit("binary_macs"), result.limit("lce_gbmacs")
    return macs / (limit * 1e6) if macs and limit else None


def _entry(record: BenchRecord, r: Result, file: str) -> dict:
    """One configuration of a bench record, as the report's tables and plots read it."""
    return {
        "device": record.device or DASH, "figure_kind": record.figure_kind, "threads": r.config.get("threads"),
        "indirect_bgemm": r.indirect_bgemm, "xnnpack": r.xnnpack, "affinity": r.affinity,
        "ok": r.ok, "valid": r.valid and r.finite, "error_kind": r.error_kind or ("" if r.finite else "not_finite"),
        "error": r.error, "median_ms": r.figure("median_ms"), "p90_ms": r.figure("p90_ms"),
        "mean_ms": r.figure("mean_ms"), "runs": r.latency.get("runs"), "peak_mb": r.figure("peak_memory_mb"),
        "gbmacs": r.limit("achieved_gbmacs"), "share_of_lce": r.limit("share_of_lce"),
        "share_of_floor": r.limit("share_of_floor"), "limit_core": r.roofline.get("core"),
        "cores_used": r.limit("cores_used"), "lce_gbmacs": r.limit("lce_gbmacs"), "lce_limit_ms": lce_limit_ms(r),
        "started": record.started, "file": file, "model_sha256": record.sha256,
    }


def recorded_interval(result: dict) -> tuple[float | None, float | None, float | None] | None:
    """``(median, low, high)`` in ms of one result record (:attr:`edgebnn.run.records.Result.interval`)."""
    return Result.from_dict(result).interval


def _sweep(record: BenchRecord, file: str) -> dict:
    """A ``bench --tune`` record as the sweep plot needs it: each configuration's median and interval."""
    choice = record.tune
    results = []
    for i, r in enumerate(record.results):
        median, low, high = (r.interval if r.ok else None) or (None, None, None)
        results.append({"index": i, "threads": r.config.get("threads"), "indirect_bgemm": r.indirect_bgemm,
                        "xnnpack": r.xnnpack, "affinity": r.affinity, "ok": r.ok, "valid": r.valid,
                        "median_ms": median, "low_ms": low, "high_ms": high})
    chosen = choice.index if choice.complete and choice.index in range(len(results)) else None
    return {"device": record.device or DASH, "figure_kind": record.figure_kind, "started": record.started,
            "file": file, "chosen": chosen, "ties": choice.ties, "rule": choice.rule, "complete": choice.complete,
            "ran": choice.ran, "planned": choice.planned, "results": results}


def _tuned_entry(device: str, choice: TuneChoice) -> dict:
    """A device's latest ``bench --tune`` for the report: its choice, or none when the sweep was incomplete."""
    config = choice.config if choice.complete else None
    return {"device": device, "threads": (config or {}).get("threads"), **settings(config),
            "median_ms": choice.median_ms if config else None, "rule": choice.rule, "complete": choice.complete,
            "ran": choice.ran, "planned": choice.planned}


def _flips(manifest: dict) -> list[float | None]:
    """The training's flip ratio per epoch (``manifest["flips"]["per_epoch"]``); a bad value is None."""
    per_epoch = _get(manifest, "flips", "per_epoch")
    return [number(x) for x in per_epoch] if isinstance(per_epoch, list) else []


def _bench_records(path: Path, problems: list[str]) -> list[tuple[str, BenchRecord]]:
    """``(file, record)`` of every ``bench/*.json``, oldest first (file names sort by time)."""
    records = []
    for f in sorted(path.glob("bench/*.json")):
        data = _read_json(f, problems)
        if isinstance(data, dict):
            records.append((str(f.relative_to(path)), BenchRecord.from_dict(data)))
        elif data is not None:
            problems.append(f"{f.relative_to(path)} is not a bench record (a JSON {type(data).__name__})")
    return records


def _latest(entries: list[dict], current: str | None) -> tuple[list[dict], list[dict]]:
    """``(benchmarks, stale)``: the latest entry of each device and configuration, bound to ``current`` or not.

    Figures are bound to the bytes they measured: only a record of the flatbuffer the manifest
    names now is a figure of the run; any other (an older conversion, a record without a hash)
    is stale, shown apart.
    """
    latest: dict[tuple, dict] = {}
    old: dict[tuple, dict] = {}
    for e in sorted(entries, key=lambda e: e["started"]):  # a later run of a configuration wins
        e["stale"] = current is None or e["model_sha256"] != current
        (old if e["stale"] else latest)[(e["device"], *config_key(e))] = e
    order = lambda e: (e["device"], config_key(e))  # noqa: E731
    return sorted(latest.values(), key=order), sorted(old.values(), key=order)


def _bench_figures(path: Path, current: str | None, problems: list[str]) -> dict:
    """The run's ``benchmarks``, ``stale``, ``tuned`` and ``sweeps`` (see the module docstring)."""
    entries: list[dict] = []
    sweeps: dict[str, tuple[BenchRecord, str]] = {}
    for file, record in _bench_records(path, problems):
        entries += [_entry(record, r, file) for r in record.results]
        if record.tune and current is not None and record.sha256 == current:  # a sweep of other bytes chose nothing
            sweeps[record.device or DASH] = (record, file)  # the latest sweep of a device wins
    benchmarks, stale = _latest(entries, current)
    return {"benchmarks": benchmarks, "stale": stale,
            "tuned": [_tuned_entry(d, record.tune) for d, (record, _) in sorted(sweeps.items())],
            "sweeps": [_sweep(record, file) for _, (record, file) in sorted(sweeps.items())]}


def _section(manifest: dict, name: str) -> dict:
    return manifest.get(name) if isinstance(manifest.get(name), dict) else {}


def _text(x: Any) -> str | None:
    return str(x) if x else None


def _accuracy(manifest: dict) -> dict:
    """What the run's manifest says of its training and evaluation."""
    evaluation = _section(manifest, "evaluation")
    published_top1, published_dataset = _published(manifest.get("card"))
    return {"top1": _percent(_section(manifest, "metrics").get("val_accuracy")),
            "evaluated_top1": _percent(evaluation.get("top1")), "evaluated_data": _text(evaluation.get("data")),
            "evaluated_file": _text(evaluation.get("model_file")), "published_top1": published_top1,
            "published_dataset": published_dataset}


def _model_figures(manifest: dict) -> dict:
    """The model's size and its flatbuffer's binary coverage (:class:`edgebnn.run.records.ConversionReport`)."""
    stats = _section(manifest, "stats")
    conversion = ConversionReport.from_dict(manifest.get("conversion"))
    tflite = conversion.figure("tflite_bytes")
    return {**{k: number(stats.get(k)) for k in ("params", "binary_params", "float_params", "binary_mac_share")},
            "tflite_bytes": tflite if tflite is not None else number(_get(manifest, "files", "model.tflite", "bytes")),
            **{k: conversion.figure(k) for k in ("bconv", "binary_layers", "bconv_coverage")}}


def load_run(path: str | Path) -> dict:
    """The summary of one run directory (see the module docstring); never raises on partial runs."""
    path = Path(path)
    problems: list[str] = []
    manifest = _read_json(path / MANIFEST, problems)
    if not isinstance(manifest, dict):
        manifest = {}
        problems.append(f"no usable {MANIFEST}")
    data = manifest.get("data") or _get(manifest, "dataset", "name")
    current = _get(manifest, "files", "model.tflite", "sha256")
    current = current if isinstance(current, str) and current else None
    return {
        "path": str(path), "model": str(manifest.get("model") or path.name), "data": _text(data),
        "weights": manifest.get("weights") or ("trained" if _section(manifest, "metrics") else None),
        **_accuracy(manifest), **_model_figures(manifest), "model_sha256": current,
        **_bench_figures(path, current, problems),
        "flips_per_epoch": _flips(manifest), "model_options": _section(manifest, "model_options"),
        "recipe": _get(manifest, "recipe", "name"), "lr": number(_get(manifest, "recipe", "lr")),
        "problems": problems,
    }


def _name_runs(runs: list[dict], found: list[Path]) -> None:
    """Name runs by their path below the folder they share, so two "tiny" runs stay apart."""
    common = Path(os.path.commonpath([p.resolve() for p in found]))
    for r, p in zip(runs, found):
        relative = p.resolve().relative_to(common)
        r["name"] = p.resolve().name if len(found) == 1 or len(relative.parts) <= 1 else str(relative)


def _only_device(runs: list[dict], device: str) -> None:
    """Keep only ``device``'s figures (stale ones too).

    Raises:
        UsageError: no run has a figure on ``device``.
    """
    seen = sorted({b["device"] for r in runs for b in r["benchmarks"]})
    seen_stale = sorted({b["device"] for r in runs for b in r["stale"]} - set(seen))
    if device not in seen and device not in seen_stale:
        raise UsageError(f"no benchmark on device {device!r} in these runs: devices found: {', '.join(seen) or 'none'}")
    for r in runs:
        r["benchmarks"] = [b for b in r["benchmarks"] if b["device"] == device]
        r["stale"] = [b for b in r["stale"] if b["device"] == device]


def build_report(paths, *, device: str | None = None) -> dict:
    """Summaries of every run in ``paths`` plus the published reference points.

    Args:
        paths: run directories or folders holding run directories.
        device: keep only this device's benchmarks.

    Raises:
        UsageError: a path holds no run, or no run has a benchmark on ``device``.
    """
    found = find_runs(paths)
    runs = [load_run(p) for p in found]
    _name_runs(runs, found)
    if device:
        _only_device(runs, device)
    return {
        "generated": utc_now(),
        "device": device,
        "runs": runs,
        "published": [p.to_dict() for p in published_points()],
    }
