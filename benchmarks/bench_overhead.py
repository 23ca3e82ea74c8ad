"""Overhead of `edgebnn bench` over loopback SSH beyond the runtime's own time.

A real sshd on 127.0.0.1 (tests/sshd.py) is the board; its runtime is edgebnn's python
runner. Each sample times a benchmark through the harness (connect, preflight, upload,
run, parse, clean up) and, right after, the same runner command run directly on this
machine; the overhead is the difference. "first" uses a fresh workdir on the board (model
and runner uploaded), "repeat" the same workdir again (both reused by hash). Figures are
medians over --samples. ``remote_true_s`` is the cost of one empty remote command on this
"board" (its login shell's start-up; a repeat run needs two commands). Both the in-process harness (`edgebnn.device.bench.bench_run`) and the full
`edgebnn bench` command (a new Python process: interpreter and import start-up included)
are reported. Prints one JSON line. ``--quick``: 3 samples instead of 5 (the line says so).

    python benchmarks/bench_overhead.py [--samples 5] [--quick]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from sshd import start_sshd  # noqa: E402

import edgebnn  # noqa: E402,F401

FLAGS = ["--runs", "20", "--warmup", "2", "--min-secs", "0", "--threads", "1", "--cooldown", "0"]


def direct_seconds(graph: Path) -> float:
    """The runtime alone: the runner on the same model with the same flags, on this machine."""
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "edgebnn.device.runner", f"--graph={graph}", "--num_threads=1",
                    "--num_runs=20", "--warmup_runs=2", "--min_secs=0", "--report_peak_memory_footprint=true"],
                   check=True, capture_output=True)
    return time.perf_counter() - start


def remote_command_seconds(profile, samples: int = 5) -> float:
    """What one remote command costs on this "board" (`true` over the open connection): the
    board's login shell starts for each, and a repeat run needs two (preflight, run)."""
    import asyncio

    from edgebnn.device.ssh import SshTransport

    async def go():
        transport = SshTransport(profile)
        await transport.connect()
        times = []
        for _ in range(samples):
            start = time.perf_counter()
            await transport.run(["true"], timeout=30)
            times.append(time.perf_counter() - start)
        await transport.close()
        return statistics.median(times)

    return asyncio.run(go())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--samples", type=int, help="[5; 3 with --quick]")
    p.add_argument("--quick", action="store_true", help="3 samples instead of 5")
    args = p.parse_args()
    args.samples = args.samples or (3 if args.quick else 5)

    from edgebnn.converters.convert import convert_run
    from edgebnn.device.bench import bench_run
    from edgebnn.device.protocol import BenchConfig
    from edgebnn.run.sources import parse_source, resolve_source

    with tempfile.TemporaryDirectory() as tmp, start_sshd(Path(tmp)) as sshd:
        run = resolve_source(parse_source("bireal-tiny"), out=f"{tmp}/run")
        convert_run(run)
        config = [BenchConfig(threads=1, runs=20, warmup=2, min_secs=0.0)]
        figures: dict[str, list[float]] = {k: [] for k in ("lib_first", "lib_repeat", "cli_first", "cli_repeat")}
        for i in range(args.samples):
            for via in ("lib", "cli"):
                listing = Path(tmp) / f"devices-{via}-{i}.toml"
                listing.write_text(sshd.toml("loopback", workdir=f"{tmp}/board/{via}-{i}"))
                for phase in ("first", "repeat"):
                    start = time.perf_counter()
                    if via == "lib":
                        (record,) = bench_run(run, devices="loopback", configs=config, devices_file=listing,
                                               cooldown=0)
                        assert record["ok"], record["error"] or record["results"]
                    else:
                        subprocess.run([str(Path(sys.executable).parent / "edgebnn"), "bench", str(run.path), "--device",
                                        "loopback", "--devices-file", str(listing), *FLAGS, "--json"],
                                       check=True, capture_output=True)
                    harness = time.perf_counter() - start
                    figures[f"{via}_{phase}"].append(harness - direct_seconds(run.tflite_path))
        median = {k: round(statistics.median(v), 3) for k, v in figures.items()}
        shell = remote_command_seconds(sshd.profile("loopback"))
        print(json.dumps({
            "benchmark": "bench_overhead",
            "quick": args.quick,
            "samples": args.samples,
            "overhead_first_s": median["lib_first"],
            "overhead_repeat_s": median["lib_repeat"],
            "cli_overhead_first_s": median["cli_first"],
            "cli_overhead_repeat_s": median["cli_repeat"],
            "target_first_s": 1.5,
            "target_repeat_s": 0.5,
            "remote_true_s": round(shell, 3),
            # Remote commands per run: preflight + one per configuration (+ one per upload).
            "remote_commands_first": 4,
            "remote_commands_repeat": 2,
            "model_bytes": run.tflite_path.stat().st_size,
        }))


if __name__ == "__main__":
    main()
