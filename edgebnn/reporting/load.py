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
    bconv_coverage, benchmarks (one entry per device and thread count: the latest result),
    problems (what could not be read)
"""

from __future__ import annotations

import json
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
    return x if isinstance(x, (int, float)) and not isinstance(x, bool) else None


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


def _bench_entries(record: dict, file: str) -> list[dict]:
    """One entry per configuration of a bench record (``edgebnn.device.bench.device_record``)."""
    kind = record.get("figure_kind")
    if kind not in ("host", "board"):  # never call a figure a board figure without being told
        kind = "unknown"
    entries = []
    for r in record.get("results") or []:
        if not isinstance(r, dict):
            continue
        latency = r.get("latency") if isinstance(r.get("latency"), dict) else {}
        entries.append({
            "device": str(record.get("device") or DASH),
            "figure_kind": kind,
            "threads": _get(r, "config", "threads"),
            "ok": bool(r.get("ok")),
            "valid": bool(r.get("valid")),
            "error_kind": r.get("error_kind") or "",
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
            "started": str(record.get("started") or ""),
            "file": file,
        })
    return entries


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

    entries: list[dict] = []
    tuned: dict[str, dict] = {}
    bench_files = sorted(path.glob("bench/*.json"))
    for f in bench_files:
        record = _read_json(f, problems)
        if isinstance(record, dict):
            entries += _bench_entries(record, str(f.relative_to(path)))
            choice = record.get("tune") if isinstance(record.get("tune"), dict) else None
            if choice and isinstance(choice.get("config"), dict):  # the latest sweep of a device wins
                tuned[str(record.get("device"))] = {"started": str(record.get("started") or ""), **choice}
        elif record is not None:
            problems.append(f"{f.relative_to(path)} is not a bench record (a JSON {type(record).__name__})")
    latest: dict[tuple, dict] = {}
    for e in sorted(entries, key=lambda e: e["started"]):  # a later run of a configuration wins
        latest[(e["device"], e["threads"])] = e
    benchmarks = sorted(latest.values(), key=lambda e: (e["device"], e["threads"] if isinstance(e["threads"], int) else 0))

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
        "benchmarks": benchmarks,
        "tuned": [{"device": d, "threads": c["config"].get("threads"), "indirect_bgemm": c["config"].get("indirect_bgemm"),
                   "xnnpack": c["config"].get("xnnpack"), "median_ms": c.get("median_ms"), "rule": c.get("rule")}
                  for d, c in sorted(tuned.items())],
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
        if device not in seen:
            raise UsageError(
                f"no benchmark on device {device!r} in these runs: devices found: {', '.join(seen) or 'none'}"
            )
        for r in runs:
            r["benchmarks"] = [b for b in r["benchmarks"] if b["device"] == device]
    return {
        "generated": utc_now(),
        "device": device,
        "runs": runs,
        "published": [p.to_dict() for p in published_points()],
    }
