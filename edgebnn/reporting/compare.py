"""Two runs (or one run on two devices) side by side, with B/A ratios."""

from __future__ import annotations

from edgebnn.errors import UsageError, shell_command
from edgebnn.reporting.load import DASH, config_key
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
    devices_a = list(dict.fromkeys(x["device"] for x in a["benchmarks"] + a.get("stale", [])))
    devices_b = list(dict.fromkeys(x["device"] for x in b["benchmarks"] + b.get("stale", [])))
    if device_a is None and device_b is None:
        shared = [d for d in devices_a if d in devices_b]
        device_a, device_b = (shared[0], shared[0]) if shared else ((devices_a or [None])[0], (devices_b or [None])[0])
    for run, device, devices in ((a, device_a, devices_a), (b, device_b, devices_b)):
        if device is not None and device not in devices:
            raise UsageError(
                f"no benchmark of {run['path']!r} on device {device!r}: it has {', '.join(devices) or 'none'}"
            )
    # a configuration is its threads and settings: a --tune sweep has several per thread count
    ea = {config_key(x): x for x in a["benchmarks"] if x["device"] == device_a}
    eb = {config_key(x): x for x in b["benchmarks"] if x["device"] == device_b}
    # Figures of another flatbuffer than the run's: named as stale, never compared (no ratio).
    sa = {config_key(x): x for x in a.get("stale", []) if x["device"] == device_a and config_key(x) not in ea}
    sb = {config_key(x): x for x in b.get("stale", []) if x["device"] == device_b and config_key(x) not in eb}
    rows = [
        ["model", a["model"], b["model"], ""],
        ["top-1", accuracy_cell(a["top1"], a["data"]), accuracy_cell(b["top1"], b["data"]), _ratio(a["top1"], b["top1"])],
        ["evaluated top-1", accuracy_cell(a["evaluated_top1"], a["evaluated_data"]),
         accuracy_cell(b["evaluated_top1"], b["evaluated_data"]), _ratio(a["evaluated_top1"], b["evaluated_top1"])],
        ["paper top-1", accuracy_cell(a["published_top1"], a["published_dataset"]),
         accuracy_cell(b["published_top1"], b["published_dataset"]), _ratio(a["published_top1"], b["published_top1"])],
        ["params", format_value(a["params"], ",.0f"), format_value(b["params"], ",.0f"), _ratio(a["params"], b["params"])],
        ["binary MACs", format_value(a["binary_mac_share"], ".1%"), format_value(b["binary_mac_share"], ".1%"), ""],
        ["flatbuffer", size_cell(a["tflite_bytes"]), size_cell(b["tflite_bytes"]), _ratio(a["tflite_bytes"], b["tflite_bytes"])],
        ["LceBconv2d coverage", format_value(a["bconv_coverage"], ".0%"), format_value(b["bconv_coverage"], ".0%"), ""],
    ]
    kinds = []
    for key in sorted(set(ea) | set(eb) | set(sa) | set(sb)):
        xa, xb = ea.get(key), eb.get(key)
        la = latency_of(xa)[0] if xa and xa["ok"] else None
        lb = latency_of(xb)[0] if xb and xb["ok"] else None
        config = config_label(xa or xb or sa.get(key) or sb.get(key))
        rows.append([f"latency {config} (median / p90 ms)", latency_cell(xa) if xa else _stale_cell(sa.get(key)),
                     latency_cell(xb) if xb else _stale_cell(sb.get(key)), _ratio(la, lb)])
        pa, pb = (xa or {}).get("peak_mb"), (xb or {}).get("peak_mb")
        if pa is not None or pb is not None:
            rows.append([f"peak memory {config} (MB)", format_value(pa, ".1f"), format_value(pb, ".1f"), _ratio(pa, pb)])
        kinds += [x["figure_kind"] for x in (xa, xb) if x]
    warnings = []
    for side, run, stale in (("A", a, sa), ("B", b, sb)):
        if stale:
            measured = sorted({(x.get("model_sha256") or "not recorded")[:12] for x in stale.values()})
            warnings.append(f"{side}'s latency on {run['model']} was measured on another flatbuffer (sha256 "
                            f"{', '.join(measured)}; the run's model.tflite is now "
                            f"{(run.get('model_sha256') or 'not recorded')[:12]}): stale, not compared; bench it again "
                            f"(`{shell_command('edgebnn', 'bench', run['path'])}`)")
    if len(set(kinds)) > 1:
        warnings.append("one side has host figures and the other board figures: the latency ratio is not like for like")
    if a["data"] and b["data"] and a["data"] != b["data"] and a["top1"] is not None and b["top1"] is not None:
        warnings.append(f"top-1 on different datasets ({a['data']} vs {b['data']})")
    return {
        "a": a["path"], "b": b["path"], "device_a": device_a, "device_b": device_b,
        "label_a": _side_label(a, device_a, ea, sa), "label_b": _side_label(b, device_b, eb, sb),
        "header": ["", "A", "B", "B / A"], "rows": rows, "warnings": warnings,
    }


def _stale_cell(entry: dict | None) -> str:
    """A stale figure's cell: its value stays visible, marked, never as the run's."""
    return DASH if entry is None else f"stale: {latency_cell(entry)} (another flatbuffer)"


def _side_label(run: dict, device: str | None, entries: dict, stale: dict) -> str:
    kinds = "/".join(sorted({x["figure_kind"] for x in entries.values()})) or (
        "stale figures only" if stale else "no benchmark")
    return f"{run['model']} on {device or DASH} ({kinds})"
