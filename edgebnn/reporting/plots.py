"""The report's plots, drawn with matplotlib's Agg canvas (no display, no pyplot state).

Measured points come from the report's runs; published reference points (other boards, see
:mod:`edgebnn.published`) are drawn with their own marker and colour and labelled
"published", and never take part in a Pareto front.
"""

from __future__ import annotations

import io

from edgebnn.reporting.tables import kind_label, latency_of

PUBLISHED_STYLE = {"marker": "*", "color": "#888888", "s": 140, "edgecolors": "#444444", "zorder": 2}
MAX_LABELS = 30  # beyond this many measured points, names and legend entries only clutter
COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2"]


def _figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight")
    return buf.getvalue()


def _reference_latency(run: dict, device: str) -> tuple[float | None, int | None]:
    """The run's latency on ``device`` at 1 thread (else its fewest threads)."""
    entries = [b for b in run["benchmarks"] if b["device"] == device and b["ok"] and latency_of(b)[0] is not None]
    if not entries:
        return None, None
    best = min(entries, key=lambda b: (b["threads"] != 1, b["threads"] if isinstance(b["threads"], int) else 0))
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


def _log_axis(axis) -> None:
    """A log axis with plain numbers (12, 40, 100) instead of powers of ten."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    axis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    axis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    axis.set_minor_formatter(NullFormatter())


def _legend_below(ax) -> None:
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=2, frameon=False)


def _empty(ax, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color="#888888")


def accuracy_latency(report: dict) -> bytes:
    """Top-1 against latency, one panel per device, with the Pareto front of each dataset.

    A run with a measured top-1 is a filled marker (its dataset); a run with random weights
    shows its paper's top-1 as a hollow marker. Published points are grey stars.
    """
    devices = _devices(report) or [("no device", "")]
    fig = _figure(6.5 * len(devices), 4.8)
    axes = fig.subplots(1, len(devices), squeeze=False)[0]
    for ax, (device, kind) in zip(axes, devices):
        groups: dict[str, list] = {}
        for r in report["runs"]:
            latency, threads = _reference_latency(r, device)
            if latency is None:
                continue
            if r["top1"] is not None:
                groups.setdefault(f"measured top-1 ({r['data'] or 'dataset?'})", []).append((latency, r["top1"], r["model"], threads))
            elif r["published_top1"] is not None:
                groups.setdefault(f"paper top-1 ({r['published_dataset'] or 'dataset?'})", []).append(
                    (latency, r["published_top1"], r["model"], threads))
        for i, (label, pts) in enumerate(sorted(groups.items())):
            color = COLORS[i % len(COLORS)]
            hollow = label.startswith("paper")
            ax.scatter([p[0] for p in pts], [p[1] for p in pts], marker="o", s=60, zorder=3, label=label,
                       facecolors="none" if hollow else color, edgecolors=color)
            front = pareto_front([(p[0], p[1]) for p in pts])
            ax.plot([p[0] for p in front], [p[1] for p in front], color=color, lw=1, ls="-", zorder=1)
            for x, y, model, threads in pts if len(pts) <= MAX_LABELS else ():
                ax.annotate(f"{model} ({threads} thr)", (x, y), textcoords="offset points", xytext=(5, 4), fontsize=8)
        published = [p for p in report["published"] if p["threads"] == 1]
        if published:
            boards = " / ".join(dict.fromkeys(p["device"] for p in published))
            ax.scatter([p["latency_ms"] for p in published], [p["top1"] for p in published],
                       label=f"published ({boards}; 1 thr; not measured here)", **PUBLISHED_STYLE)
            for p in published:
                ax.annotate(f"published: {p['label']}", (p["latency_ms"], p["top1"]),
                            textcoords="offset points", xytext=(6, -10), fontsize=7, color="#555555")
        if not groups:
            _empty(ax, "no measured point with a top-1")
        ax.set_xscale("log")
        _log_axis(ax.xaxis)
        ax.margins(x=0.3, y=0.12)
        ax.set_xlabel("latency (ms, median, log scale)")
        ax.set_ylabel("top-1 (%)")
        ax.set_title(f"{device}: {kind_label(kind)}" if kind else device, fontsize=10)
        ax.grid(alpha=0.3)
        _legend_below(ax)
    fig.suptitle("accuracy against latency (line: Pareto front per dataset)")
    return _png(fig)


def size_latency(report: dict) -> bytes:
    """Flatbuffer size against latency (1 thread), one colour per device."""
    fig = _figure(7, 4.8)
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
                   label=f"{device} ({kind} figures)")
        for x, y, model in pts if len(pts) <= MAX_LABELS else ():
            ax.annotate(model, (x, y), textcoords="offset points", xytext=(5, 4), fontsize=8)
    if not drawn:
        _empty(ax, "no converted and benchmarked run")
    else:
        _legend_below(ax)
    ax.set_xscale("log")
    ax.set_yscale("log")
    _log_axis(ax.xaxis)
    _log_axis(ax.yaxis)
    ax.margins(x=0.3, y=0.15)
    ax.set_xlabel("flatbuffer size (MiB, log scale)")
    ax.set_ylabel("latency (ms, median at 1 thread, log scale)")
    ax.set_title("size against latency (measured only)")
    ax.grid(alpha=0.3)
    return _png(fig)


def latency_threads(report: dict) -> bytes:
    """Latency against thread count: one line per run and device; published lines dashed grey.

    An invalid configuration (too few runs or too short) is a hollow marker.
    """
    fig = _figure(7, 4.8)
    ax = fig.subplots()
    i = 0
    many = len(report["runs"]) > MAX_LABELS
    for r in report["runs"]:
        for device, kind in _devices(report):
            pts = sorted((b["threads"], latency_of(b)[0], b["valid"]) for b in r["benchmarks"]
                         if b["device"] == device and b["ok"] and latency_of(b)[0] is not None and isinstance(b["threads"], int))
            if pts:
                color = COLORS[i % len(COLORS)]
                ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", color=color,
                        label=None if many else f"{r['model']} on {device} ({kind})")
                invalid = [p for p in pts if not p[2]]  # hollow: missed its minimum runs or duration
                ax.scatter([p[0] for p in invalid], [p[1] for p in invalid], facecolors="white", edgecolors=color, zorder=3)
                i += 1
    by_model: dict[tuple, list] = {}
    for p in report["published"]:
        by_model.setdefault((p["label"], p["device"]), []).append((p["threads"], p["latency_ms"]))
    for n, ((label, device), pts) in enumerate(sorted(by_model.items())):
        pts.sort()
        ax.plot([p[0] for p in pts], [p[1] for p in pts], ls="--", color="#888888", lw=1, zorder=1)
        ax.scatter([p[0] for p in pts], [p[1] for p in pts], label="published (other boards)" if n == 0 else None,
                   **PUBLISHED_STYLE)
        ax.annotate(f"published: {label} ({device})", pts[-1], textcoords="offset points", xytext=(5, 0),
                    fontsize=7, color="#555555")
    ax.set_yscale("log")
    _log_axis(ax.yaxis)
    ax.margins(x=0.35, y=0.1)
    ax.set_xlabel("threads")
    ax.set_ylabel("latency (ms, median, log scale)")
    ax.set_xticks(sorted({1, 4} | {b["threads"] for r in report["runs"] for b in r["benchmarks"] if isinstance(b["threads"], int)}))
    ax.set_title("latency against threads")
    ax.grid(alpha=0.3)
    _legend_below(ax)
    return _png(fig)


PLOTS = {"accuracy-latency": accuracy_latency, "size-latency": size_latency, "latency-threads": latency_threads}


def draw_all(report: dict) -> dict[str, bytes]:
    """Every plot as PNG bytes, by name."""
    return {name: draw(report) for name, draw in PLOTS.items()}
