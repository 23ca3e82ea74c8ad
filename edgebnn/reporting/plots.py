"""The report's plots, each a PNG (:mod:`edgebnn.reporting.plot_style` draws them alike).

Measured points come from the report's runs; published reference points (other boards, see
:mod:`edgebnn.published`) are drawn with their own marker and colour and labelled
"published", and never take part in a Pareto front. A plot with nothing to show in any run
(no ``bench --tune`` sweep, no training with weight flips) is not drawn at all.
"""

from __future__ import annotations

import math

from edgebnn.reporting.load import is_default
from edgebnn.reporting.plot_style import (
    COLORS,
    MARKERS,
    MAX_LABELS,
    PUBLISHED_STYLE,
    empty_note,
    legend_below,
    log_axis,
    new_figure,
    plain,
    to_png,
)
from edgebnn.reporting.tables import kind_label, latency_of, settings_label


def _reference_latency(run: dict, device: str) -> tuple[float | None, int | None]:
    """The run's latency on ``device`` at 1 thread (else its fewest threads)."""
    entries = [b for b in run["benchmarks"] if b["device"] == device and b["ok"] and latency_of(b)[0] is not None]
    if not entries:
        return None, None
    # a --tune sweep has several configurations per thread count: the runtime's defaults first
    best = min(entries, key=lambda b: (b["threads"] != 1, b["threads"] if isinstance(b["threads"], int) else 0,
                                       not is_default(b)))
    return latency_of(best)[0], best["threads"]


def pareto_front(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """The points no other point beats on both lower latency (x) and higher accuracy (y)."""
    front, best = [], float("-inf")
    for x, y in sorted(points, key=lambda p: (p[0], -p[1])):
        if y > best:
            front.append((x, y))
            best = y
    return front


def _devices(report: dict) -> list[tuple[str, str]]:
    seen: dict[str, str] = {}
    for r in report["runs"]:
        for b in r["benchmarks"]:
            seen.setdefault(b["device"], b["figure_kind"])
    return sorted(seen.items())


def dataset_name(spec) -> str:
    """The dataset of a data spec or a published key: ``imagenet:/data/in`` -> ``imagenet``."""
    name = str(spec or "").split(":", 1)[0].strip().lower()
    return name or "dataset?"


def accuracy_panels(report: dict) -> list[dict]:
    """What the accuracy-latency plot draws: one panel per dataset and device, so that a top-1 is only
    ever beside top-1s on the same dataset (digits and ImageNet are different scales of difficulty).

    A run with a measured top-1 is a filled marker in its dataset's panel; a run with random
    weights shows its paper's top-1 as a hollow marker in the paper's dataset's panel. Published
    points (ImageNet top-1, other boards) go to the ImageNet panels only; without any, to one
    panel of their own.

    Returns:
        ``[{"dataset", "device", "kind", "groups": {label: [(latency, top1, model, threads)]}, "published"}]``.
    """
    panels: dict[tuple, dict] = {}
    for device, kind in _devices(report):
        for r in report["runs"]:
            latency, threads = _reference_latency(r, device)
            if latency is None:
                continue
            if r["top1"] is not None:
                dataset, label, top1 = dataset_name(r["data"]), "measured top-1", r["top1"]
            elif r["published_top1"] is not None:
                dataset, label, top1 = dataset_name(r["published_dataset"]), "paper top-1", r["published_top1"]
            else:
                continue
            panel = panels.setdefault((dataset, device), {"dataset": dataset, "device": device, "kind": kind,
                                                          "groups": {}, "published": []})
            panel["groups"].setdefault(label, []).append((latency, top1, r["model"], threads))
    published = [p for p in report["published"] if p["threads"] == 1]  # ImageNet top-1 (published.py)
    imagenet = [panel for panel in panels.values() if panel["dataset"] == "imagenet"]
    if published and not imagenet:
        imagenet = [panels.setdefault(("imagenet", None), {"dataset": "imagenet", "device": None, "kind": "",
                                                           "groups": {}, "published": []})]
    for panel in imagenet:
        panel["published"] = published
    return sorted(panels.values(), key=lambda p: (p["dataset"], p["device"] or ""))


def accuracy_latency(report: dict) -> bytes:
    """Top-1 against latency, one panel per dataset and device (:func:`accuracy_panels`), with the
    Pareto front of each group. Published points are grey stars."""
    panels = accuracy_panels(report) or [{"dataset": "", "device": None, "kind": "", "groups": {}, "published": []}]
    cols = min(3, len(panels))
    rows = math.ceil(len(panels) / cols)
    fig = new_figure(6.5 * cols, 4.8 * rows)
    axes = fig.subplots(rows, cols, squeeze=False).flatten()
    for ax, panel in zip(axes, panels):
        for i, (label, pts) in enumerate(sorted(panel["groups"].items())):
            color = COLORS[i % len(COLORS)]
            hollow = label.startswith("paper")
            ax.scatter([p[0] for p in pts], [p[1] for p in pts], marker="o", s=60, zorder=3, label=label,
                       facecolors="none" if hollow else color, edgecolors=color)
            front = pareto_front([(p[0], p[1]) for p in pts])
            ax.plot([p[0] for p in front], [p[1] for p in front], color=color, lw=1, ls="-", zorder=1)
            for x, y, model, threads in pts if len(pts) <= MAX_LABELS else ():
                ax.annotate(plain(f"{model} ({threads} thr)"), (x, y), textcoords="offset points", xytext=(5, 4),
                            fontsize=8)
        if published := panel["published"]:
            boards = " / ".join(dict.fromkeys(p["device"] for p in published))
            ax.scatter([p["latency_ms"] for p in published], [p["top1"] for p in published],
                       label=plain(f"published ({boards}; 1 thr; not measured here)"), **PUBLISHED_STYLE)
            for p in published:
                ax.annotate(plain(f"published: {p['label']}"), (p["latency_ms"], p["top1"]),
                            textcoords="offset points", xytext=(6, -10), fontsize=7, color="#555555")
        if not panel["groups"]:
            empty_note(ax, "no measured point with a top-1")
        ax.set_xscale("log")
        log_axis(ax.xaxis)
        ax.margins(x=0.3, y=0.12)
        ax.set_xlabel("latency (ms, median, log scale)")
        ax.set_ylabel(plain(f"top-1 on {panel['dataset']} (%)" if panel["dataset"] else "top-1 (%)"))
        where = (f"{panel['device']}: {kind_label(panel['kind'])}" if panel["kind"] else panel["device"]) \
            if panel["device"] else "published only"
        ax.set_title(plain(f"{panel['dataset']}, {where}" if panel["dataset"] else where), fontsize=10)
        ax.grid(alpha=0.3)
        legend_below(ax)
    for ax in axes[len(panels):]:
        ax.set_visible(False)
    fig.suptitle("accuracy against latency, one panel per dataset (line: Pareto front)")
    return to_png(fig)


def size_latency(report: dict) -> bytes:
    """Flatbuffer size against latency (1 thread), one colour per device."""
    fig = new_figure(7, 4.8)
    ax = fig.subplots()
    drawn = False
    for i, (device, kind) in enumerate(_devices(report)):
        pts = []
        for r in report["runs"]:
            latency, _ = _reference_latency(r, device)
            if latency is not None and r["tflite_bytes"] is not None:
                pts.append((r["tflite_bytes"] / 2**20, latency, r["model"]))
        if not pts:
            continue
        drawn = True
        ax.scatter([p[0] for p in pts], [p[1] for p in pts], color=COLORS[i % len(COLORS)], s=60,
                   label=plain(f"{device} ({kind} figures)"))
        for x, y, model in pts if len(pts) <= MAX_LABELS else ():
            ax.annotate(plain(model), (x, y), textcoords="offset points", xytext=(5, 4), fontsize=8)
    if not drawn:
        empty_note(ax, "no converted and benchmarked run")
    else:
        legend_below(ax)
    ax.set_xscale("log")
    ax.set_yscale("log")
    log_axis(ax.xaxis)
    log_axis(ax.yaxis)
    ax.margins(x=0.3, y=0.15)
    ax.set_xlabel("flatbuffer size (MiB, log scale)")
    ax.set_ylabel("latency (ms, median at 1 thread, log scale)")
    ax.set_title("size against latency (measured only)")
    ax.grid(alpha=0.3)
    return to_png(fig)


def _measured_lines(report: dict) -> list[dict]:
    """The latency-against-threads lines: per run and device (one colour), one per runtime setting."""
    lines, n = [], 0
    for index, r in enumerate(report["runs"]):
        for device, kind in _devices(report):
            entries = [b for b in r["benchmarks"] if b["device"] == device and b["ok"] and latency_of(b)[0] is not None
                       and isinstance(b["threads"], int)]
            by_setting: dict[str, list] = {}
            for b in sorted(entries, key=lambda b: (not is_default(b), settings_label(b), b["threads"])):
                by_setting.setdefault(settings_label(b), []).append((b["threads"], latency_of(b)[0], b["valid"]))
            for m, (setting, pts) in enumerate(by_setting.items()):
                lines.append({"run": index, "device": device, "color": COLORS[n % len(COLORS)],
                              "marker": MARKERS[m % len(MARKERS)], "points": sorted(pts),
                              "label": f"{r['model']} on {device} ({kind})" + (f", {setting}" if setting else "")})
            n += bool(by_setting)
    return lines


def limit_lines(report: dict) -> list[dict]:
    """The latency LCE's kernel mix allows, per run, device and core, at each thread count measured.

    ``points`` are ``(threads, ms)``: the model's binary MACs over the roofline's LCE limit of the
    cores used (per-core limit x threads, up to the cores there are). A device whose cores have
    no known limits (an x86 host) has no line.

    Returns:
        ``[{"run" (index in the report), "device", "core", "affinity", "label", "points"}]``.
    """
    groups: dict[tuple, dict] = {}
    for index, r in enumerate(report["runs"]):
        for b in r["benchmarks"]:
            if b.get("lce_limit_ms") is None or not isinstance(b["threads"], int):
                continue
            key = (index, b["device"], b["limit_core"], b["affinity"])
            groups.setdefault(key, {})[b["threads"]] = b["lce_limit_ms"]
    several = len({key[0] for key in groups}) > 1
    lines = []
    for (index, device, core, affinity), by_threads in sorted(groups.items(), key=lambda kv: kv[0][:2]):
        model = f"{report['runs'][index]['model']} on " if several else ""
        pinned = f", CPUs {affinity}" if affinity else ""
        lines.append({"run": index, "device": device, "core": core, "affinity": affinity,
                      "label": f"LCE-mix limit, {model}{device} ({core}{pinned})", "points": sorted(by_threads.items())})
    return lines


def _no_limit_note(report: dict, limits: list[dict]) -> str:
    """Which measured devices have no limit line (a host, or a core without known NEON limits)."""
    limited = {line["device"] for line in limits}
    missing = [d for d, _ in _devices(report) if d not in limited]
    return f"\nno LCE-mix limit for {', '.join(missing)} (no known Arm core)" if missing and limited else ""


def latency_threads(report: dict) -> bytes:
    """Latency against thread count: one line per run and device; published lines dashed grey.

    A run benchmarked with other runtime settings (indirect BGEMM, XNNPACK, pinned CPUs) gets a
    line per setting in its colour, each with its marker. An invalid configuration (too few runs
    or too short) is a hollow marker. The dashed line in a run's colour is the latency LCE's
    kernel mix allows on the device's cores (:func:`limit_lines`): how far the run is from the chip.
    """
    fig = new_figure(7, 4.8)
    ax = fig.subplots()
    many = len(report["runs"]) > MAX_LABELS
    measured = _measured_lines(report)
    for line in measured:
        pts, color = line["points"], line["color"]
        ax.plot([p[0] for p in pts], [p[1] for p in pts], marker=line["marker"], color=color,
                label=None if many else plain(line["label"]))
        invalid = [p for p in pts if not p[2]]  # hollow: missed its minimum runs or duration
        ax.scatter([p[0] for p in invalid], [p[1] for p in invalid], marker=line["marker"], facecolors="white",
                   edgecolors=color, zorder=3)
    colors = {(line["run"], line["device"]): line["color"] for line in measured}
    limits = limit_lines(report)
    for line in limits:
        pts = line["points"]
        ax.plot([p[0] for p in pts], [p[1] for p in pts], ls="--", lw=1.2, zorder=1,
                color=colors.get((line["run"], line["device"]), "#444444"), label=None if many else plain(line["label"]))
    by_model: dict[tuple, list] = {}
    for p in report["published"]:
        by_model.setdefault((p["label"], p["device"]), []).append((p["threads"], p["latency_ms"]))
    for n, ((label, device), pts) in enumerate(sorted(by_model.items())):
        pts.sort()
        ax.plot([p[0] for p in pts], [p[1] for p in pts], ls="--", color="#888888", lw=1, zorder=1)
        ax.scatter([p[0] for p in pts], [p[1] for p in pts], label="published (other boards)" if n == 0 else None,
                   **PUBLISHED_STYLE)
        ax.annotate(plain(f"published: {label} ({device})"), pts[-1], textcoords="offset points", xytext=(5, 0),
                    fontsize=7, color="#555555")
    ax.set_yscale("log")
    log_axis(ax.yaxis)
    ax.margins(x=0.35, y=0.1)
    ax.set_xlabel("threads")
    ax.set_ylabel("latency (ms, median, log scale)")
    ax.set_xticks(sorted({1, 4} | {b["threads"] for r in report["runs"] for b in r["benchmarks"] if isinstance(b["threads"], int)}))
    ax.set_title(plain("latency against threads" + (" (dashed: LCE-mix limit of the cores used)" if limits else "")
                    + _no_limit_note(report, limits)), fontsize=10)
    ax.grid(alpha=0.3)
    legend_below(ax)
    return to_png(fig)


def _switches(config: dict) -> str:
    """``indirect BGEMM off, XNNPACK on[, CPUs 4-7]``: every switch named, as the sweep's legend needs."""
    on = lambda key: "on" if config.get(key) else "off"  # noqa: E731
    pinned = f", CPUs {config['affinity']}" if config.get("affinity") else ""
    return f"indirect BGEMM {on('indirect_bgemm')}, XNNPACK {on('xnnpack')}{pinned}"


def sweep_series(run: dict, sweep: dict) -> dict:
    """What the sweep plot draws of one run's ``bench --tune`` on one device.

    Returns:
        ``{"title", "lines": [{"label", "points": [(threads, median, low, high, valid)]}],
        "chosen": {"label", "threads", "median_ms"} or None}``; configurations without a latency
        (failed) have no point.
    """
    lines: dict[str, list] = {}
    for r in sorted(sweep["results"], key=lambda r: (r["affinity"], r["indirect_bgemm"], r["xnnpack"])):
        points = lines.setdefault(_switches(r), [])
        if r["median_ms"] is not None and isinstance(r["threads"], int):
            points.append((r["threads"], r["median_ms"], r["low_ms"], r["high_ms"], r["valid"]))
    chosen = next((r for r in sweep["results"] if r["index"] == sweep["chosen"]), None)
    incomplete = "" if sweep.get("complete", True) else \
        f" (incomplete: {sweep.get('ran') or 0:.0f} of {sweep.get('planned') or 0:.0f} ran)"
    return {
        "title": f"{run.get('name') or run['model']}: {sweep['device']} ({sweep['figure_kind']}){incomplete}",
        "complete": sweep.get("complete", True),
        "lines": [{"label": label, "points": sorted(pts)} for label, pts in lines.items()],
        "chosen": None if chosen is None else {"label": f"chosen: {chosen['threads']} thr, {_switches(chosen)}",
                                               "threads": chosen["threads"], "median_ms": chosen["median_ms"]},
    }


def tune_sweep(report: dict) -> bytes | None:
    """Median latency against threads of every ``bench --tune`` sweep, one panel per run and device.

    One line per combination of indirect BGEMM, XNNPACK and CPU pinning, with the 95 % interval
    of the median the choice was made by as error bars (overlapping intervals are the rule's
    ties); the chosen configuration is a star, named in the legend. None without any sweep.
    """
    panels = [sweep_series(r, s) for r in report["runs"] for s in r.get("sweeps") or []]
    if not panels:
        return None
    cols = min(2, len(panels))
    rows = math.ceil(len(panels) / cols)
    fig = new_figure(6.5 * cols, 4.6 * rows)
    axes = fig.subplots(rows, cols, squeeze=False).flatten()
    for ax, panel in zip(axes, panels):
        width = len(panel["lines"])
        for n, line in enumerate(panel["lines"]):
            pts = line["points"]
            if not pts:  # every configuration of this combination failed
                continue
            shift = (n - (width - 1) / 2) * 0.05  # side by side: error bars at one thread count stay apart
            xs, ys = [p[0] + shift for p in pts], [p[1] for p in pts]
            # an older record has no interval: no bar
            errors = [[max(0.0, p[1] - p[2]) if p[2] is not None else 0.0 for p in pts],
                      [max(0.0, p[3] - p[1]) if p[3] is not None else 0.0 for p in pts]]
            color = COLORS[n % len(COLORS)]
            ax.errorbar(xs, ys, yerr=errors, marker=MARKERS[n % len(MARKERS)], color=color, capsize=3, lw=1,
                        label=plain(line["label"]))
            invalid = [(x, p) for x, p in zip(xs, pts) if not p[4]]
            ax.scatter([x for x, _ in invalid], [p[1] for _, p in invalid], marker=MARKERS[n % len(MARKERS)],
                       facecolors="white", edgecolors=color, zorder=3)
        chosen = panel["chosen"]
        if chosen is not None:
            ax.scatter([chosen["threads"]], [chosen["median_ms"]], marker="*", s=260, color="#ffbf00",
                       edgecolors="#333333", zorder=4, label=plain(chosen["label"]))
        elif not panel["complete"]:
            empty_note(ax, "sweep incomplete: nothing chosen")
        else:
            empty_note(ax, "no valid configuration: nothing chosen")
        ax.set_xticks(sorted({p[0] for line in panel["lines"] for p in line["points"]}) or [1])
        ax.set_xlabel("threads")
        ax.set_ylabel("latency (ms, median, 95% interval)")
        ax.set_title(plain(panel["title"]), fontsize=10)
        ax.grid(alpha=0.3)
        legend_below(ax)
    for ax in axes[len(panels):]:
        ax.set_visible(False)
    fig.suptitle("bench --tune sweeps (star: the configuration chosen)")
    return to_png(fig)


def _option(value) -> str:
    """A model option as typed on the command line (``--model-arg state_aware=false``)."""
    return str(value).lower() if isinstance(value, bool) else str(value)


def flip_series(report: dict) -> list[dict]:
    """What the flips plot draws: each training run's flip ratio per epoch, labelled by its ablation.

    The label is the run's name, its model (where the name does not say it), the builder options it
    was trained with (``state_aware=false``) and its learning rate where the runs plotted differ
    in it (the manifest records the recipe as trained, not which field the user overrode).

    Returns:
        ``[{"run", "label", "epochs" (1-based), "ratios"}]``, runs without flips left out.
    """
    flipped = [r for r in report["runs"] if any(x is not None for x in r.get("flips_per_epoch") or [])]
    show_lr = len({r.get("lr") for r in flipped}) > 1
    series = []
    for r in flipped:
        name = r.get("name") or r["model"]
        parts = [name] + ([r["model"]] if r["model"] not in name else [])
        parts += [f"{k}={_option(v)}" for k, v in sorted((r.get("model_options") or {}).items())]
        parts += [f"lr={r['lr']:g}"] if show_lr and r.get("lr") is not None else []
        pts = [(epoch, x) for epoch, x in enumerate(r["flips_per_epoch"], start=1) if x is not None]
        series.append({"run": r["path"], "label": " ".join(parts), "epochs": [p[0] for p in pts],
                       "ratios": [p[1] for p in pts]})
    return series


def flips(report: dict) -> bytes | None:
    """The flip ratio per epoch, one line per training run (the ablation in the legend); None without any."""
    series = flip_series(report)
    if not series:
        return None
    from matplotlib.ticker import MaxNLocator, PercentFormatter

    fig = new_figure(7, 4.8)
    ax = fig.subplots()
    for n, s in enumerate(series):
        ax.plot(s["epochs"], s["ratios"], marker="o", ms=4, color=COLORS[n % len(COLORS)],
                label=None if len(series) > MAX_LABELS else plain(s["label"]))
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.yaxis.set_major_formatter(PercentFormatter(1.0))
    ax.set_ylim(bottom=0)
    ax.set_xlabel("epoch")
    ax.set_ylabel("flip ratio (binary weights whose sign changed)")
    ax.set_title("weight flips per epoch")
    ax.grid(alpha=0.3)
    legend_below(ax)
    return to_png(fig)


PLOTS = {"accuracy-latency": accuracy_latency, "size-latency": size_latency, "latency-threads": latency_threads,
         "tune-sweep": tune_sweep, "flips": flips}


def draw_all(report: dict) -> dict[str, bytes]:
    """Every plot with something to show, as PNG bytes, by name."""
    plots = {name: draw(report) for name, draw in PLOTS.items()}
    return {name: png for name, png in plots.items() if png is not None}
