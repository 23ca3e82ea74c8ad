"""The report rendered as Markdown, HTML (self-contained), JSON or CSV, and written with its plots."""

from __future__ import annotations

import csv
import html
import io
import json
from pathlib import Path

from edgebnn import atomic
from edgebnn.errors import EdgebnnError, UsageError, printable
from edgebnn.reporting.plots import draw_all
from edgebnn.reporting.tables import NOTES, device_tables, published_table, stale_table

FORMATS = ("md", "html", "json", "csv")
SUFFIXES = {"markdown": "md", "htm": "html"}


def md_text(text) -> str:
    """Text from a run or a device as Markdown shows it, never as markup: HTML escaped (a ``<script>`` or an
    ``<img onerror=...>`` in a run name stays text), brackets and backslashes escaped (no link or image
    from a name), one line (a newline would end a table row), pipes escaped (a pipe would end a cell),
    and no terminal controls."""
    text = " ".join(printable(text).splitlines())
    text = html.escape(text.replace("\\", "\\\\"), quote=False)
    for c in "[]|":
        text = text.replace(c, "\\" + c)
    return text


def _md_table(table: dict) -> str:
    lines = ["| " + " | ".join(map(md_text, table["header"])) + " |", "|" + "---|" * len(table["header"])]
    lines += ["| " + " | ".join(map(md_text, row)) + " |" for row in table["rows"]]
    return "\n".join(lines)


def to_markdown(report: dict, *, plot_files: dict[str, str] | None = None) -> str:
    """The report as Markdown; ``plot_files`` maps plot names to image paths to link."""
    from urllib.parse import quote

    parts = [f"# edgebnn report\n\nGenerated {md_text(report['generated'])} from {len(report['runs'])} run(s).\n"]
    for t in device_tables(report):
        parts.append(f"## {md_text(t['title'])}\n\n{_md_table(t)}\n")
    if stale := stale_table(report):
        parts.append(f"## {md_text(stale['title'])}\n\n{_md_table(stale)}\n")
    for name, file in (plot_files or {}).items():
        parts.append(f"![{md_text(name)}]({quote(file)})\n")
    parts.append(f"## {published_table(report)['title']}\n\n{_md_table(published_table(report))}\n")
    parts.append(f"{NOTES}\n")
    problems = [f"- {md_text(r['path'])}: {md_text(p)}" for r in report["runs"] for p in r["problems"]]
    if problems:
        parts.append("## problems\n\n" + "\n".join(problems) + "\n")
    return "\n".join(parts)


def to_json(report: dict) -> str:
    return json.dumps(report, indent=2) + "\n"


CSV_FIELDS = ["path", "model", "data", "weights", "top1", "evaluated_top1", "evaluated_data", "published_top1", "published_dataset", "params",
              "binary_params", "float_params", "binary_mac_share", "tflite_bytes", "bconv", "binary_layers",
              "bconv_coverage", "device", "figure_kind", "threads", "indirect_bgemm", "xnnpack", "affinity", "ok", "valid", "error_kind", "median_ms",
              "p90_ms", "mean_ms", "runs", "peak_mb", "started", "file", "model_sha256", "stale"]


def to_csv(report: dict) -> str:
    """One line per run, device and configuration (one line for a run without benchmarks); stale figures
    (measured on another flatbuffer) follow with ``stale`` true and their own ``model_sha256``."""
    out = io.StringIO()
    writer = csv.DictWriter(out, CSV_FIELDS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for r in report["runs"]:
        for b in (r["benchmarks"] + r.get("stale", [])) or [{"model_sha256": r.get("model_sha256")}]:
            writer.writerow({**r, **b})
    return out.getvalue()


_CSS = """
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; }
.scroll { overflow-x: auto; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; font-size: 0.85em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.5em; text-align: left; }
th { background: #f0f0f0; }
tr:nth-child(even) td { background: #fafafa; }
.host h2 { color: #8a5a00; } .board h2 { color: #1a5e20; } .published h2 { color: #555; } .stale h2 { color: #a00; }
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
    if stale := stale_table(report):
        sections.append(_html_table(stale, "stale"))
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


def report_format(fmt: str | None, path: str | Path | None) -> str:
    """The format asked for, else the one ``path``'s suffix names, else md."""
    suffix = Path(path).suffix.lstrip(".").lower() if path else ""
    return fmt or SUFFIXES.get(suffix, suffix if suffix in FORMATS else "md")


def write_report(report: dict, path: str | Path | None, fmt: str | None = None) -> tuple[str, list[str]]:
    """The report in ``fmt`` (default: from ``path``'s suffix), written to ``path`` when given.

    Markdown and HTML get the plots: HTML embeds them; Markdown written to a file links PNGs
    written beside it (``<stem>-<plot>.png``), as does HTML.

    Returns:
        ``(text, PNG files written)``.

    Raises:
        UsageError: unknown ``fmt``. EdgebnnError: a file could not be written (the path, why, the next step).
    """
    fmt = report_format(fmt, path)
    plots = draw_all(report) if fmt == "html" or (fmt == "md" and path) else None
    plot_files = {name: _write(Path(path).with_name(f"{Path(path).stem}-{name}.png"), png)
                  for name, png in plots.items()} if path and plots else None
    text = render(report, fmt=fmt, plots=plots, plot_files=plot_files)
    if path:
        _write(Path(path), text)
    return text, list((plot_files or {}).values())


def _write(path: Path, content: str | bytes) -> str:
    """Write ``path`` atomically; returns its name."""
    try:
        if isinstance(content, bytes):
            atomic.write_bytes(path, content)
        else:
            atomic.write_text(path, content)
    except OSError as e:
        step = "free some space there or give another --out" if e.errno == 28 else "give a writable --out"
        raise EdgebnnError(f"cannot write the report file {str(path)!r}: {e.strerror or e}; {step} (files "
                           "written before it are complete; none is half-written)") from None
    return path.name
