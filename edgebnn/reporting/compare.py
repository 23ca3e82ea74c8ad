"""Two runs (or one run on two devices) side by side, with B/A ratios."""

from __future__ import annotations

from edgebnn.errors import UsageError, shell_command
from edgebnn.reporting.load import DASH, config_key, find_runs, load_run
from edgebnn.reporting.tables import accuracy_cell, config_label, format_value, latency_cell, latency_of, size_cell


def _ratio(a: float | None, b: float | None) -> str:
    return f"{b / a:.2f}x" if a and b is not None else DASH


def compare(a: dict, b: dict, *, device_a: str | None = None, device_b: str | None = None) -> dict:
    """Two run summaries side by side, on one device each, with B/A ratios.

    Args:
        a, b: run summaries (:func:`load_run`); the same run for two devices.
        device_a, device_b: the devices to compare (default: the first device both runs have,
            else each run's first device).

    Returns:
        ``{"a", "b", "device_a", "device_b", "label_a", "label_b", "header", "rows", "warnings"}``.

    Raises:
        UsageError: a run has no benchmark on the device asked for.
    """
    device_a, device_b = _devices(a, b, device_a, device_b)
    # a configuration is its threads and settings: a --tune sweep has several per thread count
    ea, eb = _by_config(a["benchmarks"], device_a), _by_config(b["benchmarks"], device_b)
    # Figures of another flatbuffer than the run's: named as stale, never compared (no ratio).
    sa = {k: x for k, x in _by_config(a.get("stale", []), device_a).items() if k not in ea}
    sb = {k: x for k, x in _by_config(b.get("stale", []), device_b).items() if k not in eb}
    rows = _run_rows(a, b) + [row for key in sorted(set(ea) | set(eb) | set(sa) | set(sb))
                              for row in _latency_rows(ea.get(key), eb.get(key), sa.get(key), sb.get(key))]
    kinds = {x["figure_kind"] for x in [*ea.values(), *eb.values()]}
    return {
        "a": a["path"], "b": b["path"], "device_a": device_a, "device_b": device_b,
        "label_a": _side_label(a, device_a, ea, sa), "label_b": _side_label(b, device_b, eb, sb),
        "header": ["", "A", "B", "B / A"], "rows": rows, "warnings": _warnings(a, b, sa, sb, kinds),
    }


def compare_paths(a: str, b: str | None = None, *, device_a: str | None = None,
                  device_b: str | None = None) -> dict:
    """:func:`compare` of the runs in two run directories (``b`` None: ``a`` on two devices).

    Raises:
        UsageError: a path is not one run directory, or a run has no benchmark on the device asked for.
    """
    summaries = []
    for src in (a, b or a):
        found = find_runs([src])
        if len(found) != 1:
            raise UsageError(f"{src!r} holds {len(found)} runs: give one run directory")
        summaries.append(load_run(found[0]))
    return compare(*summaries, device_a=device_a, device_b=device_b)


def _measured_on(run: dict) -> list[str]:
    """The devices a run has figures of (stale ones too), in order."""
    return list(dict.fromkeys(x["device"] for x in run["benchmarks"] + run.get("stale", [])))


def _devices(a: dict, b: dict, device_a: str | None, device_b: str | None) -> tuple[str | None, str | None]:
    """The devices to compare: those asked for, else the first both runs have, else each run's first.

    Raises:
        UsageError: a run has no benchmark on the device asked for.
    """
    devices_a, devices_b = _measured_on(a), _measured_on(b)
    if device_a is None and device_b is None:
        shared = [d for d in devices_a if d in devices_b]
        device_a, device_b = (shared[0], shared[0]) if shared else ((devices_a or [None])[0], (devices_b or [None])[0])
    for run, device, devices in ((a, device_a, devices_a), (b, device_b, devices_b)):
        if device is not None and device not in devices:
            raise UsageError(
                f"no benchmark of {run['path']!r} on device {device!r}: it has {', '.join(devices) or 'none'}"
            )
    return device_a, device_b


def _by_config(entries: list[dict], device: str | None) -> dict[tuple, dict]:
    return {config_key(x): x for x in entries if x["device"] == device}


def _run_rows(a: dict, b: dict) -> list[list[str]]:
    """The rows of what each run is: model, accuracies, size, binary coverage."""
    def accuracy(name: str, value: str, dataset: str) -> list[str]:
        return [name, accuracy_cell(a[value], a[dataset]), accuracy_cell(b[value], b[dataset]), _ratio(a[value], b[value])]

    def figure(name: str, key: str, cell, ratio: bool = True) -> list[str]:
        return [name, cell(a[key]), cell(b[key]), _ratio(a[key], b[key]) if ratio else ""]

    return [
        ["model", a["model"], b["model"], ""],
        accuracy("top-1", "top1", "data"),
        accuracy("evaluated top-1", "evaluated_top1", "evaluated_data"),
        accuracy("paper top-1", "published_top1", "published_dataset"),
        figure("params", "params", lambda x: format_value(x, ",.0f")),
        figure("binary MACs", "binary_mac_share", lambda x: format_value(x, ".1%"), ratio=False),
        figure("flatbuffer", "tflite_bytes", size_cell),
        figure("LceBconv2d coverage", "bconv_coverage", lambda x: format_value(x, ".0%"), ratio=False),
    ]


def _latency(entry: dict | None) -> float | None:
    return latency_of(entry)[0] if entry and entry["ok"] else None


def _latency_rows(xa: dict | None, xb: dict | None, stale_a: dict | None, stale_b: dict | None) -> list[list[str]]:
    """One configuration's latency row (a stale figure shown, never compared) and its peak memory row."""
    config = config_label(xa or xb or stale_a or stale_b)
    rows = [[f"latency {config} (median / p90 ms)", latency_cell(xa) if xa else _stale_cell(stale_a),
             latency_cell(xb) if xb else _stale_cell(stale_b), _ratio(_latency(xa), _latency(xb))]]
    pa, pb = (xa or {}).get("peak_mb"), (xb or {}).get("peak_mb")
    if pa is not None or pb is not None:
        rows.append([f"peak memory {config} (MB)", format_value(pa, ".1f"), format_value(pb, ".1f"), _ratio(pa, pb)])
    return rows


def _warnings(a: dict, b: dict, stale_a: dict, stale_b: dict, kinds: set[str]) -> list[str]:
    """What the reader must know: stale figures, host against board figures, top-1s on different datasets."""
    warnings = [_stale_warning(side, run, stale) for side, run, stale in (("A", a, stale_a), ("B", b, stale_b))
                if stale]
    if len(kinds) > 1:
        warnings.append("one side has host figures and the other board figures: the latency ratio is not like for like")
    if a["data"] and b["data"] and a["data"] != b["data"] and a["top1"] is not None and b["top1"] is not None:
        warnings.append(f"top-1 on different datasets ({a['data']} vs {b['data']})")
    return warnings


def _stale_warning(side: str, run: dict, stale: dict) -> str:
    measured = sorted({(x.get("model_sha256") or "not recorded")[:12] for x in stale.values()})
    return (f"{side}'s latency on {run['model']} was measured on another flatbuffer (sha256 {', '.join(measured)}; "
            f"the run's model.tflite is now {(run.get('model_sha256') or 'not recorded')[:12]}): stale, not "
            f"compared; bench it again (`{shell_command('edgebnn', 'bench', run['path'])}`)")


def _stale_cell(entry: dict | None) -> str:
    """A stale figure's cell: its value stays visible, marked, never as the run's."""
    return DASH if entry is None else f"stale: {latency_cell(entry)} (another flatbuffer)"


def _side_label(run: dict, device: str | None, entries: dict, stale: dict) -> str:
    kinds = "/".join(sorted({x["figure_kind"] for x in entries.values()})) or (
        "stale figures only" if stale else "no benchmark")
    return f"{run['model']} on {device or DASH} ({kinds})"
