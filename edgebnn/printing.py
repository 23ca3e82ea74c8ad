"""What the commands print: tables and lines from records, with nothing a file or a device
sent reaching the terminal raw (:func:`edgebnn.errors.printable`, rich markup escaped)."""

from __future__ import annotations

import json
import os
import re
import sys

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from edgebnn.errors import printable
from edgebnn.run.records import BenchRecord


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


def print_conversion(run, report: dict, *, to: str, explain: bool) -> None:
    """``edgebnn convert``: the file made, its size against the minimum, coverage and parity; warnings on stderr."""
    if explain and "explain" in report:
        from edgebnn.converters.explain import format_explanation  # the converters stage: only after a conversion

        click.echo(format_explanation(report["explain"]))
    p = report["parity"]
    errors = f"parity max |err| {p['max_abs_error']:.2e} (top-1 agreement {p['top1_agreement']:.0%})"
    if to == "tflite":
        size = report["size"]
        click.echo(
            f"{run.tflite_path}: {report['tflite_bytes'] / 1024:.1f} KiB ({size['ratio']}x the "
            f"{size['minimum_bytes'] / 1024:.1f} KiB minimum), LceBconv2d {report['bconv']}/"
            f"{report['binary_layers']} binary layers, {errors}"
        )
        if p.get("warning"):
            click.echo(f"warning: {p['warning']}", err=True)
        floats = report["explain"]["float_binary_layers"]
        if floats:
            click.echo(f"warning: {len(floats)} binary layer(s) stayed float: {', '.join(floats[:5])}"
                       + ("" if explain else " (see --explain)"), err=True)
    else:
        name = "model-float.tflite" if to == "tflite-float" else "model-baked.keras"
        size = report.get("tflite_bytes") or report.get("keras_bytes")
        click.echo(f"{run.path / name}: {size / 1024:.1f} KiB, {errors}")


def print_quickstart(result: dict) -> None:
    """``edgebnn quickstart``: what each stage gave, in one table."""
    stats, report, metrics = result["stats"], result["conversion"], result["metrics"]
    bench = BenchRecord.from_dict(result["bench"])
    lat = bench.results[0].latency
    table = Table(title=f"edgebnn quickstart: {result['run'].manifest['model']} on digits", box=None,
                  show_header=False)
    for label, value in [
        ("validation accuracy", f"{metrics['val_accuracy']:.2%}"),
        ("parameters binary / float", f"{stats['binary_params']:,} / {stats['float_params']:,}"),
        ("binary share of MACs", f"{stats['binary_mac_share']:.1%}"),
        ("Keras / flatbuffer size", f"{report['keras_bytes'] / 1024:.0f} KiB / {report['tflite_bytes'] / 1024:.0f} KiB"),
        ("LceBconv2d / binary layers", f"{report['bconv']} / {report['binary_layers']}"),
        ("parity max |err|", f"{report['parity']['max_abs_error']:.1e}"),
        (f"latency median / p90 ({bench.figure_kind})", f"{lat.get('median_ms', float('nan')):.3f} / {lat.get('p90_ms', float('nan')):.3f} ms"),
        ("run directory", str(result["run"].path)),
        ("wall time", f"{result['seconds']:.0f} s"),
    ]:
        table.add_row(label, value)
    console().print(table)


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


def bench_table(record):
    """One device's results as a table (``record``: a :class:`edgebnn.run.records.BenchRecord`)."""
    pinned = any(r.affinity for r in record.results)
    switched = bool(record.tune) or any(r.indirect_bgemm or r.xnnpack for r in record.results)
    table = Table(
        "threads", *(("indirect", "xnnpack") if switched else ()), *(("CPUs",) if pinned else ()), "median ms",
        "p90 ms", "mean ms", "std ms", "min ms", "runs", "GBMAC/s", "peak MB", "status",
        title=cell(f"{record.model} on {record.device} ({record.figure_kind} figures)"), box=None,
    )
    chosen = record.tune.index if record.tune else None
    for i, r in enumerate(record.results):
        table.add_row(*_result_row(r, chosen=i == chosen, switched=switched, pinned=pinned))
    return table


def _result_row(r, *, chosen: bool, switched: bool, pinned: bool) -> list[str]:
    """One configuration's cells (``r``: a :class:`edgebnn.run.records.Result`); ``*`` marks the --tune choice."""
    fmt = lambda k: f"{r.latency[k]:.3f}" if k in r.latency else "-"  # noqa: E731
    switches = ("on" if r.indirect_bgemm else "off", "on" if r.xnnpack else "off") if switched else ()
    gbmacs = r.limit("achieved_gbmacs")
    return [f"{r.config.get('threads')}{' *' if chosen else ''}", *switches, *((r.affinity or "all",) if pinned else ()),
            fmt("median_ms"), fmt("p90_ms"), fmt("mean_ms"), fmt("std_ms"), fmt("min_ms"),
            str(r.latency.get("runs", "-")), f"{gbmacs:.2f}" if gbmacs else "-", fmt("peak_memory_mb"),
            cell(_result_status(r))]


def _result_status(r) -> str:
    if not r.ok:
        return f"{r.error_kind}: {r.error}"
    return "valid" if r.valid else f"invalid: {r.error}" if r.error else "invalid: too few runs or too short"


def _tune_lines(record) -> list[str]:
    """What ``--tune`` chose and what ``--save-tuned`` saved, or which saved choice this bench ran."""
    from edgebnn.device import tune_summary  # the device package, only when a bench is shown

    lines = [tune_summary(record.tune)] if record.tune else []
    if saved := record.saved_tuned:
        lines.append(f"saved as {record.device}'s defaults for {saved['label']} in {saved['path']}: a later "
                     "`edgebnn bench` of this flatbuffer uses them (--threads, --use-xnnpack or --use-indirect-bgemm "
                     "choose instead)")
    return [printable(line) for line in lines]


def _tuned_note(record) -> str | None:
    """Which saved ``--tune`` choice this bench ran (on stderr, with --json too: a user must know)."""
    from edgebnn.device import describe  # the device package, only when a bench is shown

    if used := record.tuned_from:
        return printable(f"note: {record.device}: ran the tuned configuration saved {used['saved']} "
                         f"({describe(used['config'])}, median then {used['median_ms']:.3f} ms); give --threads, "
                         "--use-xnnpack or --use-indirect-bgemm to choose yourself")
    return None


def _bench_context(record) -> str:
    """One line: what ran where, and where the time went."""
    fp, rt = record.fingerprint, record.runtime
    version = f"LCE {rt['lce_version']}" if rt.get("lce_version") else f"sha256 {(rt.get('sha256') or '?')[:12]}"
    reused = [name for name, u in record.uploads.items() if not u["uploaded"]]
    steps = ", ".join(f"{k} {v:.2f} s" for k, v in record.steps_s.items())
    return printable(f"{record.device}: {fp.get('cpu') or '?'} ({fp.get('cores')} cores, {fp.get('kernel', '')} "
                     f"{fp.get('arch', '')}); {rt.get('kind')} ({version}); {steps}"
                     + (f"; reused on the board: {', '.join(reused)}" if reused else ""))


def show_bench(saved: list[dict], *, as_json: bool) -> None:
    """Print what ``bench_run`` returns: JSON, or per device a table, its context and where it is saved."""
    if as_json:
        click.echo(json.dumps(saved[0] if len(saved) == 1 else saved, indent=2))
    for returned in saved:
        record = BenchRecord.from_dict(returned)
        if note := _tuned_note(record):
            click.echo(note, err=True)
        if not as_json:
            if not record.error_kind or record.results:
                console().print(bench_table(record))
                click.echo(_bench_context(record))
                for line in _tune_lines(record):
                    click.echo(line)
            if "unsaved" not in returned:
                click.echo(f"saved {returned['file']}")
        if record.error_kind:
            click.echo(printable(f"error: {record.device}: {record.error_kind}: {record.error}"), err=True)
        for warning in record.warnings:
            click.echo(printable(f"warning: {record.device}: {warning}"), err=True)
