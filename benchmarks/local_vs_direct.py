"""Latency reported by `edgebnn bench --device local` against a direct call of LCE's interpreter.

Both time the same flatbuffer (bireal-tiny, random weights) at one thread: edgebnn through
its device runner (a subprocess printing the benchmark tool's format, parsed back), the
direct call with ``Interpreter.predict`` in this process. Each sample is the median of 200
(``--quick``: 50) timed runs after 10 warm-up runs; samples alternate between the two to share the machine's
drift; the figures are the median over --samples (>= 5) of the sample medians, the median
of the paired (back-to-back) ratios, the minimum
over all runs (the estimate least disturbed by other load on a shared machine), and their
relative differences. Prints one JSON line.

    python benchmarks/local_vs_direct.py [--samples 7] [--quick]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time

import edgebnn  # noqa: F401

WARMUP = 10


def direct_ms(interpreter, feed, runs: int) -> tuple[float, float]:
    """(median, min) in ms over ``runs`` timed calls after WARMUP."""
    for _ in range(WARMUP):
        interpreter.predict(feed)
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        interpreter.predict(feed)
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times), min(times)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--samples", type=int, help="[7; 5 with --quick]")
    p.add_argument("--quick", action="store_true", help="5 samples of 50 runs instead of 7 of 200")
    args = p.parse_args()
    args.samples = args.samples or (5 if args.quick else 7)
    if args.samples < 5:
        p.error("--samples must be at least 5: the figures are medians of samples")
    runs = 50 if args.quick else 200

    import numpy as np
    from larq_compute_engine.tflite.python.interpreter import Interpreter

    from edgebnn.converters.convert import convert_run
    from edgebnn.device.bench import bench_run
    from edgebnn.device.protocol import BenchConfig
    from edgebnn.run.sources import parse_source, resolve_source

    with tempfile.TemporaryDirectory() as tmp:
        run = resolve_source(parse_source("bireal-tiny"), out=f"{tmp}/run")
        convert_run(run)
        interpreter = Interpreter(run.tflite_path.read_bytes(), num_threads=1)
        shape = (1, *interpreter.input_shapes[0][1:])
        feed = np.random.default_rng(0).uniform(-1, 1, size=shape).astype(interpreter.input_types[0])
        config = [BenchConfig(threads=1, runs=runs, warmup=WARMUP, min_secs=0.0)]
        ours, theirs = [], []
        for _ in range(args.samples):
            latency = bench_run(run, devices="local", configs=config)[0]["results"][0]["latency"]
            ours.append((latency["median_ms"], latency["min_ms"]))
            theirs.append(direct_ms(interpreter, feed, runs))
        e, d = statistics.median(m for m, _ in ours), statistics.median(m for m, _ in theirs)
        e_min, d_min = min(x for _, x in ours), min(x for _, x in theirs)
        print(json.dumps({
            "benchmark": "local_vs_direct",
            "quick": args.quick,
            "samples": args.samples,
            "runs_per_sample": runs,
            "edgebnn_median_ms": round(e, 4),
            "direct_median_ms": round(d, 4),
            "relative_difference": round((e - d) / d, 4),
            "paired_relative_difference": round(statistics.median(a / b - 1 for (a, _), (b, _) in zip(ours, theirs)), 4),
            "edgebnn_min_ms": round(e_min, 4),
            "direct_min_ms": round(d_min, 4),
            "relative_difference_min": round((e_min - d_min) / d_min, 4),
            "target_abs_relative_difference": 0.05,
            "edgebnn_sample_medians_ms": [round(m, 3) for m, _ in ours],
            "direct_sample_medians_ms": [round(m, 3) for m, _ in theirs],
        }))


if __name__ == "__main__":
    main()
