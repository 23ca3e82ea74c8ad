"""edgebnn's device-side benchmark runner: LCE's Python interpreter, timed like the tool.

Runs on any machine with the ``larq-compute-engine`` wheel and prints what TFLite's
``benchmark_model`` (and so LCE's ``lce_benchmark_model``) prints, with the same flags, so
one parser reads both; it adds one line with every per-run time, which the tool does not give.
Standalone on purpose (standard library, numpy and LCE only): it is copied to boards as is.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import resource
import statistics
import sys
import time
import types

import numpy as np

PER_RUN_PREFIX = "edgebnn per-run us:"


def _flag(value: str) -> bool:
    return value.lower() in ("1", "true", "yes")


def _summary(times_us: list[float]) -> str:
    std = statistics.pstdev(times_us) if len(times_us) > 1 else 0.0
    return (
        f"count={len(times_us)} first={times_us[0]:.0f} curr={times_us[-1]:.0f} "
        f"min={min(times_us):.0f} max={max(times_us):.0f} "
        f"avg={statistics.fmean(times_us):.6g} std={std:.0f}"
    )


def _timed_loop(invoke, min_runs: int, min_secs: float, max_secs: float) -> list[float]:
    # benchmark_model's rule: at least min_runs and at least min_secs, never past max_secs.
    times, start = [], time.perf_counter()
    while True:
        t0 = time.perf_counter()
        invoke()
        times.append((time.perf_counter() - t0) * 1e6)
        elapsed = time.perf_counter() - start
        if (len(times) >= min_runs and elapsed >= min_secs) or elapsed >= max_secs:
            return times


def _peak_rss_mb() -> float:
    """This process's peak resident memory, in MB.

    Linux: VmHWM, the high-water mark of this program's own memory. Not ``ru_maxrss``, which
    survives exec: started by a large parent (edgebnn with TensorFlow loaded), the forked child
    would report the parent's size.
    """
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024  # bytes on macOS, KiB elsewhere


def _lce_interpreter():
    """LCE's Interpreter without TensorFlow: the package's ``__init__`` imports the converter
    (and with it TensorFlow, seconds of start-up), the interpreter needs neither."""
    if "larq_compute_engine" not in sys.modules:
        spec = importlib.util.find_spec("larq_compute_engine")
        if spec is None or not spec.submodule_search_locations:
            raise SystemExit("larq-compute-engine is not installed for this Python: pip install larq-compute-engine")
        package = types.ModuleType("larq_compute_engine")
        package.__path__ = list(spec.submodule_search_locations)
        sys.modules["larq_compute_engine"] = package
    from larq_compute_engine.tflite.python.interpreter import Interpreter

    return Interpreter


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--graph", required=True)
    p.add_argument("--num_threads", type=int, default=1)
    p.add_argument("--num_runs", type=int, default=50)
    p.add_argument("--min_secs", type=float, default=1.0)
    p.add_argument("--max_secs", type=float, default=150.0)
    p.add_argument("--warmup_runs", type=int, default=1)
    p.add_argument("--warmup_min_secs", type=float, default=0.5)
    p.add_argument("--use_reference_bconv", type=_flag, default=False)
    p.add_argument("--use_indirect_bgemm", type=_flag, default=False)
    p.add_argument("--use_xnnpack", type=_flag, default=False)
    p.add_argument("--report_peak_memory_footprint", type=_flag, default=False)
    p.add_argument("--enable_op_profiling", type=_flag, default=False)
    args = p.parse_args(argv)

    Interpreter = _lce_interpreter()

    print("STARTING!")
    try:  # the import too: a Python before 3.8 has no importlib.metadata
        from importlib import metadata

        print(f"LCE version: [{metadata.version('larq-compute-engine')}]")
    except Exception:  # noqa: BLE001  (the version is informative; the import below is the test)
        pass
    print(f"Graph: [{args.graph}]")
    print(f"Num threads: [{args.num_threads}]")
    try:
        with open(args.graph, "rb") as f:
            flatbuffer = f.read()
    except OSError as e:
        print(f"Failed to read model {args.graph}: {e}", file=sys.stderr)
        return 1
    print(f"The input model file size (MB): {len(flatbuffer) / 1e6:.6f}")
    rss_start = _peak_rss_mb()
    t0 = time.perf_counter()
    interpreter = Interpreter(
        flatbuffer,
        num_threads=args.num_threads,
        use_reference_bconv=args.use_reference_bconv,
        use_indirect_bgemm=args.use_indirect_bgemm,
        use_xnnpack=args.use_xnnpack,
    )
    init_us = (time.perf_counter() - t0) * 1e6
    rss_init = _peak_rss_mb()
    print(f"Initialized session in {init_us / 1e3:.3f}ms.")

    rng = np.random.default_rng(0)
    inputs = []
    for shape, dtype in zip(interpreter.input_shapes, interpreter.input_types):
        shape = (1, *shape[1:])
        if np.issubdtype(dtype, np.integer):
            info = np.iinfo(dtype)
            inputs.append(rng.integers(info.min, info.max, size=shape, dtype=dtype, endpoint=True))
        else:
            inputs.append(rng.uniform(-1, 1, size=shape).astype(dtype))
    feed = inputs[0] if len(inputs) == 1 else inputs

    def invoke():
        interpreter.predict(feed)

    for label, runs, min_secs in (
        ("warmup", args.warmup_runs, args.warmup_min_secs),
        ("timed", args.num_runs, args.min_secs),
    ):
        print(
            f"Running benchmark for at least {runs} iterations and at least {min_secs} seconds "
            f"but terminate if exceeding {args.max_secs} seconds."
        )
        times = _timed_loop(invoke, runs, min_secs, args.max_secs)
        print(_summary(times))
        print()
        if label == "warmup":
            warmup = times
    print(
        f"Inference timings in us: Init: {init_us:.0f}, First inference: {warmup[0]:.0f}, "
        f"Warmup (avg): {statistics.fmean(warmup):.6g}, Inference (avg): {statistics.fmean(times):.6g}"
    )
    rss_end = _peak_rss_mb()
    print(
        "Memory footprint delta from the start of the tool (MB): "
        f"init={rss_init - rss_start:.4f} overall={rss_end - rss_start:.4f}"
    )
    if args.report_peak_memory_footprint:
        print(f"Overall peak memory footprint (MB) via periodic monitoring: {rss_end:.4f}")
    print(PER_RUN_PREFIX, " ".join(f"{t:.1f}" for t in times))
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    sys.exit(main())
