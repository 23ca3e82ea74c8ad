"""How the report's plots look: the canvas (matplotlib's Agg, no display, no pyplot state), the
PNG, log axes with plain numbers, legends below the axes, labels that are plain, the colours."""

from __future__ import annotations

import io

PUBLISHED_STYLE = {"marker": "*", "color": "#888888", "s": 140, "edgecolors": "#444444", "zorder": 2}
MAX_LABELS = 30  # beyond this many measured points, names and legend entries only clutter
MARKERS = ["o", "s", "^", "D", "v", "P", "X", "<", ">", "h"]  # one per runtime setting of a run's line
COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2"]


def plain(text) -> str:
    """A label from a run or a device as matplotlib shows it: a ``$`` is plain, never mathtext (a name
    such as ``run $\\x$`` would otherwise fail to parse and stop the report)."""
    return str(text).replace("$", r"\$")


def new_figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def to_png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight")
    return buf.getvalue()


def log_axis(axis) -> None:
    """A log axis with plain numbers (12, 40, 100) instead of powers of ten."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    axis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    axis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    axis.set_minor_formatter(NullFormatter())


def legend_below(ax) -> None:
    if not ax.get_legend_handles_labels()[0]:  # nothing labelled (a panel with no new_figure): no empty legend
        return
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=2, frameon=False)


def empty_note(ax, text: str) -> None:
    ax.text(0.5, 0.5, plain, ha="center", va="center", transform=ax.transAxes, color="#888888")
