"""The benchmark protocol: one device, one model, several configurations.

Each configuration is run, parsed and summarized into a :class:`BenchResult`; a failure is
recorded with an error kind instead of raised, so one bad configuration (a crash at 4
threads, say) does not lose the others.
"""

from __future__ import annotations

import sys
import time
from dataclasses import asdict, dataclass, field

from edgebnn.device.output import OutputError, parse_benchmark_output
from edgebnn.device.profiles import DeviceProfile
from edgebnn.device.stats import latency_stats


@dataclass(frozen=True)
class BenchConfig:
    """Timing settings for one run of the runtime (connection settings live in the profile)."""

    threads: int = 1
    runs: int = 50
    warmup: int = 5
    min_secs: float = 1.0
    max_secs: float = 150.0
    timeout: float = 600.0

    def runtime_flags(self) -> list[str]:
        return [
            f"--num_threads={self.threads}",
            f"--num_runs={self.runs}",
            f"--warmup_runs={self.warmup}",
            f"--min_secs={self.min_secs}",
            f"--max_secs={self.max_secs}",
            "--report_peak_memory_footprint=true",
        ]


@dataclass
class BenchResult:
    """The outcome of one configuration: figures when ``ok``, an error kind when not."""

    device: str
    config: BenchConfig
    ok: bool
    error_kind: str = ""  # "", "crash", "timeout", "unparsable"
    error: str = ""
    valid: bool = False
    latency: dict = field(default_factory=dict)
    figures: dict = field(default_factory=dict)
    raw: str = ""
    seconds: float = 0.0

    def to_dict(self) -> dict:
        return asdict(self)


def runtime_argv(profile: DeviceProfile, graph: str) -> list[str]:
    if profile.runtime == "python":
        return [sys.executable, "-m", "edgebnn.device.runner", f"--graph={graph}"]
    return [profile.runtime, f"--graph={graph}"]


def summarize(device: str, config: BenchConfig, stdout: str) -> BenchResult:
    """Turn the runtime's output into a result; unparsable output is kept raw."""
    try:
        figures = parse_benchmark_output(stdout)
    except OutputError as e:
        return BenchResult(device, config, ok=False, error_kind="unparsable", error=str(e), raw=stdout)
    timed = figures["timed"]
    if "per_run_us" in figures:
        latency = latency_stats(figures["per_run_us"])
    else:  # the tool prints aggregates only: no percentiles without per-run times
        latency = {"runs": int(timed["count"]), "mean_ms": timed["avg"] / 1e3, "std_ms": timed["std"] / 1e3,
                   "min_ms": timed["min"] / 1e3, "max_ms": timed["max"] / 1e3}
    total_secs = timed["avg"] * timed["count"] / 1e6
    valid = timed["count"] >= config.runs and total_secs >= config.min_secs
    return BenchResult(device, config, ok=True, valid=valid, latency=latency, figures=figures, raw=stdout)


async def run_config(transport, profile: DeviceProfile, graph: str, config: BenchConfig) -> BenchResult:
    start = time.perf_counter()
    cmd = await transport.run(runtime_argv(profile, graph) + config.runtime_flags(), timeout=config.timeout)
    if cmd.timed_out:
        result = BenchResult(profile.name, config, ok=False, error_kind="timeout",
                             error=f"no result within {config.timeout:g} s", raw=cmd.stdout + cmd.stderr)
    elif cmd.exit_status != 0:
        last = (cmd.stderr.strip().splitlines() or ["no message"])[-1]
        result = BenchResult(profile.name, config, ok=False, error_kind="crash",
                             error=f"runtime exited with {cmd.exit_status}: {last[:300]}", raw=cmd.stdout + cmd.stderr)
    else:
        result = summarize(profile.name, config, cmd.stdout)
    result.seconds = time.perf_counter() - start
    return result


async def bench_local(profile: DeviceProfile, graph: str, configs: list[BenchConfig]) -> tuple[dict, list[BenchResult]]:
    """Benchmark ``graph`` on this machine under every configuration.

    Returns:
        ``(fingerprint, results)``.
    """
    from edgebnn.device.local import LocalTransport

    transport = LocalTransport()
    try:
        fingerprint = await transport.fingerprint()
        results = [await run_config(transport, profile, graph, c) for c in configs]
    finally:
        await transport.close()
    return fingerprint, results
