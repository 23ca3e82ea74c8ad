"""The report's tables, as header and string rows: one per device, published figures apart."""

from __future__ import annotations

from pathlib import Path

from edgebnn.reporting.load import DASH, config_key, is_default


def latency_of(entry: dict) -> tuple[float | None, str]:
    """The entry's latency and what it is: the median, else the mean (tools that print aggregates)."""
    if entry.get("median_ms") is not None:
        return entry["median_ms"], "median"
    if entry.get("mean_ms") is not None:
        return entry["mean_ms"], "mean"
    return None, ""


def settings_label(entry: dict) -> str:
    """The entry's non-default runtime settings (``indirect BGEMM, XNNPACK, CPUs 4-7``); "" for the defaults."""
    parts = [name for key, name in (("indirect_bgemm", "indirect BGEMM"), ("xnnpack", "XNNPACK")) if entry.get(key)]
    return ", ".join(parts + ([f"CPUs {entry['affinity']}"] if entry.get("affinity") else []))


def config_label(entry: dict) -> str:
    """``4 thr`` or ``4 thr, indirect BGEMM``: how tables and plots name a configuration."""
    return ", ".join(filter(None, [f"{entry.get('threads')} thr", settings_label(entry)]))


def format_value(x: float | None, spec: str) -> str:
    return DASH if x is None else format(x, spec)


def size_cell(n: float | None) -> str:
    if n is None:
        return DASH
    return f"{n / 2**20:.2f} MiB" if n >= 2**20 else f"{n / 1024:.0f} KiB"


def accuracy_cell(value: float | None, dataset: str | None) -> str:
    return DASH if value is None else f"{value:.1f}%" + (f" ({dataset})" if dataset else "")


def latency_cell(entry: dict | None) -> str:
    if entry is None:
        return DASH
    if not entry["ok"]:
        return f"failed: {entry['error_kind'] or 'error'}"
    value, kind = latency_of(entry)
    if value is None:
        return DASH
    text = f"{value:.2f} / {format_value(entry['p90_ms'], '.2f')}" if kind == "median" else f"mean {value:.2f}"
    return text if entry["valid"] else f"{text} (invalid)"


def throughput_cell(entries: list[dict]) -> str:
    """The fastest valid configuration's binary MACs per second, and its share of the core's LCE limit."""
    valid = [e for e in entries if e["ok"] and e.get("gbmacs") is not None]
    if not valid:
        return DASH
    best = max(valid, key=lambda e: e["gbmacs"])
    share = f" ({best['share_of_lce']:.0%} of {best['limit_core']})" if best.get("share_of_lce") is not None else \
        " (no limit: unknown core)"
    return f"{best['gbmacs']:.2f}{share}"


def _status(entries: list[dict]) -> str:
    failed = [e for e in entries if not e["ok"]]
    invalid = [e for e in entries if e["ok"] and not e["valid"]]
    parts = [f"{e['error_kind'] or 'failed'} at {config_label(e)}" for e in failed]
    parts += [f"invalid at {config_label(e)}" for e in invalid]
    return "; ".join(parts) if parts else "valid"


def kind_label(kind: str) -> str:
    return {"host": "host figures (not an ARM board)", "board": "board figures"}.get(kind, "unknown figure kind")


def latency_columns(entries: list[dict]) -> dict[tuple, dict]:
    """The latency columns of one device's table: one per thread count, or, as soon as one entry
    ran with non-default settings, one per configuration (so a sweep's configurations stay apart
    and a default-only table looks as it always did). Keyed by :func:`config_key`."""
    timed = [e for e in entries if isinstance(e["threads"], int)]
    if all(is_default(e) for e in timed):
        return {config_key({"threads": t}): {"threads": t} for t in sorted({e["threads"] for e in timed})}
    return {config_key(e): e for e in sorted(timed, key=config_key)}


COMMON = ["run", "model", "data", "top-1", "evaluated top-1", "paper top-1", "params", "binary MACs", "flatbuffer",
          "LceBconv2d"]


def device_tables(report: dict) -> list[dict]:
    """One table per device, then the ``--tune`` choices and the runs without benchmarks, as header and string rows.

    Returns:
        ``[{"device", "figure_kind", "title", "header", "rows"}]``.
    """
    devices = sorted({b["device"] for r in report["runs"] for b in r["benchmarks"]})
    tables = [device_table(report, device) for device in devices]
    return tables + [t for t in (tuned_table(report), idle_table(report)) if t is not None]


def run_name(run: dict) -> str:
    return run.get("name") or Path(run["path"]).name


def coverage_cell(run: dict) -> str:
    """``LceBconv2d`` ops over binary layers, or over convolutions for a flatbuffer brought without its Keras model."""
    bconv, layers, coverage = run["bconv"], run["binary_layers"], run["bconv_coverage"]
    if bconv is None:
        return DASH
    if layers is not None:
        return f"{bconv:.0f}/{layers:.0f}" + (f" ({coverage:.0%})" if coverage is not None else "")
    return f"{bconv:.0f} ops" + (f" ({coverage:.0%} of convs)" if coverage is not None else "")


def top1_cell(run: dict) -> str:
    if run["top1"] is not None:
        return accuracy_cell(run["top1"], None)
    return "random weights" if run["weights"] == "random" else DASH


def run_cells(run: dict) -> list[str]:
    """The cells of :data:`COMMON`: what a run is, whatever it was benchmarked on."""
    return [run_name(run), run["model"], run["data"] or DASH, top1_cell(run),
            accuracy_cell(run["evaluated_top1"], run["evaluated_data"]),
            accuracy_cell(run["published_top1"], run["published_dataset"]),
            DASH if run["params"] is None else f"{run['params'] / 1e6:.2f} M",
            format_value(run["binary_mac_share"], ".1%"), size_cell(run["tflite_bytes"]), coverage_cell(run)]


def device_table(report: dict, device: str) -> dict:
    """The table of one device: a row per run benchmarked on it, a latency column per configuration."""
    entries = {i: [b for b in r["benchmarks"] if b["device"] == device] for i, r in enumerate(report["runs"])}
    entries = {i: es for i, es in entries.items() if es}
    measured = [b for es in entries.values() for b in es]
    columns = latency_columns(measured)
    kind = figure_kind_of(measured)
    mixed = kind == "mixed"  # only then does each row need its own figure kind
    header = (COMMON + [f"{config_label(c)} median / p90 ms" for c in columns.values()]
              + ["binary GBMAC/s (share of LCE limit)", "peak MB", "status"] + (["figures"] if mixed else []))
    rows = [device_row(report["runs"][i], es, columns, mixed=mixed) for i, es in entries.items()]
    title = f"{device}: {kind_label(kind)}" if not mixed else f"{device}: mixed host and board figures"
    return {"device": device, "figure_kind": kind, "title": title, "header": header, "rows": rows}


def figure_kind_of(entries: list[dict]) -> str:
    """``host``, ``board`` or ``unknown`` when the entries agree, else ``mixed``."""
    kinds = {b["figure_kind"] for b in entries}
    return kinds.pop() if len(kinds) == 1 else "mixed"


def device_row(run: dict, entries: list[dict], columns: dict[tuple, dict], *, mixed: bool) -> list[str]:
    by_config = {config_key(b): b for b in entries}
    peaks = [b["peak_mb"] for b in entries if b["peak_mb"] is not None]
    return (run_cells(run) + [latency_cell(by_config.get(key)) for key in columns]
            + [throughput_cell(entries), format_value(max(peaks) if peaks else None, ".1f"), _status(entries)]
            + (["/".join(sorted({b["figure_kind"] for b in entries}))] if mixed else []))


def tuned_table(report: dict) -> dict | None:
    """What each ``bench --tune`` chose, or None without any."""
    tuned = [(r, t) for r in report["runs"] for t in r.get("tuned") or []]
    if not tuned:
        return None
    pinned = any(t.get("affinity") for _, t in tuned)  # a CPUs column only where a choice pins
    header = ["run", "device", "threads", "indirect BGEMM", "XNNPACK"] + ["CPUs"] * pinned + ["median ms", "sweep"]
    rule = next((t["rule"] for _, t in tuned if t.get("rule")), "")
    return {"device": None, "figure_kind": None, "header": header, "rows": [tuned_row(r, t, pinned) for r, t in tuned],
            "title": f"tuned configurations (edgebnn bench --tune: {rule})"}


def tuned_row(run: dict, tuned: dict, pinned: bool) -> list[str]:
    chosen = tuned["threads"] is not None
    on = lambda key: ("on" if tuned[key] else "off") if chosen else DASH  # noqa: E731
    cpus = [(tuned.get("affinity") or "all") if chosen else DASH] * pinned
    return ([run_name(run), tuned["device"], str(tuned["threads"]) if chosen else DASH, on("indirect_bgemm"),
             on("xnnpack")] + cpus + [format_value(tuned["median_ms"], ".2f"), sweep_cell(tuned)])


def idle_table(report: dict) -> dict | None:
    """The runs without benchmarks, with why, or None when every run has some."""
    idle = [r for r in report["runs"] if not r["benchmarks"]]
    if not idle:
        return None
    title = f"not benchmarked on {report['device']}" if report.get("device") else "not benchmarked"
    return {"device": None, "figure_kind": None, "title": title, "header": COMMON + ["status"],
            "rows": [run_cells(r) + [idle_status(r)] for r in idle]}


def idle_status(run: dict) -> str:
    if run["problems"]:
        return "; ".join(run["problems"])
    if run.get("stale"):
        return "only stale figures (below): bench it again"
    return "converted" if run["tflite_bytes"] else "not converted"


def sweep_cell(tuned: dict) -> str:
    """How much of a ``--tune`` sweep ran: ``8 configurations``, or why nothing was chosen."""
    ran, planned = tuned.get("ran"), tuned.get("planned")
    if not tuned.get("complete", True):
        return f"incomplete: {format_value(ran, '.0f')} of {format_value(planned, '.0f')} configurations ran, nothing chosen"
    counted = f"{ran:.0f} configurations" if ran is not None else "complete"
    return counted if tuned.get("threads") is not None else f"{counted}, none valid: nothing chosen"


def stale_table(report: dict) -> dict | None:
    """The figures measured on another flatbuffer than each run's ``model.tflite``: shown apart, never the run's.

    Returns:
        ``{"title", "header", "rows"}``, or None when every figure is bound to its run's flatbuffer.
    """
    rows = []
    for r in report["runs"]:
        now = (r.get("model_sha256") or "")[:12] or "none recorded"
        for e in r.get("stale") or []:
            measured = (e.get("model_sha256") or "")[:12] or "not recorded"
            rows.append([run_name(r), e["device"], config_label(e), latency_cell(e),
                         measured, now, e["file"]])
    if not rows:
        return None
    return {"title": "stale figures: measured on another flatbuffer than the run's model.tflite (not figures of the "
                     "run; bench it again)",
            "header": ["run", "device", "configuration", "median / p90 ms", "measured sha256", "run's sha256 now",
                       "file"], "rows": rows}


def published_table(report: dict) -> dict:
    header = ["model", "device", "threads", "latency ms", "top-1 (ImageNet)", "source"]
    rows = [[p["label"], p["device"], str(p["threads"]), f"{p['latency_ms']:.1f}", f"{p['top1']:.1f}%", p["source"]]
            for p in report["published"]]
    return {"title": "published reference figures (other boards, not measured here)", "header": header, "rows": rows}


NOTES = (
    "Latency cells are median / p90 in ms over the timed runs ('mean' where the tool printed "
    "aggregates only); '(invalid)' marks a configuration that missed its minimum runs or duration. "
    "A device with configurations beyond the defaults (indirect BGEMM, XNNPACK, pinned CPUs) gets one column "
    "per configuration. "
    "Host figures come from this machine's LCE interpreter (on x86, portable reference kernels): "
    "they are not board figures. Binary GBMAC/s is the model's binary MACs over the median latency; its share "
    "of the LCE limit is against the NEON instruction mix of LCE's kernel on the cores used (edgebnn.device."
    "roofline); an x86 host or a core without known limits gets none. Every figure is bound to the flatbuffer it "
    "measured (the bench record's sha256): one measured on another flatbuffer than the run's model.tflite (an older "
    "conversion, a re-conversion with --int8) is 'stale', listed apart and never shown, compared or plotted as the "
    "run's. Published figures come from other boards and builds and are "
    "never mixed with measured ones. Top-1 is the training run's last validation on its own "
    "dataset; evaluated top-1 is what `edgebnn evaluate` measured, on the dataset named beside it; "
    "the paper's top-1 is on its dataset (ImageNet for the zoo models)."
)
