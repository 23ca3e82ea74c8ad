"""The command line's shared options: each defined once, handed to the commands as values."""

from __future__ import annotations

import functools

import click

from edgebnn.run.trust import Trust

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


def sub_devices_file_option(fn):
    """``--devices-file`` after a `devices` subcommand too; it wins over the group's and the environment's."""
    return click.option("--devices-file", "sub_devices_file", type=click.Path(dir_okay=False),
                        help="Devices file (as `edgebnn devices --devices-file F ...`).")(fn)
