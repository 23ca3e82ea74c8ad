"""The ``edgebnn`` command line: one command per stage, sharing one run directory.

Heavy imports (TensorFlow, LCE) happen inside the commands, so ``edgebnn --help`` is instant.
"""

from __future__ import annotations

import functools
import json
import sys
import time

import click

from edgebnn import __version__
from edgebnn.errors import EdgebnnError

CONTEXT = {"help_option_names": ["-h", "--help"], "auto_envvar_prefix": "EDGEBNN"}


def _console(stderr: bool = False):
    from rich.console import Console

    return Console(stderr=stderr, highlight=False)


class Cli(click.Group):
    """Turns EdgebnnError (and anything unexpected) into one line on stderr, unless --debug."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except EdgebnnError as e:
            if ctx.obj and ctx.obj.get("debug"):
                raise
            click.echo(f"error: {e}", err=True)
            ctx.exit(e.exit_code)
        except (click.ClickException, click.exceptions.Exit, click.Abort, KeyboardInterrupt):
            raise
        except Exception as e:
            if ctx.obj and ctx.obj.get("debug"):
                raise
            message = str(e).strip().splitlines()[0][:300] if str(e).strip() else ""
            click.echo(
                f"error: unexpected {type(e).__name__}: {message} (run again with --debug for the traceback)",
                err=True,
            )
            ctx.exit(1)


@click.group(cls=Cli, context_settings=CONTEXT)
@click.version_option(__version__, prog_name="edgebnn")
@click.option("--debug", is_flag=True, help="Show tracebacks instead of one-line errors.")
@click.pass_context
def cli(ctx, debug):
    """Binary neural networks from a paper to a latency figure on an ARM board.

    \b
    edgebnn quickstart                      train, convert and benchmark a small BNN
    edgebnn models                          the registered models
    edgebnn train MODEL --data digits       train into a run directory
    edgebnn convert RUN|MODEL --to tflite   LCE flatbuffer + conversion report
    edgebnn bench RUN|MODEL --device local  latency on a device
    """
    ctx.ensure_object(dict)["debug"] = debug


def json_option(fn):
    return click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")(fn)


def quiet_option(fn):
    return click.option("--quiet", "-q", is_flag=True, help="No progress output.")(fn)


# -- models ---------------------------------------------------------------------------------
@cli.command()
@click.argument("pattern", required=False)
@json_option
def models(pattern, as_json):
    """List registered models: aliases, family, paper, input, parameters, binary-MAC share.

    PATTERN is a shell glob on the name (e.g. 'quicknet*'). Statistics are computed at each
    model's default input shape and cached.
    """
    from edgebnn.models.stats import card_stats
    from edgebnn.registry import list_models

    cards = list_models(pattern)
    rows = []
    console = _console(stderr=True)
    with console.status("computing model statistics...") as status:
        for card in cards:
            status.update(f"computing statistics of {card.name}...")
            rows.append({**card.to_dict(), "stats": card_stats(card)})
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    from rich.table import Table

    table = Table("model", "aliases", "family", "paper", "input", "params (M)", "binary MACs", box=None)
    for r in rows:
        table.add_row(
            r["name"],
            ", ".join(r["aliases"]),
            r["family"],
            r["paper"],
            "x".join(map(str, r["input_shape"])) + f" / {r['num_classes']}",
            f"{r['stats']['params'] / 1e6:.2f}",
            f"{r['stats']['binary_mac_share']:.1%}",
        )
    _console().print(table)


# -- train ----------------------------------------------------------------------------------
@cli.command()
@click.argument("model")
@click.option("--data", default="digits", show_default=True, help="digits or synthetic.")
@click.option("--epochs", type=int, help="Override the recipe's epochs.")
@click.option("--batch-size", type=int, help="Override the recipe's global batch size.")
@click.option("--lr", type=float, help="Override the recipe's learning rate.")
@click.option("--out", type=click.Path(file_okay=False), help="Run directory [runs/MODEL].")
@click.option("--strategy", type=click.Choice(["auto", "mirrored", "multiworker"]), default="auto", show_default=True)
@quiet_option
def train(model, data, epochs, batch_size, lr, out, strategy, quiet):
    """Train MODEL with its paper's recipe into a run directory."""
    from edgebnn.data import parse_spec
    from edgebnn.recipes import get_recipe
    from edgebnn.registry import get_card
    from edgebnn.rundir import RunDir
    from edgebnn.training import train as train_model

    card = get_card(model)
    parse_spec(data)
    recipe = get_recipe(card.recipe).override(epochs=epochs, batch_size=batch_size, lr=lr)
    run = RunDir.create(out or f"runs/{card.name}", {"model": card.name, "data": data})
    metrics = train_model(run, model_name=card.name, recipe=recipe, data_spec=data, strategy=strategy,
                          verbose=0 if quiet else 2)
    click.echo(f"trained {card.name}: val_accuracy {metrics.get('val_accuracy', float('nan')):.4f} -> {run.path}")


# -- convert --------------------------------------------------------------------------------
@cli.command()
@click.argument("src")
@click.option("--to", "to", default="tflite", show_default=True,
              help="tflite (LCE flatbuffer), tflite-float (float twin, plain TFLite) or keras (baked kernels).")
@click.option("--target", default="arm", show_default=True, help="LCE target: arm or xcore.")
@click.option("--int8", is_flag=True, help="int8 for the float parts, calibrated on --data.")
@click.option("--int8-io", is_flag=True, help="int8 input and output types too (with --int8).")
@click.option("--data", help="Parity and calibration inputs: digits or synthetic [random].")
@click.option("--samples", type=int, default=8, show_default=True, help="Parity inputs.")
@click.option("--explain", is_flag=True, help="Print what every layer became, and why binary layers stayed float.")
@click.option("--strict", is_flag=True, help="Fail (exit 1) when a binary layer stayed float.")
@click.option("--out", type=click.Path(file_okay=False), help="Run directory for a bare model name [runs/MODEL].")
@json_option
def convert(src, to, target, int8, int8_io, data, samples, explain, strict, out, as_json):
    """Convert SRC (a run directory or a model name) with Larq Compute Engine.

    Checks parity against Keras (exit 1 naming the first diverging layer when out of
    tolerance), records the op inventory, a per-layer explanation and the size against its
    theoretical minimum in the manifest. Nothing is written when a check fails.
    """
    from edgebnn.pipeline import check_convert_options, convert_run, resolve_source

    check_convert_options(to=to, target=target, int8=int8, int8_io=int8_io, data=data, samples=samples)
    run = resolve_source(src, out=out)
    report = convert_run(run, to=to, target=target, int8=int8, int8_io=int8_io, data=data,
                         samples=samples, strict=strict)
    if as_json:
        click.echo(json.dumps(report, indent=2))
        return
    if explain and "explain" in report:
        from edgebnn.converters.explain import format_explanation

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
        floats = report["explain"]["float_binary_layers"]
        if floats:
            click.echo(f"warning: {len(floats)} binary layer(s) stayed float: {', '.join(floats[:5])}"
                       + ("" if explain else " (see --explain)"), err=True)
    else:
        name = "model-float.tflite" if to == "tflite-float" else "model-baked.keras"
        size = report.get("tflite_bytes") or report.get("keras_bytes")
        click.echo(f"{run.path / name}: {size / 1024:.1f} KiB, {errors}")


# -- bench ----------------------------------------------------------------------------------
def bench_options(fn):
    for option in reversed(
        [
            click.option("--device", default="local", show_default=True, help="Device profile name."),
            click.option("--threads", default="1", show_default=True, help="Thread counts, e.g. 1,4."),
            click.option("--runs", type=int, default=50, show_default=True, help="Minimum timed runs."),
            click.option("--warmup", type=int, default=5, show_default=True, help="Warm-up runs."),
            click.option("--min-secs", type=float, default=1.0, show_default=True, help="Minimum timed duration."),
        ]
    ):
        fn = option(fn)
    return fn


def _bench_configs(threads, runs, warmup, min_secs):
    from edgebnn.device.bench import BenchConfig
    from edgebnn.errors import UsageError
    from edgebnn.pipeline import parse_threads

    if runs < 1 or warmup < 0 or min_secs < 0:
        raise UsageError(f"bad protocol: --runs {runs}, --warmup {warmup}, --min-secs {min_secs} (runs >= 1, others >= 0)")
    return [BenchConfig(threads=t, runs=runs, warmup=warmup, min_secs=min_secs) for t in parse_threads(threads)]


def _bench_table(record):
    from rich.table import Table

    table = Table(
        "threads", "median ms", "p90 ms", "mean ms", "std ms", "runs", "status",
        title=f"{record['model']} on {record['device']} ({record['figure_kind']} figures)",
        box=None,
    )
    for r in record["results"]:
        lat = r["latency"]
        status = ("valid" if r["valid"] else "invalid: too few runs") if r["ok"] else f"{r['error_kind']}: {r['error']}"
        fmt = lambda k: f"{lat[k]:.3f}" if k in lat else "-"  # noqa: E731
        table.add_row(str(r["config"]["threads"]), fmt("median_ms"), fmt("p90_ms"), fmt("mean_ms"), fmt("std_ms"),
                      str(lat.get("runs", "-")), status)
    return table


@cli.command()
@click.argument("src")
@bench_options
@click.option("--out", type=click.Path(file_okay=False), help="Run directory for a bare model name [runs/MODEL].")
@json_option
def bench(src, device, threads, runs, warmup, min_secs, out, as_json):
    """Benchmark SRC (a run directory or a model name) on a device.

    A bare model name is converted first (random weights: latency does not depend on them).
    """
    from edgebnn.device.profiles import get_profile
    from edgebnn.pipeline import bench_run, convert_run, resolve_source

    get_profile(device)
    configs = _bench_configs(threads, runs, warmup, min_secs)
    run = resolve_source(src, out=out)
    if not run.tflite_path.exists():
        convert_run(run)
    record = bench_run(run, device=device, configs=configs)
    if as_json:
        click.echo(json.dumps(record, indent=2))
    else:
        _console().print(_bench_table(record))
        click.echo(f"saved {record['file']}")
    if not any(r["ok"] for r in record["results"]):
        raise EdgebnnError(f"every configuration failed on {device}: see {record['file']}")


# -- quickstart -----------------------------------------------------------------------------
@cli.command()
@click.option("--out", type=click.Path(file_okay=False), default="runs/quickstart", show_default=True)
@click.option("--epochs", type=int, help="Override the recipe's 15 epochs.")
@quiet_option
def quickstart(out, epochs, quiet):
    """Train a small BNN on the bundled digits, convert it with LCE, benchmark it locally."""
    from rich.table import Table

    from edgebnn.device.bench import BenchConfig
    from edgebnn.pipeline import bench_run, convert_run
    from edgebnn.recipes import get_recipe
    from edgebnn.registry import get_card
    from edgebnn.rundir import RunDir
    from edgebnn.training import train as train_model

    start = time.perf_counter()
    console = _console(stderr=True)
    card = get_card("bireal-tiny")
    recipe = get_recipe(card.recipe).override(epochs=epochs)
    run = RunDir.create(out, {"model": card.name, "data": "digits"})
    if not quiet:
        console.print(f"[1/3] training {card.name} on the digits for {recipe.epochs} epochs -> {run.path}")
    metrics = train_model(run, model_name=card.name, recipe=recipe, data_spec="digits", verbose=0 if quiet else 2)
    if not quiet:
        console.print("[2/3] converting with Larq Compute Engine")
    report = convert_run(run)
    if not quiet:
        console.print("[3/3] benchmarking on the local device (LCE interpreter)")
    record = bench_run(run, device="local", configs=[BenchConfig(threads=1, runs=50, warmup=5, min_secs=1.0)])
    stats = run.manifest["stats"]
    lat = record["results"][0]["latency"]
    table = Table(title=f"edgebnn quickstart: {card.name} on digits", box=None, show_header=False)
    for label, value in [
        ("validation accuracy", f"{metrics['val_accuracy']:.2%}"),
        ("parameters binary / float", f"{stats['binary_params']:,} / {stats['float_params']:,}"),
        ("binary share of MACs", f"{stats['binary_mac_share']:.1%}"),
        ("Keras / flatbuffer size", f"{report['keras_bytes'] / 1024:.0f} KiB / {report['tflite_bytes'] / 1024:.0f} KiB"),
        ("LceBconv2d / binary layers", f"{report['bconv']} / {report['binary_layers']}"),
        ("parity max |err|", f"{report['parity']['max_abs_error']:.1e}"),
        ("latency median / p90 (host)", f"{lat.get('median_ms', float('nan')):.3f} / {lat.get('p90_ms', float('nan')):.3f} ms"),
        ("run directory", str(run.path)),
        ("wall time", f"{time.perf_counter() - start:.0f} s"),
    ]:
        table.add_row(label, value)
    _console().print(table)


# -- doctor ---------------------------------------------------------------------------------
@cli.command()
def doctor():
    """Check the stack: versions, legacy Keras, LCE's converter and interpreter."""
    from edgebnn.doctor import run_checks

    failed = 0
    for check in run_checks():
        mark = "ok  " if check.ok else "FAIL"
        click.echo(f"{mark} {check.name}: {check.detail}")
        if not check.ok:
            failed += 1
            click.echo(f"     fix: {check.fix}")
    if failed:
        raise EdgebnnError(f"{failed} check(s) failed: apply the fixes above")


def main():
    cli(prog_name="edgebnn")
