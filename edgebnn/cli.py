"""The ``edgebnn`` command line: one command per stage, sharing one run directory.

Heavy imports (TensorFlow, LCE) happen inside the commands, so ``edgebnn --help`` is instant.
"""

from __future__ import annotations

import functools
import json
import sys
from pathlib import Path

import click

from edgebnn import __version__
from edgebnn.errors import EdgebnnError, printable

CONTEXT = {"help_option_names": ["-h", "--help"], "auto_envvar_prefix": "EDGEBNN"}


def _console(stderr: bool = False):
    from rich.console import Console

    stream = sys.stderr if stderr else sys.stdout
    # Piped or captured, rich would fold tables into 80 columns: a log is read wider than that.
    return Console(stderr=stderr, highlight=False, width=None if stream.isatty() else 160)


def _cell(value) -> str:
    """A table cell from data (a device's output, a run's name): no terminal controls, no rich markup."""
    from rich.markup import escape

    return escape(printable(value))


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


MODEL_FLAG_NAMES = {"input_size": "--input-size", "width": "--width", "model_args": "--model-arg",
                    "model_file": "--model-file"}
MODEL_FLAGS = tuple(MODEL_FLAG_NAMES)


def model_flags(fn):
    """``--input-size``, ``--width``, ``--model-arg``, ``--model-file``, handed to the command as ``model_flags``."""

    @functools.wraps(fn)
    def command(*args, **kwargs):
        return fn(*args, model_flags={k: kwargs.pop(k) for k in MODEL_FLAGS}, **kwargs)

    for option in reversed([
        click.option("--input-size", metavar="N|HxW", help="Build the model at this input size (e.g. 32, 160x128)."),
        click.option("--width", type=float, help="Width multiplier of the model's stages (the builder's `width`)."),
        click.option("--model-arg", "model_args", multiple=True, metavar="KEY=VALUE",
                     help="A builder option (repeatable), typed by its default, e.g. --model-arg padding=zero."),
        click.option("--model-file", multiple=True, type=click.Path(dir_okay=False),
                     help="A Python file registering models with @register_model (repeatable)."),
    ]):
        command = option(command)
    return command


TRUST_HELP = ("Run code a model file carries (a Lambda's bytecode) and load the custom-objects module and "
              "teachers a run directory names: only for files whose source you trust.")


def trust_option(fn):
    return click.option("--trust-code", is_flag=True, help=TRUST_HELP)(fn)


def source_flags(fn):
    """``--custom-objects``, ``--trust-code`` and ``--weights``, for commands that take a model file or name.

    The command receives ``weights`` and ``trust`` (an :class:`edgebnn.run.trust.Trust`).
    """

    @functools.wraps(fn)
    def command(*args, custom_objects, trust_code, **kwargs):
        from edgebnn.run.trust import Trust

        return fn(*args, trust=Trust(code=trust_code, custom_objects=custom_objects), **kwargs)

    command = click.option("--custom-objects", metavar="FILE.py|MODULE",
                           help="The module defining a model file's custom classes.")(command)
    command = trust_option(command)
    return click.option("--weights", metavar="imagenet|PATH",
                        help="Weights for a model name: a Keras weights file, the BNext authors' .pth.tar, or "
                             "Larq Zoo's ImageNet ones.")(command)


def json_option(fn):
    return click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")(fn)


def quiet_option(fn):
    return click.option("--quiet", "-q", is_flag=True, help="No progress output.")(fn)


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
    console = _console(stderr=True)
    with console.status("computing model statistics...") as status:
        for card in cards:
            status.update(f"computing statistics of {card.name}...")
            rows.append({**card.to_dict(), "stats": card_stats(card, input_shape=spec.input_shape,
                                                                options=spec.options)})
    if as_json:
        click.echo(json.dumps(rows, indent=2))
    elif exact:
        _print_card(rows[0], spec)
    else:
        import os

        console = _console()
        if os.environ.get("COLUMNS", "").isdigit():  # as for a terminal, also when piped
            console.width = int(os.environ["COLUMNS"])
        console.print(_models_table(rows, console.width))
    for point, why in PLUGIN_FAILURES.items():
        click.echo(f"note: the model plugin {point} failed to load ({why}); the other models are listed", err=True)


def short_paper(paper: str) -> str:
    """A citation in a few characters: first author's surname, venue and year ("Liu ECCV 2018")."""
    import re

    parts = [p.strip() for p in paper.split(",")]
    if len(parts) < 2:
        return paper
    venue = re.sub(r"\s*\(.*?\)", "", parts[-1]).strip()
    return f"{parts[0].removesuffix(' et al.').split()[-1]} {venue}"


def _models_table(rows: list[dict], width: int):
    """The registry as one line per model, at most ``width`` columns.

    At narrower widths the paper is cited short ("Liu ECCV 2018"), then aliases, family and
    origin go (``edgebnn models NAME`` and ``--json`` show everything).
    """
    from rich.table import Table

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


def _print_card(row: dict, spec) -> None:
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
    from edgebnn.errors import UsageError

    verbose = 0 if quiet else 1
    overrides = {"epochs": epochs, "batch_size": batch_size, "lr": lr}
    if resume:
        from edgebnn.run.trust import Trust
        from edgebnn.training.train import resume as resume_run

        given = [flag for flag, value in [("MODEL", model), ("--data", data), ("--recipe", recipe_name),
                                          ("--out", out), ("--weights", weights),
                                          *((MODEL_FLAG_NAMES[k], v) for k, v in model_flags.items())]
                 if value]
        if given:
            raise UsageError("--resume DIR reads the model, its size and options, the recipe, the data and --out "
                             f"from DIR's manifest: drop {'/'.join(given)} (change recipe fields with --set)")
        run, metrics = resume_run(resume, overrides=overrides, settings=settings, strategy=strategy, verbose=verbose,
                                  trust=Trust(code=trust_code, teachers=teachers))
    else:
        from edgebnn.registry import load_model_file
        from edgebnn.training.train import train_new

        if not model:
            raise UsageError("give a MODEL to train (see `edgebnn models`) or --resume DIR")
        for path in model_flags["model_file"]:
            load_model_file(path)
        run, metrics = train_new(model, data=data, out=out, recipe=recipe_name, settings=settings,
                                 overrides=overrides, teachers=teachers, trust_code=trust_code, seed=seed,
                                 strategy=strategy or "auto",
                                 verbose=verbose, input_size=model_flags["input_size"], width=model_flags["width"],
                                 model_args=model_flags["model_args"], note=lambda line: click.echo(line, err=True),
                                 weights=weights)
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
        if as_json:
            click.echo(json.dumps(rows, indent=2))
            return
        for r in rows:
            click.echo(f"{r['name']:<20} {r['optimizer']:<6} lr {r['lr']:<8g} {r['epochs']:>4} epochs  "
                       f"batch {r['batch_size']:<4} {r['schedule']}")
        return
    recipe = get_recipe(get_card(name).recipe if is_model_name(name) else name).with_settings(settings)
    data = recipe.to_dict()
    if as_json:
        click.echo(json.dumps(data, indent=2))
        return
    click.echo(f"recipe {data.pop('name')}" + (f" (model {name})" if is_model_name(name) else ""))
    for key, value in data.items():
        click.echo(f"  {key:<22} {value}")


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
    from edgebnn.converters.convert import ConvertOptions, convert_run
    from edgebnn.run.sources import parse_source, resolve_source

    options = ConvertOptions(to=to, target=target, int8=int8, int8_io=int8_io, data=data, samples=samples,
                             strict=strict)
    source = parse_source(src, weights=weights, **model_flags)
    if source.random_weights:
        options.check_random_weights()
    run = resolve_source(source, out=out, trust=trust)
    report = convert_run(run, options, trust=trust)
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


# -- bench ----------------------------------------------------------------------------------
def devices_file_option(fn):
    return click.option("--devices-file", type=click.Path(dir_okay=False), envvar="EDGEBNN_DEVICES_FILE",
                        help="Devices file [~/.config/edgebnn/devices.toml; env EDGEBNN_DEVICES_FILE].")(fn)


def host_key_option(fn):
    return click.option("--accept-new-host-key", is_flag=True,
                        help="Trust and record the host key of a board not yet in known_hosts (a changed key is "
                             "always refused).")(fn)


def bench_options(fn):
    for option in reversed(
        [
            click.option("--device", default="local", show_default=True,
                         help="Device name, fleet, ssh://user@host:port, or a comma list of them."),
            click.option("--threads", default=None, help="Thread counts, e.g. 1,4 [each device's default]."),
            click.option("--runs", type=int, default=50, show_default=True, help="Minimum timed runs."),
            click.option("--warmup", type=int, default=5, show_default=True, help="Warm-up runs."),
            click.option("--min-secs", type=float, default=1.0, show_default=True, help="Minimum timed duration."),
            click.option("--max-secs", type=float, default=150.0, show_default=True,
                         help="The runtime stops timing after this long."),
            click.option("--timeout", type=float, default=600.0, show_default=True,
                         help="Time limit per configuration; the runtime is killed on the device after it."),
            click.option("--cooldown", type=float, default=None,
                         help="Seconds of rest between configurations [the device's, 2 for boards]."),
            click.option("--op-profiling", is_flag=True, help="Per-op profile (lce_benchmark_model only)."),
            click.option("--use-xnnpack", "xnnpack", is_flag=True,
                         help="TFLite's XNNPACK delegate for the float ops (as LCE's published figures)."),
            click.option("--use-indirect-bgemm", "indirect_bgemm", is_flag=True,
                         help="LCE's indirect BGEMM kernels instead of im2col + BGEMM."),
            click.option("--tune", is_flag=True,
                         help="Sweep threads (1..cores), indirect BGEMM, XNNPACK (and each cluster of a big.LITTLE "
                              "board); pick the fastest valid one."),
            click.option("--save-tuned", is_flag=True,
                         help="With --tune: save the choice as the device's defaults for this model; later benches "
                              "use them unless given --threads, --use-xnnpack or --use-indirect-bgemm."),
        ]
    ):
        fn = option(fn)
    return fn


def _bench_table(record):
    from rich.table import Table

    tuned = record.get("tune")
    pinned = any(r["config"].get("affinity") for r in record["results"])
    switched = tuned or any(r["config"]["indirect_bgemm"] or r["config"]["xnnpack"] for r in record["results"])
    table = Table(
        "threads", *(("indirect", "xnnpack") if switched else ()), *(("CPUs",) if pinned else ()), "median ms", "p90 ms", "mean ms", "std ms", "min ms",
        "runs", "GBMAC/s", "peak MB", "status",
        title=_cell(f"{record['model']} on {record['device']} ({record['figure_kind']} figures)"),
        box=None,
    )
    for i, r in enumerate(record["results"]):
        lat = r["latency"]
        invalid = f"invalid: {r['error']}" if r["error"] else "invalid: too few runs or too short"
        status = ("valid" if r["valid"] else invalid) if r["ok"] else f"{r['error_kind']}: {r['error']}"
        fmt = lambda k, lat=lat: f"{lat[k]:.3f}" if k in lat else "-"
        chosen = tuned and tuned["index"] == i
        switches = ("on" if r["config"]["indirect_bgemm"] else "off", "on" if r["config"]["xnnpack"] else "off")
        gbmacs = (r.get("roofline") or {}).get("achieved_gbmacs")
        table.add_row(str(r["config"]["threads"]) + (" *" if chosen else ""), *(switches if switched else ()),
                      *((r["config"].get("affinity") or "all",) if pinned else ()),
                      fmt("median_ms"), fmt("p90_ms"), fmt("mean_ms"), fmt("std_ms"), fmt("min_ms"),
                      str(lat.get("runs", "-")), f"{gbmacs:.2f}" if gbmacs else "-", fmt("peak_memory_mb"), _cell(status))
    return table


def _tune_lines(record: dict) -> list[str]:
    """What ``--tune`` chose and what ``--save-tuned`` saved, or which saved choice this bench ran."""
    from edgebnn.device.bench import tune_summary

    lines = []
    if choice := record.get("tune"):
        lines.append(tune_summary(choice))
    if saved := record.get("saved_tuned"):
        lines.append(f"saved as {record['device']}'s defaults for {saved['label']} in {saved['path']}: a later "
                     "`edgebnn bench` of this flatbuffer uses them (--threads, --use-xnnpack or --use-indirect-bgemm "
                     "choose instead)")
    return [printable(line) for line in lines]


def _tuned_note(record: dict) -> str | None:
    """Which saved ``--tune`` choice this bench ran (on stderr, with --json too: a user must know)."""
    from edgebnn.device.bench import describe

    if used := record.get("tuned_from"):
        return printable(f"note: {record['device']}: ran the tuned configuration saved {used['saved']} "
                         f"({describe(used['config'])}, median then {used['median_ms']:.3f} ms); give --threads, "
                         "--use-xnnpack or --use-indirect-bgemm to choose yourself")
    return None


def _bench_context(record) -> str:
    """One line: what ran where, and where the time went."""
    fp, rt = record["fingerprint"], record["runtime"]
    version = f"LCE {rt['lce_version']}" if rt.get("lce_version") else f"sha256 {(rt.get('sha256') or '?')[:12]}"
    reused = [name for name, u in record["uploads"].items() if not u["uploaded"]]
    steps = ", ".join(f"{k} {v:.2f} s" for k, v in record["steps_s"].items())
    return printable(f"{record['device']}: {fp.get('cpu') or '?'} ({fp.get('cores')} cores, {fp.get('kernel', '')} "
                     f"{fp.get('arch', '')}); {rt.get('kind')} ({version}); {steps}"
                     + (f"; reused on the board: {', '.join(reused)}" if reused else ""))


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
    from edgebnn.converters.convert import converted_run
    from edgebnn.device.bench import bench_configs, bench_run, check_cooldown
    from edgebnn.device.local import check_local_workdirs
    from edgebnn.device.profiles import resolve_devices
    from edgebnn.errors import UsageError
    from edgebnn.run.sources import parse_source

    check_local_workdirs(resolve_devices(device, devices_file=devices_file))  # before a model is converted
    if tune and (threads or xnnpack or indirect_bgemm):
        raise UsageError("--tune sweeps --threads, --use-xnnpack and --use-indirect-bgemm itself: drop them")
    if save_tuned and not tune:
        raise UsageError("--save-tuned saves the configuration --tune chooses: add --tune")
    configs = bench_configs(threads, runs=runs, warmup=warmup, min_secs=min_secs, max_secs=max_secs, timeout=timeout,
                            op_profiling=op_profiling, xnnpack=xnnpack, indirect_bgemm=indirect_bgemm)
    check_cooldown(cooldown)
    run, warning = converted_run(parse_source(src, weights=weights, **model_flags), out=out, trust=trust)
    if warning:
        click.echo(f"warning: {warning}", err=True)
    records = bench_run(run, devices=device, configs=configs, devices_file=devices_file,
                        accept_new_host_key=accept_new_host_key, cooldown=cooldown, tune=tune, save_tuned=save_tuned,
                        use_tuned=not (threads or xnnpack or indirect_bgemm))
    if as_json:
        click.echo(json.dumps(records[0] if len(records) == 1 else records, indent=2))
    for record in records:
        if note := _tuned_note(record):
            click.echo(note, err=True)
        if not as_json:
            if not record["error_kind"] or record["results"]:
                _console().print(_bench_table(record))
                click.echo(_bench_context(record))
                for line in _tune_lines(record):
                    click.echo(line)
            if "unsaved" not in record:
                click.echo(f"saved {record['file']}")
        if record["error_kind"]:
            click.echo(printable(f"error: {record['device']}: {record['error_kind']}: {record['error']}"), err=True)
        for warning in record["warnings"]:
            click.echo(printable(f"warning: {record['device']}: {warning}"), err=True)
    if unsaved := [record["unsaved"] for record in records if "unsaved" in record]:
        raise EdgebnnError("; ".join(unsaved))
    if not any(r["ok"] for record in records for r in record["results"]):
        names = ", ".join(r["device"] for r in records)
        raise EdgebnnError(f"every configuration failed on {names}: see {', '.join(r['file'] for r in records)}")


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
    from rich.table import Table

    from edgebnn.device.profiles import list_devices

    listing = list_devices(devices_file=devices_file)
    if as_json:
        click.echo(json.dumps(listing, indent=2))
        return
    table = Table("device", "where", "runtime", "threads", "description", title=_cell(f"devices ({listing['path']})"),
                  box=None)
    for row in listing["devices"]:
        p = row["profile"]
        where = "this machine" if p["transport"] == "local" else (p["host"] and _address(p)) or "host not set"
        runtime = p["runtime_file"] and f"{p['runtime_file']} (uploaded)" or p["runtime"]
        table.add_row(*(_cell(v) for v in (p["name"], where, runtime, ",".join(map(str, p["threads"])),
                                           p["description"])))
    _console().print(table)
    for name, members in listing["fleets"].items():
        click.echo(printable(f"fleet {name}: {', '.join(members)}"))
    for row in listing["devices"]:
        if row["problem"]:
            click.echo(printable(f"note: {row['problem']}"))
    if listing["setup_problem"]:
        click.echo(printable(f"warning: {listing['setup_problem']}"), err=True)


def _known(value, spec: str = "") -> str:
    """A figure the device reported, or ``-`` when it could not be read."""
    return "-" if value is None else format(value, spec)


def _address(p: dict) -> str:
    return f"{p['user'] + '@' if p['user'] else ''}{p['host']}{':' + str(p['port']) if p['port'] else ''}"


def _runtime_line(profile, found: dict) -> str:
    if profile.runtime_file:
        return f"{profile.runtime_file} (uploaded by hash at bench time)"
    if profile.transport == "local":
        return f"{sys.executable} (LCE's Python interpreter)"
    state = "executable" if found.get("exec") else "MISSING" if not found.get("exists", found.get("exec")) else "not executable"
    extra = f", LCE {found['lce_version']}" if found.get("lce_version") else ""
    return f"{profile.runtime} -> {found.get('path', '-')} ({state}{extra})"


def sub_devices_file_option(fn):
    """``--devices-file`` after a `devices` subcommand too; it wins over the group's and the environment's."""
    return click.option("--devices-file", "sub_devices_file", type=click.Path(dir_okay=False),
                        help="Devices file (as `edgebnn devices --devices-file F ...`).")(fn)


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
        fp = report["fingerprint"]
        unread = [what for what, value in (("OS word size (no getconf)", fp["os_bits"]), ("core count", fp["cores"]),
                                           ("memory (/proc/meminfo)", fp["mem_total_mb"]),
                                           ("free disk (df)", fp["disk_free_mb"])) if value is None]
        lines = [
            ("device", f"{profile.name} ({'this machine' if profile.transport == 'local' else profile.address})"),
            ("board", fp["board"] or "-"),
            ("os", f"{fp['kernel'] or '-'} {fp['arch'] or '-'} ({_known(fp['os_bits'])}-bit)"),
            ("cpu", f"{fp['cpu'] or '-'} ({_known(fp['cores'])} cores)"),
            ("governor", f"{fp['governor'] or '-'} at {_known(fp['freq_mhz'])} / {_known(fp['max_freq_mhz'])} MHz"),
            ("temperature", ", ".join(f"{t:.0f} C" for t in fp["temps_c"]) or "-"),
            ("memory", f"{_known(fp['mem_available_mb'])} MB free of {_known(fp['mem_total_mb'])} MB"),
            ("disk", f"{_known(fp['disk_free_mb'], '.0f')} MB free in {profile.workdir}"),
            ("runtime", _runtime_line(profile, fp["runtime"])),
            ("checked in", f"{report['seconds']:.2f} s"),
        ]
        for label, value in lines:  # every value but the labels came from the device: nothing reaches the terminal raw
            click.echo(printable(f"{label:12} {value}"))
        for warning in report["warnings"]:
            click.echo(printable(f"warning: {warning}"), err=True)
        if unread:
            click.echo(printable(f"note: {profile.name} did not tell: {', '.join(unread)} (shown as -)"), err=True)
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
    import asyncio
    from pathlib import Path

    from edgebnn.device.devices_file import default_devices_file
    from edgebnn.device.profiles import get_profile
    from edgebnn.device.setup import download_runtime, install_runtime, lce_version
    from edgebnn.device.setup_record import record_setup
    from edgebnn.errors import UsageError

    if bool(runtime_file) == bool(download):
        raise UsageError("give exactly one of --runtime FILE and --download")
    devices_file = sub_devices_file or ctx.obj["devices_file"]
    profile = get_profile(name, devices_file=devices_file)
    binary = download_runtime() if download else Path(runtime_file).resolve()  # checked against the board's arch
    placed = asyncio.run(install_runtime(profile, binary, accept_new_host_key=accept_new_host_key))
    record = {"runtime_file": str(binary), "sha256": placed["sha256"], "remote_path": placed["path"],
              "source": "download" if download else "file", "lce_version": lce_version() if download else None}
    saved = record_setup(devices_file or default_devices_file(), profile.name, record)
    click.echo(f"{'uploaded' if placed['uploaded'] else 'already on the board:'} {binary.name} -> "
               f"{profile.name}:{placed['path']} (sha256 {placed['sha256'][:16]}...); recorded in {saved}")


# -- quickstart -----------------------------------------------------------------------------
@cli.command()
@click.option("--out", type=click.Path(file_okay=False), default="runs/quickstart", show_default=True)
@click.option("--epochs", type=int, help="Override the recipe's 15 epochs.")
@quiet_option
def quickstart(out, epochs, quiet):
    """Train a small BNN on the bundled digits, convert it with LCE, benchmark it locally."""
    from rich.table import Table

    from edgebnn.quickstart import quickstart as run_quickstart

    console = _console(stderr=True)
    result = run_quickstart(out, epochs=epochs, verbose=0 if quiet else 2,
                            progress=(lambda line: None) if quiet else console.print)
    stats, report, metrics = result["stats"], result["conversion"], result["metrics"]
    lat = result["bench"]["results"][0]["latency"]
    table = Table(title=f"edgebnn quickstart: {result['run'].manifest['model']} on digits", box=None,
                  show_header=False)
    for label, value in [
        ("validation accuracy", f"{metrics['val_accuracy']:.2%}"),
        ("parameters binary / float", f"{stats['binary_params']:,} / {stats['float_params']:,}"),
        ("binary share of MACs", f"{stats['binary_mac_share']:.1%}"),
        ("Keras / flatbuffer size", f"{report['keras_bytes'] / 1024:.0f} KiB / {report['tflite_bytes'] / 1024:.0f} KiB"),
        ("LceBconv2d / binary layers", f"{report['bconv']} / {report['binary_layers']}"),
        ("parity max |err|", f"{report['parity']['max_abs_error']:.1e}"),
        ("latency median / p90 (host)", f"{lat.get('median_ms', float('nan')):.3f} / {lat.get('p90_ms', float('nan')):.3f} ms"),
        ("run directory", str(result["run"].path)),
        ("wall time", f"{result['seconds']:.0f} s"),
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
    from pathlib import Path

    from edgebnn import atomic
    from edgebnn.reporting.load import build_report
    from edgebnn.reporting.render import FORMATS, render

    suffix = Path(out).suffix.lstrip(".").lower() if out else ""
    fmt = fmt or {"markdown": "md", "htm": "html"}.get(suffix, suffix if suffix in FORMATS else "md")
    data = build_report(runs, device=device)
    plots, plot_files = None, None
    if fmt in ("md", "html"):
        from edgebnn.reporting.plots import draw_all

        if fmt == "html" or out:
            plots = draw_all(data)
        if out and plots:
            plot_files = {}
            for name, png in plots.items():
                path = Path(out).with_name(f"{Path(out).stem}-{name}.png")
                try:
                    atomic.write_bytes(path, png)
                except OSError as e:
                    raise _report_write_error(path, e) from None
                plot_files[name] = path.name
    text = render(data, fmt=fmt, plots=plots, plot_files=plot_files)
    if out:
        try:
            atomic.write_text(out, text)
        except OSError as e:
            raise _report_write_error(Path(out), e) from None
        extra = f" and {len(plot_files)} PNG plots beside it" if plot_files else ""
        click.echo(printable(f"wrote {out}{extra} ({len(data['runs'])} runs)"), err=True)
    else:
        click.echo(printable(text), nl=False)  # run and device names come from shared files


def _report_write_error(path: Path, error: OSError) -> EdgebnnError:
    """A report file that could not be written: the path, why, and the next step (a full disk above all)."""
    step = ("free some space there or give another --out" if error.errno == 28 else "give a writable --out")
    return EdgebnnError(f"cannot write the report file {str(path)!r}: {error.strerror or error}; {step} (files "
                        "written before it are complete; none is half-written)")


@cli.command()
@click.argument("a")
@click.argument("b", required=False)
@click.option("--device", "devices", multiple=True,
              help="Device to compare on; twice for A on the first and B on the second (B defaults to A).")
@json_option
def compare(a, b, devices, as_json):
    """Two runs (A B), or one run on two devices (A --device X --device Y), side by side with B/A ratios."""
    from edgebnn.errors import UsageError
    from edgebnn.reporting.compare import compare as compare_runs
    from edgebnn.reporting.load import find_runs, load_run

    if len(devices) > 2:
        raise UsageError(f"--device given {len(devices)} times: give it once (both runs) or twice (A's, then B's)")
    if b is None and len(devices) != 2:
        raise UsageError("compare needs two runs (A B), or one run and two devices (A --device X --device Y)")
    summaries = []
    for src in (a, b or a):
        found = find_runs([src])
        if len(found) != 1:
            raise UsageError(f"{src!r} holds {len(found)} runs: give one run directory")
        summaries.append(load_run(found[0]))
    device_a = devices[0] if devices else None
    device_b = devices[-1] if devices else None
    result = compare_runs(*summaries, device_a=device_a, device_b=device_b)
    if as_json:
        click.echo(json.dumps(result, indent=2))
        return
    from rich.table import Table

    click.echo(printable(f"A: {result['label_a']}  ({result['a']})"))
    click.echo(printable(f"B: {result['label_b']}  ({result['b']})"))
    table = Table(*result["header"], box=None)
    for row in result["rows"]:
        table.add_row(*map(_cell, row))
    _console().print(table)
    for warning in result["warnings"]:
        click.echo(printable(f"note: {warning}"), err=True)


def main():
    from edgebnn import noise

    noise.private_tempdir()  # autograph's files (and other temp files) removed even after a kill
    cli(prog_name="edgebnn")
