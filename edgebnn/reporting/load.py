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
import math
import os
from pathlib import Path
from typing import Any

from edgebnn.errors import UsageError
from edgebnn.reporting.published import published_points
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
    """``d[k1][k2]...``, or None where any level is missing or not a dict."""
    for k in keys:
        if not isinstance(d, dict):
            return None
        d = d.get(k)
    return d


def _number(x: Any) -> float | int | None:
    """A figure, or None: never a bool, a NaN or an infinity (a JSON file may hold them)."""
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        return None
    return x if math.isfinite(x) else None


def _percent(x: Any) -> float | None:
    """Accuracy in percent: fractions (0..1, what Keras reports) are scaled."""
    x = _number(x)
    return None if x is None else (x * 100 if x <= 1 else x)


def _published(card: Any) -> tuple[float | None, str | None]:
    """The paper's top-1 (percent) and its dataset from the card's ``published`` figures."""
    published = _get(card, "published") or {}
    for key, value in published.items() if isinstance(published, dict) else ():
        if str(key).endswith("top1") and _number(value) is not None:
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


def lce_limit_ms(roofline: Any) -> float | None:
    """The latency LCE's kernel mix allows on the cores used: binary MACs / the roofline's LCE limit."""
    macs, limit = _number(_get(roofline, "binary_macs")), _number(_get(roofline, "lce_gbmacs"))
    return macs / (limit * 1e6) if macs and limit else None


ARM = ("aarch64", "arm64", "armv8l")


def figure_kind(record: dict) -> str:
    """A record's figure kind, held to the architecture its preflight saw: never ``board`` off ARM.

    Records written before the bench stage followed the architecture (a profile called
    ``bananapi`` that reached an x86 machine said ``board``) are read as what they measured.
    """
    kind = record.get("figure_kind")
    if kind not in ("host", "board"):  # never call a figure a board figure without being told
        return "unknown"
    arch = str(_get(record, "fingerprint", "arch") or "").strip().lower()
    if kind == "board" and arch and not (arch in ARM or arch.startswith("arm")):
        return "host"
    return kind


def record_sha256(record: dict) -> str | None:
    """The sha256 of the flatbuffer a bench record measured (``model_file.sha256``), or None."""
    digest = _get(record, "model_file", "sha256")
    return digest if isinstance(digest, str) and digest else None


def _latency_ok(latency: dict) -> bool:
    """False when a latency figure in the record is NaN or infinite (hand-edited, or an older edgebnn)."""
    return all(not isinstance(v, float) or math.isfinite(v) for v in latency.values())


def _bench_entries(record: dict, file: str) -> list[dict]:
    """One entry per configuration of a bench record (``edgebnn.device.bench.device_record``)."""
    kind = figure_kind(record)
    entries = []
    for r in record.get("results") or []:
        if not isinstance(r, dict):
            continue
        latency = r.get("latency") if isinstance(r.get("latency"), dict) else {}
        finite = _latency_ok(latency)
        entries.append({
            "device": str(record.get("device") or DASH),
            "figure_kind": kind,
            "threads": _get(r, "config", "threads"),
            **settings(r.get("config")),
            "ok": bool(r.get("ok")),
            "valid": bool(r.get("valid")) and finite,
            "error_kind": r.get("error_kind") or ("" if finite else "not_finite"),
            "error": r.get("error") or "",
            "median_ms": _number(latency.get("median_ms")),
            "p90_ms": _number(latency.get("p90_ms")),
            "mean_ms": _number(latency.get("mean_ms")),
            "runs": latency.get("runs"),
            "peak_mb": _number(latency.get("peak_memory_mb")),
            "gbmacs": _number(_get(r, "roofline", "achieved_gbmacs")),
            "share_of_lce": _number(_get(r, "roofline", "share_of_lce")),
            "share_of_floor": _number(_get(r, "roofline", "share_of_floor")),
            "limit_core": _get(r, "roofline", "core"),
            "cores_used": _number(_get(r, "roofline", "cores_used")),
            "lce_gbmacs": _number(_get(r, "roofline", "lce_gbmacs")),
            "lce_limit_ms": lce_limit_ms(r.get("roofline")),
            "started": str(record.get("started") or ""),
            "file": file,
            "model_sha256": record_sha256(record),
        })
    return entries


def recorded_interval(result: dict) -> tuple[float | None, float | None, float | None] | None:
    """``(median, low, high)`` in ms of one result record, or None when it has no latency.

    The interval is the one ``bench --tune`` chose by (``median_interval_ms``, written by the
    device stage); a record from before it has the median only (no interval: None, None).
    """
    written = result.get("median_interval_ms")
    if isinstance(written, list) and len(written) == 3 and all(_number(x) is not None for x in written):
        return tuple(written)
    latency = result.get("latency") if isinstance(result.get("latency"), dict) else {}
    centre = _number(latency.get("median_ms", latency.get("mean_ms")))
    return None if centre is None else (centre, None, None)


def _sweep(record: dict, file: str) -> dict:
    """A ``bench --tune`` record as the sweep plot needs it: each configuration's median and interval."""
    choice = record["tune"]
    results = []
    for i, r in enumerate(record.get("results") or []):
        if not isinstance(r, dict):
            continue
        interval = recorded_interval(r) if r.get("ok") else None
        median, low, high = interval or (None, None, None)
        results.append({"index": i, "threads": _get(r, "config", "threads"), **settings(r.get("config")),
                        "ok": bool(r.get("ok")), "valid": bool(r.get("valid")),
                        "median_ms": median, "low_ms": low, "high_ms": high})
    index = choice.get("index")
    complete = choice.get("complete") is not False
    return {"device": str(record.get("device") or DASH), "figure_kind": figure_kind(record),
            "started": str(record.get("started") or ""), "file": file,
            "chosen": index if complete and isinstance(index, int) and any(x["index"] == index for x in results) else None,
            "ties": [t for t in choice.get("ties") or [] if isinstance(t, int)], "rule": str(choice.get("rule") or ""),
            "complete": complete, "ran": _number(choice.get("ran")), "planned": _number(choice.get("planned")),
            "results": results}


def _tuned_entry(device: str, choice: dict) -> dict:
    """A device's latest ``bench --tune`` for the report: its choice, or none when the sweep was incomplete."""
    config = choice.get("config") if isinstance(choice.get("config"), dict) and choice["complete"] else None
    return {"device": device, "threads": (config or {}).get("threads"), **settings(config),
            "median_ms": _number(choice.get("median_ms")) if config else None, "rule": choice.get("rule"),
            "complete": choice["complete"], "ran": _number(choice.get("ran")), "planned": _number(choice.get("planned"))}


def _flips(manifest: dict) -> list[float | None]:
    """The training's flip ratio per epoch (``manifest["flips"]["per_epoch"]``); a bad value is None."""
    per_epoch = _get(manifest, "flips", "per_epoch")
    return [_number(x) for x in per_epoch] if isinstance(per_epoch, list) else []


def load_run(path: str | Path) -> dict:
    """The summary of one run directory (see the module docstring); never raises on partial runs."""
    path = Path(path)
    problems: list[str] = []
    manifest = _read_json(path / MANIFEST, problems)
    if not isinstance(manifest, dict):
        manifest = {}
        problems.append(f"no usable {MANIFEST}")
    conversion = manifest.get("conversion") if isinstance(manifest.get("conversion"), dict) else {}
    stats = manifest.get("stats") if isinstance(manifest.get("stats"), dict) else {}
    metrics = manifest.get("metrics") if isinstance(manifest.get("metrics"), dict) else {}
    evaluation = manifest.get("evaluation") if isinstance(manifest.get("evaluation"), dict) else {}
    published_top1, published_dataset = _published(manifest.get("card"))
    data = manifest.get("data") or _get(manifest, "dataset", "name")
    weights = manifest.get("weights") or ("trained" if metrics else None)

    # Figures are bound to the bytes they measured: only a record of the flatbuffer the manifest
    # names now is a figure of the run; any other (an older conversion, a record without a hash)
    # is stale, shown apart.
    current = _get(manifest, "files", "model.tflite", "sha256")
    current = current if isinstance(current, str) and current else None
    entries: list[dict] = []
    tuned: dict[str, dict] = {}
    sweeps: dict[str, dict] = {}
    bench_files = sorted(path.glob("bench/*.json"))
    for f in bench_files:
        record = _read_json(f, problems)
        if isinstance(record, dict):
            entries += _bench_entries(record, str(f.relative_to(path)))
            choice = record.get("tune") if isinstance(record.get("tune"), dict) else None
            if choice is None or current is None or record_sha256(record) != current:
                continue  # a sweep of other bytes chose nothing for these
            # the latest sweep of a device wins (file names sort by time)
            sweeps[str(record.get("device") or DASH)] = _sweep(record, str(f.relative_to(path)))
            tuned[str(record.get("device"))] = {"started": str(record.get("started") or ""), **choice,
                                                "complete": choice.get("complete") is not False}
        elif record is not None:
            problems.append(f"{f.relative_to(path)} is not a bench record (a JSON {type(record).__name__})")
    latest: dict[tuple, dict] = {}
    old: dict[tuple, dict] = {}
    for e in sorted(entries, key=lambda e: e["started"]):  # a later run of a configuration wins
        e["stale"] = current is None or e["model_sha256"] != current
        (old if e["stale"] else latest)[(e["device"], e["threads"], e["indirect_bgemm"], e["xnnpack"],
                                         e["affinity"])] = e
    benchmarks = sorted(latest.values(), key=lambda e: (e["device"], config_key(e)))
    stale = sorted(old.values(), key=lambda e: (e["device"], config_key(e)))

    tflite = _number(conversion.get("tflite_bytes"))
    if tflite is None:
        tflite = _number(_get(manifest, "files", "model.tflite", "bytes"))
    return {
        "path": str(path),
        "model": str(manifest.get("model") or path.name),
        "data": str(data) if data else None,
        "weights": weights,
        "top1": _percent(metrics.get("val_accuracy")),
        "evaluated_top1": _percent(evaluation.get("top1")),
        "evaluated_data": str(evaluation["data"]) if evaluation.get("data") else None,
        "evaluated_file": str(evaluation["model_file"]) if evaluation.get("model_file") else None,
        "published_top1": published_top1,
        "published_dataset": published_dataset,
        "params": _number(stats.get("params")),
        "binary_params": _number(stats.get("binary_params")),
        "float_params": _number(stats.get("float_params")),
        "binary_mac_share": _number(stats.get("binary_mac_share")),
        "tflite_bytes": tflite,
        "bconv": _number(conversion.get("bconv")),
        "binary_layers": _number(conversion.get("binary_layers")),
        "bconv_coverage": _number(conversion.get("bconv_coverage")),
        "model_sha256": current,
        "benchmarks": benchmarks,
        "stale": stale,
        "tuned": [_tuned_entry(d, c) for d, c in sorted(tuned.items())],
        "sweeps": [s for _, s in sorted(sweeps.items())],
        "flips_per_epoch": _flips(manifest),
        "model_options": manifest["model_options"] if isinstance(manifest.get("model_options"), dict) else {},
        "recipe": _get(manifest, "recipe", "name"),
        "lr": _number(_get(manifest, "recipe", "lr")),
        "problems": problems,
    }


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
    # name runs by their path below the folder they share, so two "tiny" runs stay apart
    common = Path(os.path.commonpath([p.resolve() for p in found]))
    for r, p in zip(runs, found):
        relative = p.resolve().relative_to(common)
        r["name"] = p.resolve().name if len(found) == 1 or len(relative.parts) <= 1 else str(relative)
    if device:
        seen = sorted({b["device"] for r in runs for b in r["benchmarks"]})
        seen_stale = sorted({b["device"] for r in runs for b in r["stale"]} - set(seen))
        if device not in seen and device not in seen_stale:
            raise UsageError(
                f"no benchmark on device {device!r} in these runs: devices found: {', '.join(seen) or 'none'}"
            )
        for r in runs:
            r["benchmarks"] = [b for b in r["benchmarks"] if b["device"] == device]
            r["stale"] = [b for b in r["stale"] if b["device"] == device]
    return {
        "generated": utc_now(),
        "device": device,
        "runs": runs,
        "published": [p.to_dict() for p in published_points()],
    }
