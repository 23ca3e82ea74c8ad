"""The ``edgebnn`` command line: one command per stage, sharing one run directory.

Heavy imports (TensorFlow, LCE) happen inside the commands, so ``edgebnn --help`` is instant.
"""

from __future__ import annotations

import functools
import json

import click

from edgebnn import __version__, printing
from edgebnn.errors import EdgebnnError, printable
from edgebnn.options import (
    MODEL_FLAG_NAMES,
    bench_options,
    devices_file_option,
    host_key_option,
    json_option,
    model_flags,
    quiet_option,
    source_flags,
    sub_devices_file_option,
    trust_option,
)

CONTEXT = {"help_option_names": ["-h", "--help"], "auto_envvar_prefix": "EDGEBNN"}


class Cli(click.Group):
    """Turns EdgebnnError (and anything unexpected) into one line on stderr, unless --debug."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except EdgebnnError as e:
            if ctx.obj and ctx.obj.get("debug"):
                raise
            click.echo(f"error: {printable(e)}", err=True)  # a message may quote what a device printed
            ctx.exit(e.exit_code)
        except (click.ClickException, click.exceptions.Exit, click.Abort, KeyboardInterrupt):
            raise
        except Exception as e:
            if ctx.obj and ctx.obj.get("debug"):
                raise
            message = printable(str(e).strip().splitlines()[0][:300]) if str(e).strip() else ""
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
    edgebnn evaluate RUN --data SPEC        top-1 / top-5 of a trained run
    edgebnn recipes MODEL                   the training recipe of a model
    edgebnn convert RUN|MODEL --to tflite   LCE flatbuffer + conversion report
    edgebnn bench RUN|MODEL --device local  latency on a device
    edgebnn report RUNS --out report.html   tables and plots over runs
    edgebnn compare A B                     two runs side by side
    """
    ctx.ensure_object(dict)["debug"] = debug
    if debug:
        from edgebnn import noise

        noise.show()  # third-party warnings too


# -- models ---------------------------------------------------------------------------------
@cli.command()
@click.argument("pattern", required=False)
@model_flags
@json_option
def models(pattern, as_json, model_flags):
    """List registered models: aliases, family, paper, origin, input, parameters, binary-MAC share.

    PATTERN is a shell glob on the name (e.g. 'quicknet*'); an exact name shows that model's
    card with its builder options (and statistics at --input-size / --width / --model-arg).
    Statistics are computed at each model's default input shape and cached.
    """
    from edgebnn.models.stats import card_stats
    from edgebnn.registry import PLUGIN_FAILURES, list_models
    from edgebnn.run.sources import listed_model

    exact, spec = listed_model(pattern, **model_flags)
    cards = [exact] if exact else list_models(pattern)
    rows = []
    with printing.console(stderr=True).status("computing model statistics...") as status:
        for card in cards:
            status.update(f"computing statistics of {card.name}...")
            rows.append({**card.to_dict(), "stats": card_stats(card, input_shape=spec.input_shape,
                                                                options=spec.options)})
    if as_json:
        click.echo(json.dumps(rows, indent=2))
    elif exact:
        printing.print_card(rows[0], spec)
    else:
        printing.print_models(rows)
    for point, why in PLUGIN_FAILURES.items():
        click.echo(f"note: the model plugin {point} failed to load ({why}); the other models are listed", err=True)


# -- train ----------------------------------------------------------------------------------
@cli.command()
@click.argument("model", required=False)
@click.option("--data", help="imagenet:DIR, cifar10:DIR, cifar100:DIR, digits or synthetic [digits, said before "
                              "training with the input size].")
@click.option("--epochs", type=int, help="Override the recipe's epochs.")
@click.option("--batch-size", type=int, help="Override the recipe's global batch size.")
@click.option("--lr", type=float, help="Override the recipe's learning rate.")
@click.option("--set", "settings", multiple=True, metavar="KEY=VALUE",
              help="Override any recipe field (repeatable), e.g. --set weight_decay=1e-4.")
@click.option("--recipe", "recipe_name", metavar="NAME",
              help="Train with this recipe instead of the model's (see `edgebnn recipes`), e.g. equalbits-cifar100.")
@click.option("--teacher", "teachers", multiple=True, metavar="PATH",
              help="Distil from a saved Keras model or run directory (repeatable: assistants first, main last).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of initialization, shuffling, augmentation.")
@click.option("--out", type=click.Path(file_okay=False), help="Run directory [runs/MODEL].")
@click.option("--resume", type=click.Path(file_okay=False), help="Continue the run in this directory.")
@click.option("--strategy", type=click.Choice(["auto", "mirrored", "multiworker"]), default=None,
              help="tf.distribute strategy [auto; on --resume: the run's].")
@click.option("--weights", metavar="PATH",
              help="Start from these weights: a Keras weights file, or the BNext authors' .pth.tar.")
@model_flags
@trust_option
@quiet_option
def train(model, data, epochs, batch_size, lr, settings, recipe_name, teachers, seed, out, resume, strategy, weights,
          trust_code, quiet, model_flags):
    """Train MODEL with its paper's recipe into a run directory (or --resume one).

    Checkpoints are written every epoch and on Ctrl-C/SIGTERM; `--resume DIR` continues with
    the model, recipe, data and seed recorded in DIR's manifest.
    """
    from edgebnn.run.trust import Trust
    from edgebnn.training import start

    given = [flag for flag, value in [("MODEL", model), ("--data", data), ("--recipe", recipe_name),
                                      ("--out", out), ("--weights", weights),
                                      *((MODEL_FLAG_NAMES[k], v) for k, v in model_flags.items())] if value]
    run, metrics = start(model, resume_path=resume, given=given, model_files=model_flags["model_file"],
                         trust=Trust(code=trust_code, teachers=teachers), settings=settings, strategy=strategy,
                         overrides={"epochs": epochs, "batch_size": batch_size, "lr": lr}, verbose=0 if quiet else 1,
                         data=data, out=out, recipe=recipe_name, seed=seed, weights=weights,
                         input_size=model_flags["input_size"], width=model_flags["width"],
                         model_args=model_flags["model_args"], note=lambda line: click.echo(line, err=True))
    name = run.manifest["model"] if run.manifest_path.exists() else model  # other workers write no manifest
    click.echo(f"trained {name}: val_accuracy {metrics.get('val_accuracy', float('nan')):.4f} -> {run.path}")


# -- evaluate -------------------------------------------------------------------------------
@cli.command()
@click.argument("src")
@click.option("--data", help="Dataset whose validation split is used [the run's].")
@click.option("--batch-size", type=int, default=256, show_default=True)
@click.option("--best", is_flag=True, help="Evaluate best.keras instead of model.keras (the last epoch).")
@click.option("--out", type=click.Path(file_okay=False), help="Run directory for a model name or file.")
@model_flags
@source_flags
@json_option
def evaluate(src, data, batch_size, best, out, as_json, model_flags, weights, trust):
    """Top-1 / top-5 accuracy of SRC on a validation split.

    SRC is a trained run, a Keras model file, or a model name with --weights (a weights file, or
    Larq Zoo's ImageNet weights): `edgebnn evaluate quicknet --weights imagenet --data imagenet:DIR`
    checks the zoo's published top-1 on your own validation set.
    """
    from edgebnn.training.evaluate import evaluate_source

    result = evaluate_source(src, data=data, batch_size=batch_size, which="best" if best else "last", out=out,
                             weights=weights, trust=trust, model_flags=model_flags)
    if as_json:
        click.echo(json.dumps(result, indent=2))
        return
    top5 = next((f" top-{k[3:]} {v:.2%}" for k, v in result.items() if k.startswith("top") and k != "top1"), "")
    click.echo(f"{result['run']} ({result['model_file']}) on {result['data']}: top-1 {result['top1']:.2%}{top5} "
               f"over {result['images']} images")


# -- recipes --------------------------------------------------------------------------------
@cli.command()
@click.argument("name", required=False)
@click.option("--set", "settings", multiple=True, metavar="KEY=VALUE", help="Show the recipe with overrides.")
@json_option
def recipes(name, settings, as_json):
    """Show the training recipe of a model (or a recipe by name); without NAME, list them all."""
    from edgebnn.registry import get_card, is_model_name
    from edgebnn.training.recipes import RECIPES, get_recipe

    if not name:
        rows = [r.to_dict() for r in RECIPES.values()]
        click.echo(json.dumps(rows, indent=2)) if as_json else printing.print_recipes(rows)
        return
    data = get_recipe(get_card(name).recipe if is_model_name(name) else name).with_settings(settings).to_dict()
    if as_json:
        click.echo(json.dumps(data, indent=2))
    else:
        printing.print_recipe(data, model=name if is_model_name(name) else None)


# -- convert --------------------------------------------------------------------------------
@cli.command()
@click.argument("src")
@click.option("--to", "to", default="tflite", show_default=True,
              help="tflite (LCE flatbuffer), tflite-float (float twin, plain TFLite) or keras (baked kernels).")
@click.option("--target", default="arm", show_default=True, help="LCE target: arm or xcore.")
@click.option("--int8", is_flag=True, help="int8 for the float parts, calibrated on --data (or at the model's own fake-quant ranges).")
@click.option("--int8-io", is_flag=True, help="int8 input and output types too (with --int8).")
@click.option("--data", help="Parity and calibration inputs: a dataset spec (digits, cifar10:DIR, imagenet:DIR, synthetic) [random].")
@click.option("--samples", type=int, default=8, show_default=True, help="Parity inputs.")
@click.option("--explain", is_flag=True, help="Print what every layer became, and why binary layers stayed float.")
@click.option("--strict", is_flag=True, help="Fail (exit 1) when a binary layer stayed float.")
@click.option("--out", type=click.Path(file_okay=False),
              help="Run directory for a model name or file [runs/MODEL or runs/FILE-STEM].")
@model_flags
@source_flags
@json_option
def convert(src, to, target, int8, int8_io, data, samples, explain, strict, out, as_json, model_flags, weights,
            trust):
    """Convert SRC (a run directory, a model name, or a Keras .keras/.h5/SavedModel) with Larq Compute Engine.

    Checks parity against Keras (exit 1 naming the first diverging layer when out of
    tolerance), records the op inventory, a per-layer explanation and the size against its
    theoretical minimum in the manifest. Nothing is written when a check fails.
    """
    from edgebnn.converters import ConvertOptions, convert_source
    from edgebnn.run.sources import parse_source

    options = ConvertOptions(to=to, target=target, int8=int8, int8_io=int8_io, data=data, samples=samples,
                             strict=strict)
    run, report = convert_source(parse_source(src, weights=weights, **model_flags), options, out=out, trust=trust)
    if as_json:
        click.echo(json.dumps(report, indent=2))
    else:
        printing.print_conversion(run, report, to=to, explain=explain)


# -- bench ----------------------------------------------------------------------------------
@cli.command()
@click.argument("src")
@bench_options
@click.option("--out", type=click.Path(file_okay=False),
              help="Run directory for a model name or file [runs/MODEL or runs/FILE-STEM].")
@devices_file_option
@host_key_option
@model_flags
@source_flags
@json_option
def bench(src, device, threads, runs, warmup, min_secs, max_secs, timeout, cooldown, op_profiling, xnnpack,
          indirect_bgemm, tune, save_tuned, out, devices_file, accept_new_host_key, as_json, model_flags, weights,
          trust):
    """Benchmark SRC (a run directory, a model name, a Keras file or a .tflite) on one or more devices.

    A bare model name is converted first (random weights: latency does not depend on them).
    Several devices (--device a,b or a fleet) run concurrently; each gets its own
    bench/<device>-<utc>.json, and one that cannot be reached does not stop the others.
    """
    from edgebnn.converters import converted_run
    from edgebnn.device import bench_configs, bench_run
    from edgebnn.run.sources import parse_source

    source = parse_source(src, weights=weights, **model_flags)

    def converted():  # once the options are checked: a usage error costs no conversion
        run, warning = converted_run(source, out=out, trust=trust)
        if warning:
            click.echo(f"warning: {warning}", err=True)
        return run

    configs = bench_configs(threads, runs=runs, warmup=warmup, min_secs=min_secs, max_secs=max_secs, timeout=timeout,
                            op_profiling=op_profiling, xnnpack=xnnpack, indirect_bgemm=indirect_bgemm)
    bench_run(converted, devices=device, configs=configs, devices_file=devices_file,
              accept_new_host_key=accept_new_host_key, cooldown=cooldown, tune=tune, save_tuned=save_tuned,
              use_tuned=not (threads or xnnpack or indirect_bgemm), show=functools.partial(printing.show_bench, as_json=as_json))


# -- devices --------------------------------------------------------------------------------
@cli.group(invoke_without_command=True)
@devices_file_option
@json_option
@click.pass_context
def devices(ctx, devices_file, as_json):
    """List device profiles and fleets; `devices check NAME` and `devices setup NAME` act on one.

    Profiles come from the built-ins (local, bananapi), the devices file (TOML) and the
    environment (EDGEBNN_<NAME>_HOST, _USER, _PORT).
    """
    ctx.obj["devices_file"] = devices_file
    if ctx.invoked_subcommand:
        return
    from edgebnn.device.profiles import list_devices

    listing = list_devices(devices_file=devices_file)
    if as_json:
        click.echo(json.dumps(listing, indent=2))
    else:
        printing.print_devices(listing)


@devices.command("check")
@click.argument("name")
@sub_devices_file_option
@host_key_option
@json_option
@click.pass_context
def devices_check(ctx, name, sub_devices_file, accept_new_host_key, as_json):
    """Connect to NAME and run the preflight: OS, CPU, governor, temperature, memory, disk, runtime."""
    import asyncio

    from edgebnn.device.preflight import check_device
    from edgebnn.device.profiles import get_profile

    profile = get_profile(name, devices_file=sub_devices_file or ctx.obj["devices_file"])
    report = asyncio.run(check_device(profile, accept_new_host_key=accept_new_host_key))
    if as_json:
        click.echo(json.dumps({"device": profile.name, **report}, indent=2))
    else:
        printing.print_device_check(profile, report)
    if report["errors"]:
        raise EdgebnnError(f"{profile.name} is not ready: " + "; ".join(report["errors"]))


@devices.command("setup")
@click.argument("name")
@click.option("--runtime", "runtime_file", type=click.Path(exists=True, dir_okay=False),
              help="A local lce_benchmark_model (built for the board's architecture) to install.")
@click.option("--download", is_flag=True, help="Fetch LCE's released lce_benchmark_model_aarch64 for the installed LCE.")
@sub_devices_file_option
@host_key_option
@click.pass_context
def devices_setup(ctx, name, runtime_file, download, sub_devices_file, accept_new_host_key):
    """Install lce_benchmark_model on NAME once: uploaded by hash, recorded for later runs."""
    from edgebnn.device.setup import setup_device

    done = setup_device(name, devices_file=sub_devices_file or ctx.obj["devices_file"], runtime_file=runtime_file,
                        download=download, accept_new_host_key=accept_new_host_key)
    click.echo(f"{'uploaded' if done['uploaded'] else 'already on the board:'} {done['binary'].name} -> "
               f"{done['device']}:{done['path']} (sha256 {done['sha256'][:16]}...); recorded in {done['saved']}")


# -- quickstart -----------------------------------------------------------------------------
@cli.command()
@click.option("--out", type=click.Path(file_okay=False), default="runs/quickstart", show_default=True)
@click.option("--epochs", type=int, help="Override the recipe's 15 epochs.")
@quiet_option
def quickstart(out, epochs, quiet):
    """Train a small BNN on the bundled digits, convert it with LCE, benchmark it locally."""
    from edgebnn.quickstart import quickstart as run_quickstart

    console = printing.console(stderr=True)
    result = run_quickstart(out, epochs=epochs, verbose=0 if quiet else 2,
                            progress=(lambda line: None) if quiet else console.print)
    printing.print_quickstart(result)


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


# -- report and compare ---------------------------------------------------------------------
@cli.command()
@click.argument("runs", nargs=-1, required=True)
@click.option("--device", help="Only this device's benchmarks.")
@click.option("--format", "fmt", type=click.Choice(["md", "html", "json", "csv"]),
              help="Output format [from --out's suffix, else md].")
@click.option("--out", type=click.Path(dir_okay=False), help="Write here (md and html also get PNG plots beside it).")
def report(runs, device, fmt, out):
    """Tables and plots over RUNS (run directories or folders of them), one table per device.

    Reads only manifest.json and bench/*.json: no TensorFlow, instant. Host figures are
    labelled as host; published figures (other boards) are shown apart from measured ones.
    """
    from edgebnn.reporting import build_report, write_report

    data = build_report(runs, device=device)
    text, plot_files = write_report(data, out, fmt)
    if out:
        extra = f" and {len(plot_files)} PNG plots beside it" if plot_files else ""
        click.echo(printable(f"wrote {out}{extra} ({len(data['runs'])} runs)"), err=True)
    else:
        click.echo(printable(text), nl=False)  # run and device names come from shared files


@cli.command()
@click.argument("a")
@click.argument("b", required=False)
@click.option("--device", "devices", multiple=True,
              help="Device to compare on; twice for A on the first and B on the second (B defaults to A).")
@json_option
def compare(a, b, devices, as_json):
    """Two runs (A B), or one run on two devices (A --device X --device Y), side by side with B/A ratios."""
    from edgebnn.errors import UsageError
    from edgebnn.reporting import compare_paths

    if len(devices) > 2:
        raise UsageError(f"--device given {len(devices)} times: give it once (both runs) or twice (A's, then B's)")
    if b is None and len(devices) != 2:
        raise UsageError("compare needs two runs (A B), or one run and two devices (A --device X --device Y)")
    result = compare_paths(a, b, device_a=devices[0] if devices else None, device_b=devices[-1] if devices else None)
    if as_json:
        click.echo(json.dumps(result, indent=2))
        return
    from rich.table import Table

    click.echo(printable(f"A: {result['label_a']}  ({result['a']})"))
    click.echo(printable(f"B: {result['label_b']}  ({result['b']})"))
    table = Table(*result["header"], box=None)
    for row in result["rows"]:
        table.add_row(*map(printing.cell, row))
    printing.console().print(table)
    for warning in result["warnings"]:
        click.echo(printable(f"note: {warning}"), err=True)


def main():
    from edgebnn import noise

    noise.private_tempdir()  # autograph's files (and other temp files) removed even after a kill
    cli(prog_name="edgebnn")
