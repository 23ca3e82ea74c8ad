"""`edgebnn bench --tune` on this machine for three registered models: what the sweep gains.

Each model (random weights: latency does not depend on them) is converted and swept on the
``local`` device (threads 1 up to the cores x LCE's indirect BGEMM x XNNPACK), by the same
``bench_run`` the command runs. Per model: the chosen configuration and its median, the
default invocation's median (1 thread, both switches off: ``edgebnn bench`` with no flags, a
configuration of the same sweep, so both are measured side by side; on a big.LITTLE host, whose
sweep pins 1 thread, a plain run right after it), the gain
(default / chosen), the fastest configuration regardless of the tie rule, and the achieved
binary GBMAC/s of the chosen one. These are host figures: on x86 LCE runs its portable
reference kernels, so the ranking says nothing about a board. Prints one JSON line.
``--quick``: 64x64 inputs and 10 runs per configuration (full: each model's own input, 30).

    python benchmarks/tune_local.py [--quick] [--models bireal-tiny,sabnn-r18,bnext-tiny]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import edgebnn  # noqa: F401  (legacy Keras before TensorFlow)

MODELS = "bireal-tiny,sabnn-r18,bnext-tiny"


def tune_one(model: str, *, input_size: str | None, runs: int, root: Path) -> dict:
    from edgebnn.converters.convert import convert_run
    from edgebnn.device.bench import bench_configs, bench_run, describe
    from edgebnn.run.sources import parse_source, resolve_source

    run = resolve_source(parse_source(model, input_size=input_size), out=str(root / model))
    convert_run(run)
    configs = bench_configs(None, runs=runs, warmup=3, min_secs=1.0)
    (record,) = bench_run(run, devices="local", configs=configs, tune=True)
    results, choice = record["results"], record["tune"]
    default = next((r for r in results if r["config"]["threads"] == 1 and not r["config"]["indirect_bgemm"]
                    and not r["config"]["xnnpack"] and not r["config"].get("affinity")), None)
    if default is None:  # a big.LITTLE host sweeps 1 thread pinned only: time the plain invocation too
        (plain,) = bench_run(run, devices="local", configs=[configs[0]])
        default = plain["results"][0]
    median = lambda r: r["latency"].get("median_ms") if r["ok"] else None  # noqa: E731
    chosen = results[choice["index"]] if choice["index"] is not None else None
    fastest = results[choice["fastest_index"]] if chosen else None
    return {
        "input_shape": run.manifest["input_shape"],
        "binary_macs": record["binary_macs"],
        "configs": len(results),
        "failed": sum(not r["ok"] for r in results),
        "chosen": describe(chosen["config"]) if chosen else None,
        "chosen_median_ms": median(chosen) if chosen else None,
        "default_median_ms": median(default),
        "gain_over_default": round(median(default) / median(chosen), 3) if chosen and median(default) else None,
        "fastest": describe(fastest["config"]) if fastest else None,
        "fastest_median_ms": median(fastest) if fastest else None,
        "chosen_gbmacs": chosen["roofline"]["achieved_gbmacs"] if chosen else None,
        "sweep_ms": {describe(r["config"]): median(r) for r in results},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="64x64 inputs, 10 runs per configuration")
    parser.add_argument("--models", default=MODELS, help=f"comma-separated registered models [{MODELS}]")
    args = parser.parse_args()
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        models = {m: tune_one(m, input_size="64" if args.quick and m != "bireal-tiny" else None,
                              runs=10 if args.quick else 30, root=Path(tmp)) for m in args.models.split(",")}
    print(json.dumps({"benchmark": "tune_local", "quick": args.quick, "device": "local", "figure_kind": "host",
                      "models": models, "seconds": round(time.perf_counter() - start, 1)}))


if __name__ == "__main__":
    main()
