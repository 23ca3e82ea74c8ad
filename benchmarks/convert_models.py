"""Conversion quality and cost of every registered model, in one JSON line.

For each model of ``edgebnn.registry.list_models()`` (paper models are picked up as soon as
they are registered) at its default input (224x224 for ImageNet models) or ``--size``:
LceBconv2d coverage, flatbuffer size against its theoretical minimum, conversion time, parity,
and the local-interpreter latency of the LCE flatbuffer against the float flatbuffer of the same
architecture (its float twin, plain TFLite converter), measured interleaved in one process,
median of ``--runs``. Local latencies are host figures (LCE's portable kernels on x86): the
ratio, not the milliseconds, is the result.

The line holds ``models`` (one record per model; a model that fails to build or convert is a
record with its ``error``, and the others are still measured) and a ``summary``. ``--quick``
converts at 64x64 (or the model's smallest input) where the default is larger, still with the
median of 5 runs.

    python benchmarks/convert_models.py [--models 'quicknet*'] [--size 224] [--runs 5] [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
import traceback

import edgebnn  # noqa: F401  (selects Keras 2 before TensorFlow is imported)


def _latencies(flatbuffers: dict[str, bytes], shape, runs: int, threads: int) -> dict[str, float]:
    import numpy as np
    from larq_compute_engine.tflite.python.interpreter import Interpreter

    x = np.random.default_rng(0).uniform(-1, 1, (1, *shape)).astype("float32")
    interpreters = {k: Interpreter(fb, num_threads=threads) for k, fb in flatbuffers.items()}
    for it in interpreters.values():
        it.predict(x)  # warm-up
    times = {k: [] for k in interpreters}
    for _ in range(runs):  # interleaved, so drift in machine load hits both alike
        for k, it in interpreters.items():
            t0 = time.perf_counter()
            it.predict(x)
            times[k].append((time.perf_counter() - t0) * 1e3)
    return {k: statistics.median(v) for k, v in times.items()}


def measure(card, *, size: int | None, runs: int, threads: int) -> dict:
    import tf_keras as keras

    from edgebnn.converters.flatbuffer import operators
    from edgebnn.converters.lce import convert, convert_float
    from edgebnn.converters.parity import checked
    from edgebnn.converters.report import conversion_report
    from edgebnn.converters.twin import float_twin
    from edgebnn.data.samples import random_inputs
    from edgebnn.models.stats import model_stats
    from edgebnn.registry import create_model

    shape = (size, size, card.input_shape[2]) if size else tuple(card.input_shape)
    keras.utils.set_random_seed(0)  # the same random weights as `edgebnn convert MODEL`
    model = create_model(card.name, input_shape=shape)
    stats = model_stats(model)
    with tempfile.TemporaryDirectory() as tmp:
        model.save(f"{tmp}/model.keras")
        keras_bytes = os.path.getsize(f"{tmp}/model.keras")
    t0 = time.perf_counter()
    flatbuffer = convert(model)
    convert_seconds = time.perf_counter() - t0
    report = conversion_report(model, flatbuffer, parity_inputs=random_inputs(shape, 2))
    float_flatbuffer = convert_float(float_twin(model))
    latency = _latencies({"lce": flatbuffer, "float": float_flatbuffer}, shape, runs, threads)
    floats = report["explain"]["float_binary_layers"]
    keras.backend.clear_session()
    return {
        "model": card.name,
        "input_shape": list(shape),
        "params": stats["params"],
        "binary_params": stats["binary_params"],
        "binary_mac_share": stats["binary_mac_share"],
        "binary_layers": report["binary_layers"],
        "bconv": report["bconv"],
        "bconv_coverage": report["bconv_coverage"],
        "float_binary_layers": floats,
        "documented_exception": "documented exception" in card.notes,
        "keras_bytes": keras_bytes,
        "tflite_bytes": report["tflite_bytes"],
        "minimum_bytes": report["size"]["minimum_bytes"],
        "size_ratio": report["size"]["ratio"],
        "float_tflite_bytes": len(float_flatbuffer),
        "convert_seconds": round(convert_seconds, 2),
        # On the logits when the model ends in a softmax (as the tolerance is): random weights
        # saturate the softmax, whose outputs then agree to 0 whatever the conversion did.
        "parity_on": report["parity"]["checked_on"],
        "parity_max_rel_error": checked(report["parity"])["max_rel_error"],
        "parity_mean_rel_error": checked(report["parity"])["mean_rel_error"],
        "parity_ok": report["parity"]["ok"],
        "lce_ms": round(latency["lce"], 3),
        "float_ms": round(latency["float"], 3),
        "latency_ratio_lce_over_float": round(latency["lce"] / latency["float"], 4),
        "runs": runs,
        "threads": threads,
        "ops": len(operators(flatbuffer)),
    }


QUICK_SIZE = 64


def measure_all(cards, measure) -> dict:
    """Every model's record, a failure recorded in its place, and a summary of them.

    Args:
        cards: the model cards to measure.
        measure: ``measure(card) -> dict``, the record of one model.
    """
    records = []
    for card in cards:
        try:
            records.append(measure(card))
        except Exception as e:  # one model failing must not lose the others
            message = str(e).splitlines()[0][:300] if str(e) else ""
            records.append({"model": card.name, "error": f"{type(e).__name__}: {message}"})
            traceback.print_exc(file=sys.stderr)
    measured = [r for r in records if "error" not in r]
    summary = {
        "models": len(records),
        "measured": len(measured),
        "failed": len(records) - len(measured),
        "failed_models": [r["model"] for r in records if "error" in r],
        "full_bconv_coverage": sum(r["bconv_coverage"] == 1.0 for r in measured),
        "parity_ok": sum(bool(r["parity_ok"]) for r in measured),
    }
    if measured:
        summary["median_latency_ratio_lce_over_float"] = statistics.median(
            r["latency_ratio_lce_over_float"] for r in measured)
        summary["median_size_ratio"] = statistics.median(r["size_ratio"] for r in measured)
    return {"summary": summary, "models": records}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", help="shell glob on the model name (default: every model)")
    p.add_argument("--size", type=int, help="input height and width (default: each model's own)")
    p.add_argument("--runs", type=int, default=5, help="timed runs per flatbuffer (median reported)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--quick", action="store_true",
                   help=f"convert at {QUICK_SIZE}x{QUICK_SIZE} (or the model's smallest input) where the "
                        "default is larger, unless --size")
    args = p.parse_args(argv)
    if args.runs < 5:
        p.error("--runs must be at least 5")
    from edgebnn.registry import list_models

    def one(card):
        small = max(QUICK_SIZE, card.min_input_size)
        size = args.size or (small if args.quick and small < card.input_shape[0] else None)
        return measure(card, size=size, runs=args.runs, threads=args.threads)

    figures = measure_all(list_models(args.models), one)
    print(json.dumps({"benchmark": "convert_models", "quick": args.quick, "size": args.size, "runs": args.runs,
                      "threads": args.threads, **figures}), flush=True)
    # Failed models are in the figures; the script itself fails only when nothing was measured.
    return 0 if figures["summary"]["measured"] else 1


if __name__ == "__main__":
    sys.exit(main())
