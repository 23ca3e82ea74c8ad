"""Reports over run directories: tables per device, plots, comparisons.

Everything here reads only ``manifest.json`` and ``bench/*.json`` (never TensorFlow), so a
report over many runs is instant. Run directories are read defensively: other stages add keys
over time, and a run may be partial (trained but not converted, a failed bench configuration),
so a missing figure is shown as "-" and never stops the report.

A run summary (what :func:`load_run` returns, and what the JSON format holds) is a dict::

    path, name (in reports: the path below the runs' common folder), model, data, weights, top1 (percent), published_top1 (percent), published_dataset,
    params, binary_params, float_params, binary_mac_share, tflite_bytes, bconv, binary_layers,
    bconv_coverage, benchmarks (one entry per device and thread count: the latest result),
    problems (what could not be read)
"""

from __future__ import annotations

import csv
import html
import io
import json
import os
from pathlib import Path
from typing import Any

from edgebnn.errors import UsageError
from edgebnn.published import published_points
from edgebnn.rundir import MANIFEST, utc_now

FORMATS = ("md", "html", "json", "csv")
DASH = "-"


# -- reading --------------------------------------------------------------------------------
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
    """One entry per configuration of a bench JSON record."""
    kind = record.get("figure_kind")
    if kind not in ("host", "board"):  # never call a figure a board figure without being told
        kind = "host" if _get(record, "profile", "board") is False else "unknown"
    entries = []
    for r in record.get("results") or []:
        if not isinstance(r, dict):
            continue
        latency = r.get("latency") if isinstance(r.get("latency"), dict) else {}
        entries.append({
            "device": str(record.get("device") or DASH),
            "figure_kind": kind,
            "threads": _get(r, "config", "threads") if _get(r, "config", "threads") is not None else r.get("threads"),
            "ok": bool(r.get("ok")),
            "valid": bool(r.get("valid")),
            "error_kind": r.get("error_kind") or "",
            "error": r.get("error") or "",
            "median_ms": _number(latency.get("median_ms", r.get("median_ms"))),
            "p90_ms": _number(latency.get("p90_ms", r.get("p90_ms"))),
            "mean_ms": _number(latency.get("mean_ms", r.get("mean_ms"))),
            "runs": latency.get("runs", r.get("runs")),
            "peak_mb": _number(_get(r, "figures", "memory", "peak_mb")),
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
    published_top1, published_dataset = _published(manifest.get("card"))
    data = manifest.get("data") or _get(manifest, "dataset", "name")
    weights = manifest.get("weights") or ("trained" if metrics else None)

    entries: list[dict] = []
    bench_files = sorted(path.glob("bench/*.json"))
    for f in bench_files:
        record = _read_json(f, problems)
        if isinstance(record, dict):
            entries += _bench_entries(record, str(f.relative_to(path)))
    if not bench_files:  # older runs or copied manifests: the summaries in the manifest
        for s in manifest.get("benchmarks") or []:
            if isinstance(s, dict):
                for r in s.get("results") or []:
                    entries += _bench_entries({**s, "results": [r]}, str(s.get("file") or MANIFEST))
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
        "top1": _percent(metrics.get("top1", metrics.get("val_accuracy"))),
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


# -- tables ---------------------------------------------------------------------------------
def latency_of(entry: dict) -> tuple[float | None, str]:
    """The entry's latency and what it is: the median, else the mean (tools that print aggregates)."""
    if entry.get("median_ms") is not None:
        return entry["median_ms"], "median"
    if entry.get("mean_ms") is not None:
        return entry["mean_ms"], "mean"
    return None, ""


def _fmt(x: float | None, spec: str) -> str:
    return DASH if x is None else format(x, spec)


def _size(n: float | None) -> str:
    if n is None:
        return DASH
    return f"{n / 2**20:.2f} MiB" if n >= 2**20 else f"{n / 1024:.0f} KiB"


def _accuracy(value: float | None, dataset: str | None) -> str:
    return DASH if value is None else f"{value:.1f}%" + (f" ({dataset})" if dataset else "")


def _latency_cell(entry: dict | None) -> str:
    if entry is None:
        return DASH
    if not entry["ok"]:
        return f"failed: {entry['error_kind'] or 'error'}"
    value, kind = latency_of(entry)
    if value is None:
        return DASH
    text = f"{value:.2f} / {_fmt(entry['p90_ms'], '.2f')}" if kind == "median" else f"mean {value:.2f}"
    return text if entry["valid"] else f"{text} (invalid)"


def _status(entries: list[dict]) -> str:
    failed = [e for e in entries if not e["ok"]]
    invalid = [e for e in entries if e["ok"] and not e["valid"]]
    parts = [f"{e['error_kind'] or 'failed'} at {e['threads']} thr" for e in failed]
    parts += [f"invalid at {e['threads']} thr" for e in invalid]
    return "; ".join(parts) if parts else "valid"


def kind_label(kind: str) -> str:
    return {"host": "host figures (this machine, not a board)", "board": "board figures"}.get(kind, "unknown figure kind")


def device_tables(report: dict) -> list[dict]:
    """One table per device (plus one for runs without benchmarks), as header and string rows.

    Returns:
        ``[{"device", "figure_kind", "title", "header", "rows"}]``.
    """
    devices = sorted({b["device"] for r in report["runs"] for b in r["benchmarks"]})
    tables = []
    common = ["run", "model", "data", "top-1", "paper top-1", "params", "binary MACs", "flatbuffer", "LceBconv2d"]

    def base(r: dict) -> list[str]:
        coverage = DASH
        if r["bconv"] is not None and r["binary_layers"] is not None:
            coverage = f"{r['bconv']:.0f}/{r['binary_layers']:.0f}"
            if r["bconv_coverage"] is not None:
                coverage += f" ({r['bconv_coverage']:.0%})"
        return [
            r.get("name") or Path(r["path"]).name,
            r["model"],
            r["data"] or DASH,
            _accuracy(r["top1"], None) if r["top1"] is not None else ("random weights" if r["weights"] == "random" else DASH),
            _accuracy(r["published_top1"], r["published_dataset"]),
            DASH if r["params"] is None else f"{r['params'] / 1e6:.2f} M",
            _fmt(r["binary_mac_share"], ".1%"),
            _size(r["tflite_bytes"]),
            coverage,
        ]

    for device in devices:
        runs = [r for r in report["runs"] if any(b["device"] == device for b in r["benchmarks"])]
        entries = {id(r): [b for b in r["benchmarks"] if b["device"] == device] for r in runs}
        threads = sorted({b["threads"] for es in entries.values() for b in es if isinstance(b["threads"], int)})
        kinds = sorted({b["figure_kind"] for es in entries.values() for b in es})
        kind = kinds[0] if len(kinds) == 1 else "mixed"
        mixed = kind == "mixed"  # only then does each row need its own figure kind
        header = common + [f"{t} thr median / p90 ms" for t in threads] + ["peak MB", "status"] + (["figures"] if mixed else [])
        rows = []
        for r in runs:
            es = entries[id(r)]
            by_threads = {b["threads"]: b for b in es}
            peaks = [b["peak_mb"] for b in es if b["peak_mb"] is not None]
            rows.append(
                base(r)
                + [_latency_cell(by_threads.get(t)) for t in threads]
                + [_fmt(max(peaks) if peaks else None, ".1f"), _status(es)]
                + (["/".join(sorted({b["figure_kind"] for b in es}))] if mixed else [])
            )
        title = f"{device}: {kind_label(kind)}" if kind != "mixed" else f"{device}: mixed host and board figures"
        tables.append({"device": device, "figure_kind": kind, "title": title, "header": header, "rows": rows})
    idle = [r for r in report["runs"] if not r["benchmarks"]]
    if idle:
        rows = [base(r) + ["; ".join(r["problems"]) or ("converted" if r["tflite_bytes"] else "not converted")] for r in idle]
        title = f"not benchmarked on {report['device']}" if report.get("device") else "not benchmarked"
        tables.append({"device": None, "figure_kind": None, "title": title,
                       "header": common + ["status"], "rows": rows})
    return tables


def published_table(report: dict) -> dict:
    header = ["model", "device", "threads", "latency ms", "top-1 (ImageNet)", "source"]
    rows = [[p["label"], p["device"], str(p["threads"]), f"{p['latency_ms']:.1f}", f"{p['top1']:.1f}%", p["source"]]
            for p in report["published"]]
    return {"title": "published reference figures (other boards, not measured here)", "header": header, "rows": rows}


NOTES = (
    "Latency cells are median / p90 in ms over the timed runs ('mean' where the tool printed "
    "aggregates only); '(invalid)' marks a configuration that missed its minimum runs or duration. "
    "Host figures come from this machine's LCE interpreter (on x86, portable reference kernels): "
    "they are not board figures. Published figures come from other boards and builds and are "
    "never mixed with measured ones. Top-1 is measured on the run's own dataset; the paper's "
    "top-1 is on its dataset (ImageNet for the zoo models)."
)


# -- renderers ------------------------------------------------------------------------------
def _md_table(table: dict) -> str:
    esc = lambda s: str(s).replace("|", "\\|")  # noqa: E731
    lines = ["| " + " | ".join(map(esc, table["header"])) + " |", "|" + "---|" * len(table["header"])]
    lines += ["| " + " | ".join(map(esc, row)) + " |" for row in table["rows"]]
    return "\n".join(lines)


def to_markdown(report: dict, *, plot_files: dict[str, str] | None = None) -> str:
    """The report as Markdown; ``plot_files`` maps plot names to image paths to link."""
    parts = [f"# edgebnn report\n\nGenerated {report['generated']} from {len(report['runs'])} run(s).\n"]
    for t in device_tables(report):
        parts.append(f"## {t['title']}\n\n{_md_table(t)}\n")
    for name, file in (plot_files or {}).items():
        parts.append(f"![{name}]({file})\n")
    parts.append(f"## {published_table(report)['title']}\n\n{_md_table(published_table(report))}\n")
    parts.append(f"{NOTES}\n")
    problems = [f"- {r['path']}: {p}" for r in report["runs"] for p in r["problems"]]
    if problems:
        parts.append("## problems\n\n" + "\n".join(problems) + "\n")
    return "\n".join(parts)


def to_json(report: dict) -> str:
    return json.dumps(report, indent=2) + "\n"


CSV_FIELDS = ["path", "model", "data", "weights", "top1", "published_top1", "published_dataset", "params",
              "binary_params", "float_params", "binary_mac_share", "tflite_bytes", "bconv", "binary_layers",
              "bconv_coverage", "device", "figure_kind", "threads", "ok", "valid", "error_kind", "median_ms",
              "p90_ms", "mean_ms", "runs", "peak_mb", "started", "file"]


def to_csv(report: dict) -> str:
    """One line per run, device and thread count (one line for a run without benchmarks)."""
    out = io.StringIO()
    writer = csv.DictWriter(out, CSV_FIELDS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for r in report["runs"]:
        for b in r["benchmarks"] or [{}]:
            writer.writerow({**r, **b})
    return out.getvalue()


_CSS = """
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; }
.scroll { overflow-x: auto; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; font-size: 0.85em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.5em; text-align: left; }
th { background: #f0f0f0; }
tr:nth-child(even) td { background: #fafafa; }
.host h2 { color: #8a5a00; } .board h2 { color: #1a5e20; } .published h2 { color: #555; }
.kind { font-size: 0.8em; padding: 0.1em 0.4em; border-radius: 0.3em; background: #eee; }
img { max-width: 100%; border: 1px solid #ddd; margin: 0.5em 0; }
.notes { color: #555; max-width: 60em; }
"""


def _html_table(table: dict, css_class: str) -> str:
    e = html.escape
    head = "".join(f"<th>{e(h)}</th>" for h in table["header"])
    body = "".join("<tr>" + "".join(f"<td>{e(str(c))}</td>" for c in row) + "</tr>" for row in table["rows"])
    return (f'<section class="{css_class}"><h2>{e(table["title"])}</h2>'
            f'<div class="scroll"><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div></section>')


def to_html(report: dict, *, plots: dict[str, bytes] | None = None) -> str:
    """A self-contained HTML page: tables, plots embedded as data URIs, no network fetch."""
    import base64

    e = html.escape
    sections = [_html_table(t, t["figure_kind"] or "idle") for t in device_tables(report)]
    for name, png in (plots or {}).items():
        data = base64.b64encode(png).decode()
        sections.append(f'<figure><img alt="{e(name)}" src="data:image/png;base64,{data}"></figure>')
    sections.append(_html_table(published_table(report), "published"))
    sections.append(f'<p class="notes">{e(NOTES)}</p>')
    problems = [f"<li>{e(r['path'])}: {e(p)}</li>" for r in report["runs"] for p in r["problems"]]
    if problems:
        sections.append(f"<h2>problems</h2><ul>{''.join(problems)}</ul>")
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>edgebnn report</title>"
        f"<style>{_CSS}</style></head><body><h1>edgebnn report</h1>"
        f"<p>Generated {e(report['generated'])} from {len(report['runs'])} run(s).</p>"
        + "\n".join(sections) + "</body></html>\n"
    )


def render(report: dict, *, fmt: str, plots: dict[str, bytes] | None = None,
           plot_files: dict[str, str] | None = None) -> str:
    """The report in ``fmt`` (md, html, json or csv).

    Raises:
        UsageError: unknown ``fmt``.
    """
    if fmt == "md":
        return to_markdown(report, plot_files=plot_files)
    if fmt == "html":
        return to_html(report, plots=plots)
    if fmt == "json":
        return to_json(report)
    if fmt == "csv":
        return to_csv(report)
    raise UsageError(f"unknown report format {fmt!r}: choose one of {', '.join(FORMATS)}")


# -- comparison -----------------------------------------------------------------------------
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
    devices_a = list(dict.fromkeys(x["device"] for x in a["benchmarks"]))
    devices_b = list(dict.fromkeys(x["device"] for x in b["benchmarks"]))
    if device_a is None and device_b is None:
        shared = [d for d in devices_a if d in devices_b]
        device_a, device_b = (shared[0], shared[0]) if shared else ((devices_a or [None])[0], (devices_b or [None])[0])
    for run, device, devices in ((a, device_a, devices_a), (b, device_b, devices_b)):
        if device is not None and device not in devices:
            raise UsageError(
                f"no benchmark of {run['path']!r} on device {device!r}: it has {', '.join(devices) or 'none'}"
            )
    ea = {x["threads"]: x for x in a["benchmarks"] if x["device"] == device_a}
    eb = {x["threads"]: x for x in b["benchmarks"] if x["device"] == device_b}
    rows = [
        ["model", a["model"], b["model"], ""],
        ["top-1", _accuracy(a["top1"], a["data"]), _accuracy(b["top1"], b["data"]), _ratio(a["top1"], b["top1"])],
        ["paper top-1", _accuracy(a["published_top1"], a["published_dataset"]),
         _accuracy(b["published_top1"], b["published_dataset"]), _ratio(a["published_top1"], b["published_top1"])],
        ["params", _fmt(a["params"], ",.0f"), _fmt(b["params"], ",.0f"), _ratio(a["params"], b["params"])],
        ["binary MACs", _fmt(a["binary_mac_share"], ".1%"), _fmt(b["binary_mac_share"], ".1%"), ""],
        ["flatbuffer", _size(a["tflite_bytes"]), _size(b["tflite_bytes"]), _ratio(a["tflite_bytes"], b["tflite_bytes"])],
        ["LceBconv2d coverage", _fmt(a["bconv_coverage"], ".0%"), _fmt(b["bconv_coverage"], ".0%"), ""],
    ]
    kinds = []
    for threads in sorted(set(ea) | set(eb), key=lambda t: t if isinstance(t, int) else 0):
        xa, xb = ea.get(threads), eb.get(threads)
        la = latency_of(xa)[0] if xa and xa["ok"] else None
        lb = latency_of(xb)[0] if xb and xb["ok"] else None
        rows.append([f"latency {threads} thr (median / p90 ms)", _latency_cell(xa), _latency_cell(xb), _ratio(la, lb)])
        pa, pb = (xa or {}).get("peak_mb"), (xb or {}).get("peak_mb")
        if pa is not None or pb is not None:
            rows.append([f"peak memory {threads} thr (MB)", _fmt(pa, ".1f"), _fmt(pb, ".1f"), _ratio(pa, pb)])
        kinds += [x["figure_kind"] for x in (xa, xb) if x]
    warnings = []
    if len(set(kinds)) > 1:
        warnings.append("one side has host figures and the other board figures: the latency ratio is not like for like")
    if a["data"] and b["data"] and a["data"] != b["data"] and a["top1"] is not None and b["top1"] is not None:
        warnings.append(f"top-1 on different datasets ({a['data']} vs {b['data']})")
    return {
        "a": a["path"], "b": b["path"], "device_a": device_a, "device_b": device_b,
        "label_a": _side_label(a, device_a, ea), "label_b": _side_label(b, device_b, eb),
        "header": ["", "A", "B", "B / A"], "rows": rows, "warnings": warnings,
    }


def _side_label(run: dict, device: str | None, entries: dict) -> str:
    kinds = "/".join(sorted({x["figure_kind"] for x in entries.values()})) or "no benchmark"
    return f"{run['model']} on {device or DASH} ({kinds})"
