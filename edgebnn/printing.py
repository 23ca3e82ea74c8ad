"""What the commands print: tables and lines from records, with nothing a file or a device
sent reaching the terminal raw (:func:`edgebnn.errors.printable`, rich markup escaped)."""

from __future__ import annotations

import os
import re
import sys

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from edgebnn.errors import printable


def console(stderr: bool = False):
    stream = sys.stderr if stderr else sys.stdout
    # Piped or captured, rich would fold tables into 80 columns: a log is read wider than that.
    return Console(stderr=stderr, highlight=False, width=None if stream.isatty() else 160)


def cell(value) -> str:
    """A table cell from data (a device's output, a run's name): no terminal controls, no rich markup."""
    return escape(printable(value))


def short_paper(paper: str) -> str:
    """A citation in a few characters: first author's surname, venue and year ("Liu ECCV 2018")."""
    parts = [p.strip() for p in paper.split(",")]
    if len(parts) < 2:
        return paper
    venue = re.sub(r"\s*\(.*?\)", "", parts[-1]).strip()
    return f"{parts[0].removesuffix(' et al.').split()[-1]} {venue}"


def models_table(rows: list[dict], width: int):
    """The registry as one line per model, at most ``width`` columns.

    At narrower widths the paper is cited short ("Liu ECCV 2018"), then aliases, family and
    origin go (``edgebnn models NAME`` and ``--json`` show everything).
    """
    cells = {
        "model": [r["name"] for r in rows],
        "aliases": [", ".join(r["aliases"]) for r in rows],
        "family": [r["family"] for r in rows],
        "paper": [r["paper"] for r in rows],
        "origin": [r["origin"] for r in rows],
        "input": ["x".join(map(str, r["input_shape"])) + f" / {r['num_classes']}" for r in rows],
        "params (M)": [f"{r['stats']['params'] / 1e6:.2f}" for r in rows],
        "binary MACs": [f"{r['stats']['binary_mac_share']:.1%}" for r in rows],
    }

    def needed():  # rich pads each column with one space on either side
        return sum(max(len(h), *(len(v) for v in vs)) + 2 for h, vs in cells.items())

    for step in ("paper", "aliases", "family", "origin"):
        if needed() <= width:
            break
        if step == "paper":
            cells["paper"] = [short_paper(p) for p in cells["paper"]]
        else:
            del cells[step]
    table = Table(box=None)
    for header in cells:
        table.add_column(header, no_wrap=True, overflow="ellipsis")
    for values in zip(*cells.values()):
        table.add_row(*values)
    return table


def print_models(rows: list[dict]) -> None:
    """The registry table, as wide as the terminal (or ``$COLUMNS``, also when piped)."""
    out = console()
    if os.environ.get("COLUMNS", "").isdigit():
        out.width = int(os.environ["COLUMNS"])
    out.print(models_table(rows, out.width))


def print_card(row: dict, spec) -> None:
    """One model's card, its builder options and the values chosen on the command line."""
    shape = spec.input_shape or row["input_shape"]
    stats = row["stats"]
    for label, value in [
        ("model", row["name"] + (f" (aliases {', '.join(row['aliases'])})" if row["aliases"] else "")),
        ("family", row["family"]), ("paper", row["paper"]), ("origin", row["origin"]),
        ("input", "x".join(map(str, shape)) + f", {row['num_classes']} classes"), ("recipe", row["recipe"]),
        ("published", ", ".join(f"{k} {v}" for k, v in row["published"].items()) or "-"),
        ("params", f"{stats['params']:,} ({stats['binary_params']:,} binary)"),
        ("binary MACs", f"{stats['binary_macs']:,} ({stats['binary_mac_share']:.1%} of MACs)"),
        ("notes", row["notes"] or "-"),
    ]:
        click.echo(f"{label:12} {value}")
    click.echo("options      (--model-arg KEY=VALUE; --width for width)")
    for key, default in row["options"].items():
        chosen = f" -> {spec.options[key]!r}" if key in spec.options else ""
        click.echo(f"  {key:22} {default!r}{chosen}")


def print_recipes(rows: list[dict]) -> None:
    """``edgebnn recipes``: one line per recipe."""
    for r in rows:
        click.echo(f"{r['name']:<20} {r['optimizer']:<6} lr {r['lr']:<8g} {r['epochs']:>4} epochs  "
                   f"batch {r['batch_size']:<4} {r['schedule']}")


def print_recipe(data: dict, *, model: str | None = None) -> None:
    """``edgebnn recipes NAME``: every field of one recipe (``model``: the model it was asked for by)."""
    data = dict(data)
    click.echo(f"recipe {data.pop('name')}" + (f" (model {model})" if model else ""))
    for key, value in data.items():
        click.echo(f"  {key:<22} {value}")


def print_devices(listing: dict) -> None:
    """``edgebnn devices``: the profiles, fleets and what is wrong with any of them."""
    table = Table("device", "where", "runtime", "threads", "description", title=cell(f"devices ({listing['path']})"),
                  box=None)
    for row in listing["devices"]:
        p = row["profile"]
        where = "this machine" if p["transport"] == "local" else (p["host"] and address(p)) or "host not set"
        runtime = p["runtime_file"] and f"{p['runtime_file']} (uploaded)" or p["runtime"]
        table.add_row(*(cell(v) for v in (p["name"], where, runtime, ",".join(map(str, p["threads"])),
                                          p["description"])))
    console().print(table)
    for name, members in listing["fleets"].items():
        click.echo(printable(f"fleet {name}: {', '.join(members)}"))
    for row in listing["devices"]:
        if row["problem"]:
            click.echo(printable(f"note: {row['problem']}"))
    if listing["setup_problem"]:
        click.echo(printable(f"warning: {listing['setup_problem']}"), err=True)


def print_device_check(profile, report: dict) -> None:
    """``edgebnn devices check``: what the preflight read off the device, line by line."""
    fp = report["fingerprint"]
    unread = [what for what, value in (("OS word size (no getconf)", fp["os_bits"]), ("core count", fp["cores"]),
                                       ("memory (/proc/meminfo)", fp["mem_total_mb"]),
                                       ("free disk (df)", fp["disk_free_mb"])) if value is None]
    lines = [
        ("device", f"{profile.name} ({'this machine' if profile.transport == 'local' else profile.address})"),
        ("board", fp["board"] or "-"),
        ("os", f"{fp['kernel'] or '-'} {fp['arch'] or '-'} ({known(fp['os_bits'])}-bit)"),
        ("cpu", f"{fp['cpu'] or '-'} ({known(fp['cores'])} cores)"),
        ("governor", f"{fp['governor'] or '-'} at {known(fp['freq_mhz'])} / {known(fp['max_freq_mhz'])} MHz"),
        ("temperature", ", ".join(f"{t:.0f} C" for t in fp["temps_c"]) or "-"),
        ("memory", f"{known(fp['mem_available_mb'])} MB free of {known(fp['mem_total_mb'])} MB"),
        ("disk", f"{known(fp['disk_free_mb'], '.0f')} MB free in {profile.workdir}"),
        ("runtime", runtime_line(profile, fp["runtime"])),
        ("checked in", f"{report['seconds']:.2f} s"),
    ]
    for label, value in lines:  # every value but the labels came from the device: nothing reaches the terminal raw
        click.echo(printable(f"{label:12} {value}"))
    for warning in report["warnings"]:
        click.echo(printable(f"warning: {warning}"), err=True)
    if unread:
        click.echo(printable(f"note: {profile.name} did not tell: {', '.join(unread)} (shown as -)"), err=True)


def known(value, spec: str = "") -> str:
    """A figure the device reported, or ``-`` when it could not be read."""
    return "-" if value is None else format(value, spec)


def address(p: dict) -> str:
    return f"{p['user'] + '@' if p['user'] else ''}{p['host']}{':' + str(p['port']) if p['port'] else ''}"


def runtime_line(profile, found: dict) -> str:
    if profile.runtime_file:
        return f"{profile.runtime_file} (uploaded by hash at bench time)"
    if profile.transport == "local":
        return f"{sys.executable} (LCE's Python interpreter)"
    state = "executable" if found.get("exec") else "MISSING" if not found.get("exists", found.get("exec")) else "not executable"
    extra = f", LCE {found['lce_version']}" if found.get("lce_version") else ""
    return f"{profile.runtime} -> {found.get('path', '-')} ({state}{extra})"
