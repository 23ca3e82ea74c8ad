"""``edgebnn convert``: a run's Keras model to one artifact, with the report that proves it.

:class:`ConvertOptions` holds every option and validates them together, once, without
TensorFlow (so bad input is refused at once); :func:`convert_run` converts, checks and records.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from edgebnn.converters.layer_index import LayerIndex
from edgebnn.converters.lce import TARGETS as LCE_TARGETS
from edgebnn.data.spec import DataSpec, parse_spec
from edgebnn.errors import EdgebnnError, UsageError, shell_command
from edgebnn.run.records import ConversionReport
from edgebnn.run.rundir import RunDir, utc_now
from edgebnn.run.trust import Trust

TARGETS = ("tflite", "tflite-float", "keras")
ARTIFACTS = {"tflite": "model.tflite", "tflite-float": "model-float.tflite", "keras": "model-baked.keras"}
INT8_NEEDS_DATA = ("--int8 needs a representative dataset: add --data digits or --data synthetic "
                   "(or convert a model trained with fake-quantization ops)")


@dataclass(frozen=True)
class ConvertOptions:
    """What to convert to, and how to check it.

    Attributes:
        to: ``tflite`` (LCE flatbuffer), ``tflite-float`` (the float twin, plain TFLite) or
            ``keras`` (quantized kernels baked in).
        target: LCE target, ``arm`` or ``xcore``.
        int8: int8 float parts, calibrated on ``data``, or at the ranges of the model's own
            fake-quantization ops (quantization-aware training) when ``data`` is None.
        int8_io: int8 input and output types (needs ``int8``).
        data: the dataset for parity and calibration inputs (random when None); a spec string
            given here is parsed into its :class:`edgebnn.data.spec.DataSpec`.
        samples: parity inputs.
        strict: fail when a binary layer stayed float (documented exceptions aside).

    Raises:
        UsageError: naming the bad value (in ``__post_init__``: the one place options are checked).
    """

    to: str = "tflite"
    target: str = "arm"
    int8: bool = False
    int8_io: bool = False
    data: DataSpec | None = None
    samples: int = 8
    strict: bool = False

    def __post_init__(self):
        if self.to not in TARGETS:
            raise UsageError(f"unknown target {self.to!r} for --to: choose one of {', '.join(TARGETS)}")
        if self.target not in LCE_TARGETS:
            raise UsageError(f"unknown --target {self.target!r}: choose one of {', '.join(LCE_TARGETS)}")
        if self.data is not None:
            object.__setattr__(self, "data", parse_spec(self.data))
        if self.int8 and self.to == "keras":
            raise UsageError("--int8 applies to --to tflite or tflite-float, not keras")
        if self.int8_io and not self.int8:
            raise UsageError("--int8-io needs --int8 (int8 input/output types need int8 ranges)")
        if isinstance(self.samples, bool) or not isinstance(self.samples, int) or self.samples < 1:
            raise UsageError(f"bad --samples {self.samples}: give at least 1")

    def check_random_weights(self) -> None:
        """A model with random weights carries no fake-quantization ranges: ``int8`` needs ``data``.

        Raises:
            UsageError: ``int8`` without ``data``.
        """
        if self.int8 and self.data is None:
            raise UsageError(INT8_NEEDS_DATA)


def convert_run(run: RunDir, options: ConvertOptions = ConvertOptions(), *, parity_inputs=None,
                trust: Trust = Trust()) -> dict:
    """Convert the run's Keras model as ``options`` say and record the report in the manifest.

    ``tflite`` writes ``model.tflite`` and its report at the top of ``manifest["conversion"]``;
    ``tflite-float`` and ``keras`` write their artifact (:data:`ARTIFACTS`) and the report under
    ``manifest["conversion"][to]``. Nothing is written when a check fails.

    Args:
        run: the run directory.
        options: the validated options.
        parity_inputs: explicit parity inputs (overrides ``options.data``).
        trust: what the user allowed on this command (:class:`edgebnn.run.trust.Trust`).

    Returns:
        The report.

    Raises:
        UsageError: ``int8`` with neither ``data`` nor fake-quantization ops in the model.
        EdgebnnError: conversion failed, parity out of tolerance, or ``strict`` violated.
    """
    from edgebnn.data.samples import sample_inputs

    model = run.load_model(trust=trust)
    if options.int8 and options.data is None:
        from edgebnn.converters.int8 import has_fake_quant

        if not has_fake_quant(model):
            raise UsageError(INT8_NEEDS_DATA)
    shape = model.input_shape[1:]
    norm = run.section("card").get("preprocessing")
    inputs = parity_inputs if parity_inputs is not None else sample_inputs(
        options.data, shape, n=options.samples, preprocessing=norm)
    calibration = (sample_inputs(options.data, shape, n=64, split="train", preprocessing=norm)
                   if options.int8 and options.data else None)
    start = time.perf_counter()
    if options.to == "tflite":
        report, artifact = _convert_lce(run, model, inputs, calibration, options, start=start)
    elif options.to == "tflite-float":
        report, artifact = _convert_float(model, inputs, calibration, options, start=start)
    else:
        report, artifact = _quantized_keras(model, inputs, start=start)
    report.update(converted=utc_now(), data=str(options.data or "random"))
    name = ARTIFACTS[options.to]

    def write(tmp):
        if isinstance(artifact, bytes):
            tmp.write_bytes(artifact)
        else:
            artifact.save(tmp)
            report["keras_bytes"] = tmp.stat().st_size

    def record(data: dict) -> None:  # written through its type (edgebnn.run.records), with its schema
        previous = data.get("conversion") or {}
        if options.to == "tflite":
            data["conversion"] = {**{k: v for k, v in previous.items() if k in TARGETS},
                                  **ConversionReport.made(report).to_dict()}
        else:
            data["conversion"] = {**previous, options.to: ConversionReport.made({**report, "file": name}).to_dict()}

    run.commit({name: write}, record)
    error = report.get("parity", {}).get("error")
    if error:
        raise EdgebnnError(f"{error}; {run.tflite_path} is written for latency studies only "
                           f"(`{shell_command('edgebnn', 'bench', run.path)}` measures it), the verdict recorded in "
                           "its manifest")
    return report


def _documented_exception(run: RunDir) -> bool:
    notes = run.section("card").get("notes", "")
    if not notes:
        from edgebnn.registry import get_card, is_model_name

        name = run.manifest.get("model", "")
        notes = get_card(name).notes if is_model_name(name) else ""
    return "documented exception" in notes


def _convert_lce(run: RunDir, model, inputs, calibration, options: ConvertOptions, *, start: float):
    from edgebnn.converters.lce import convert
    from edgebnn.converters.report import conversion_report

    ranges = None
    if options.int8 and calibration is not None:  # else the model's own fake-quant ops hold the ranges
        from edgebnn.converters.int8 import calibrate

        ranges = calibrate(model, calibration)
    flatbuffer = convert(model, target=options.target, int8=options.int8_io, int8_ranges=ranges)
    seconds = time.perf_counter() - start
    index = LayerIndex(model, flatbuffer)  # one walk of the layers for every check
    report = conversion_report(model, flatbuffer, parity_inputs=inputs, int8=options.int8, index=index)
    report.update(target=options.target, int8=options.int8, int8_io=options.int8_io,
                  convert_seconds=round(seconds, 3), keras_bytes=run.keras_path.stat().st_size)
    floats = report["explain"]["float_binary_layers"]
    if options.strict and floats and not _documented_exception(run):
        rows = [r for r in report["explain"]["layers"] if r["name"] in floats]
        why = "; ".join(f"{r['name']}: {r['reasons'][0]}" for r in rows[:3])
        raise EdgebnnError(
            f"--strict: {len(floats)} of {report['binary_layers']} binary layers stayed float, nothing "
            f"written ({why}); run with --explain for every layer"
        )
    judge_parity(report["parity"], index, inputs, strict=options.strict)
    return report, flatbuffer


def judge_parity(p: dict, index: LayerIndex, inputs, *, strict: bool) -> None:
    """Set ``p["verdict"]`` (``ok``, ``rounding`` or ``wrong``) and its message.

    ``rounding`` (sign flips at ties, not a conversion error) keeps the flatbuffer with a
    ``warning``; ``wrong`` records an ``error`` naming the layer and the reason, and
    :func:`convert_run` writes the flatbuffer, then fails. Either refuses at once under
    ``strict``, nothing written.

    Raises:
        EdgebnnError: ``strict`` and the verdict is not ``ok``.
    """
    from edgebnn.converters.parity import checked, first_divergence

    signs = p.get("signs")
    if p["ok"]:
        p["verdict"] = "ok"
        return
    c = checked(p)
    summary = (f"parity out of tolerance on the {p['checked_on']}: max rel error {c['max_rel_error']:.2e}, mean rel "
               f"error {c['mean_rel_error']:.2e}, top-1 agreement {p['top1_agreement']:.0%} (tolerance {p['tolerance']})")
    if signs and signs["verdict"] == "rounding":
        p["verdict"] = "rounding"
        p["warning"] = (f"{summary}; explained by sign flips at rounding of zero, not by the conversion: "
                        f"{flips_summary(signs)}; from the same binary activations Keras and the flatbuffer agree "
                        f"(mean rel error {checked(signs['forced'])['mean_rel_error']:.1e}). Binary dot products are "
                        "integers, so exact ties are common with random weights or untrained BatchNorm statistics")
        if strict:
            raise EdgebnnError(f"--strict: {p['warning']}; nothing written (without --strict the flatbuffer is kept "
                               "and this verdict recorded)")
        return
    culprit = (signs or {}).get("culprit")
    if culprit is None:
        where = first_divergence(index.model, index.flatbuffer, inputs, tolerance=p["tolerance"], index=index)
        culprit = {"layer": where["layer"], "type": where["type"],
                   "reason": f"the first layer whose output diverges (max rel error "
                             f"{where['parity']['max_rel_error']:.2e})"} if where else None
    p["verdict"], p["culprit"] = "wrong", culprit
    p["error"] = (f"{summary}; the outputs are wrong at {culprit['layer']} ({culprit['type']}): {culprit['reason']}"
                  if culprit else f"{summary}; the outputs are wrong and sign flips do not explain it, but no layer "
                  "could be named (every intermediate tensor is within tolerance: look at the last ops)")
    if strict:
        raise EdgebnnError(f"--strict: {p['error']}; nothing written")


def flips_summary(signs: dict) -> str:
    """One phrase: how many signs flipped, in which binary layers, and how many were local."""
    flipped = [r for r in signs["layers"] if r["flips"]]
    if not flipped:
        return "no sign flips"
    first = flipped[0]
    local = sum(r.get("local", 0) for r in signs["layers"])
    at = sum(r.get("at_rounding", 0) for r in signs["layers"])
    text = (f"{signs['flips']} sign flips in the inputs of {len(flipped)} of {len(signs['layers'])} binary layers on "
            f"{signs['inputs']} inputs (first in {first['layer']}: {first['flips']} of {first['values']} values)")
    if "local" not in first:
        return text
    if local == at:
        return f"{text}; the {local} that arise from identical binary inputs all lie at rounding of zero"
    return f"{text}; {local - at} of the {local} that arise from identical binary inputs lie away from zero"


def _convert_float(model, inputs, calibration, options: ConvertOptions, *, start: float):
    from edgebnn.converters.flatbuffer import op_counts
    from edgebnn.converters.lce import convert_float
    from edgebnn.converters.parity import FLOAT_TOLERANCE, INT8_TOLERANCE, checked, parity, within
    from edgebnn.converters.twin import float_twin

    twin = float_twin(model)
    flatbuffer = convert_float(twin, int8=options.int8, int8_io=options.int8_io, representative=calibration)
    seconds = time.perf_counter() - start
    tolerance = INT8_TOLERANCE if options.int8 else FLOAT_TOLERANCE
    result = parity(twin, flatbuffer, inputs)
    result.update(tolerance=tolerance, ok=within(checked(result), tolerance))
    if not result["ok"]:
        raise EdgebnnError(
            f"parity of the float twin out of tolerance: max rel error {result['max_rel_error']:.2e} "
            f"(tolerance {tolerance}); nothing written"
        )
    return {"op_counts": op_counts(flatbuffer), "tflite_bytes": len(flatbuffer), "parity": result,
            "int8": options.int8, "int8_io": options.int8_io, "convert_seconds": round(seconds, 3)}, flatbuffer


def _quantized_keras(model, inputs, *, start: float):
    from edgebnn.converters.parity import compare
    from edgebnn.converters.quantized_keras import quantized_keras

    baked = quantized_keras(model)
    result = compare(model.predict(inputs, verbose=0), baked.predict(inputs, verbose=0))
    if result["max_rel_error"] > 1e-5:
        raise EdgebnnError(
            f"the baked model differs from the original (max rel error {result['max_rel_error']:.2e}): "
            "a kernel quantizer is not idempotent; nothing written"
        )
    return {"parity": result, "convert_seconds": round(time.perf_counter() - start, 3)}, baked


def convert_source(source, options: ConvertOptions = ConvertOptions(), *, out: str | None = None,
                   trust: Trust = Trust()) -> tuple[RunDir, dict]:
    """``edgebnn convert``: the run for ``source`` (:class:`edgebnn.run.sources.Source`), converted.

    A model name without weights converts random weights only where that means something
    (:meth:`ConvertOptions.check_random_weights`), checked before anything is built.

    Returns:
        ``(run, the conversion report)`` (see :func:`convert_run`).
    """
    from edgebnn.run.sources import resolve_source

    if source.random_weights:
        options.check_random_weights()
    run = resolve_source(source, out=out, trust=trust)
    return run, convert_run(run, options, trust=trust)


def converted_run(source, *, out: str | None = None, trust: Trust = Trust()) -> tuple[RunDir, str | None]:
    """The run for ``source`` (:class:`edgebnn.run.sources.Source`) with its ``model.tflite``: a run
    directory, a model name, a Keras file or a flatbuffer.

    A run without a flatbuffer is converted with the default options first (for a bare model
    name: random weights; latency does not depend on them). A ``.tflite`` file becomes a run of
    its own (:func:`flatbuffer_run`).

    Returns:
        ``(run, parity warning or None)``.
    """
    from edgebnn.run.sources import FLATBUFFER, resolve_source

    if source.kind == FLATBUFFER:
        return flatbuffer_run(source.path, out=out), None
    run = resolve_source(source, out=out, trust=trust)
    if run.tflite_path.exists():
        return run, None
    return run, convert_run(run, trust=trust)["parity"].get("warning")


def flatbuffer_report(data: bytes) -> dict:
    """What a flatbuffer holds, read through the schema: op counts and binary coverage
    (:func:`edgebnn.converters.report.bconv_coverage`, the definition a Keras run uses too).

    Raises:
        EdgebnnError: not a TFLite flatbuffer (the identifier, or a body the schema cannot read).
    """
    from edgebnn.converters.flatbuffer import operators
    from edgebnn.converters.report import bconv_coverage

    if len(data) < 8 or data[4:8] != b"TFL3":
        raise EdgebnnError("not a TFLite flatbuffer (no TFL3 identifier at byte 4)")
    try:
        ops = operators(data)
    except EdgebnnError:
        raise
    except Exception as e:  # the schema's reader raises IndexError, struct.error... on a damaged body
        raise EdgebnnError(f"a damaged TFLite flatbuffer: its identifier is right but the body does not read "
                           f"({type(e).__name__}: {e})") from None
    counts: dict[str, int] = {}
    for op in ops:
        counts[op["op"]] = counts.get(op["op"], 0) + 1
    coverage = bconv_coverage(data, ops)
    # Without a Keras model each binary op stands for a binary layer.
    return {"op_counts": dict(sorted(counts.items(), key=lambda kv: -kv[1])), **coverage,
            "binary_layers": coverage["binary_ops"], "coverage_from": "ops", "tflite_bytes": len(data)}


def flatbuffer_run(path: Path, *, out: str | None = None) -> RunDir:
    """A run directory for a flatbuffer the user brings (LCE's, or a plain TFLite float or int8 one).

    Its op inventory stands in for the conversion report (binary coverage from the ops: no Keras
    model exists); ``bench``, ``report`` and ``compare`` treat it like any run.

    Raises:
        UsageError: no such file. EdgebnnError: it is not a flatbuffer.
    """
    from edgebnn.run.rundir import file_record
    from edgebnn.run.sources import reuse_or_build

    path = path.resolve()
    data = path.read_bytes()
    try:
        report = flatbuffer_report(data)
    except EdgebnnError as e:
        raise EdgebnnError(f"{path}: {e}; give a .tflite written by a TFLite or LCE converter") from None
    source = {"path": str(path), **file_record(path), "format": "tflite"}
    conversion = ConversionReport.made({**report, "converted": utc_now()}).to_dict()
    manifest = {"model": path.stem, "weights": "file", "source": source, "conversion": conversion}

    def fill(run: RunDir) -> None:
        run.tflite_path.write_bytes(data)
        run.record_file(run.tflite_path)

    return reuse_or_build(Path(out) if out else Path("runs") / path.stem,
                          {"model": path.stem, "weights": "file", "source": source},
                          lambda where: RunDir.build(where, manifest, fill), complete=lambda run: run.tflite_path.exists())
