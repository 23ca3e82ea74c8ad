"""The benchmark protocol: one device, one model, several configurations, over any transport.

:func:`bench_device` takes these steps, each timed in the record (``steps_s``):

1. connect;
2. preflight: what the device is, whether it can run the benchmark, and which uploads it has
   already; with ``--tune``, the sweep is planned from the cores it saw;
3. upload what is missing (content-addressed, checksum verified: :mod:`edgebnn.device.uploads`);
4. run every configuration under a time limit, with a cooldown between them, each in its own
   scratch folder, removed with the temperatures read in the same round trip;
5. clean up what a failed configuration left;
6. warn about what only the whole run shows (heat, more threads than cores), and mark it finished.

A failure is recorded with an error kind instead of raised, so one bad configuration (a crash at
4 threads, say) or one unreachable board does not lose the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from edgebnn.device.arch import runtime_file_problems
from edgebnn.device.checks import number, taskset_cpus, whole
from edgebnn.device.diagnose import diagnose, lce_version_warning
from edgebnn.device.errors import DeviceError, ErrorKind
from edgebnn.device.output import OutputError, parse_benchmark_output
from edgebnn.device.preflight import parse_preflight, preflight_argv, problems, temperatures
from edgebnn.device.profiles import DeviceProfile
from edgebnn.device.scratch import end_scratch, in_scratch, split_temps
from edgebnn.device.stats import latency_stats
from edgebnn.device.transport import KILL_GRACE, LIMIT_STATUSES, CommandResult
from edgebnn.device.transports import open_transport
from edgebnn.device.tune import device_sweep, median_interval
from edgebnn.device.uploads import device_files, ensure_uploaded
from edgebnn.device.validity import heat_warning, oversubscribed, oversubscription_warning
from edgebnn.errors import UsageError
from edgebnn.run.records import Result

# What each timing setting may hold (edgebnn.device.checks), and the name a message gives it: its flag.
_CONFIG_CHECKS = {"affinity": ("affinity", taskset_cpus), "threads": ("--threads", whole(0)),
                  "runs": ("--runs", whole(1)), "warmup": ("--warmup", whole(0)),
                  "min_secs": ("--min-secs", number(0, unit="seconds")),
                  "max_secs": ("--max-secs", number(0, above=True, unit="seconds")),
                  "timeout": ("--timeout", number(0, above=True, unit="seconds"))}


@dataclass(frozen=True)
class BenchConfig:
    """Timing settings for one run of the runtime (connection settings live in the profile)."""

    threads: int = 1  # 0: each of the device's default thread counts
    runs: int = 50
    warmup: int = 5
    min_secs: float = 1.0
    max_secs: float = 150.0
    timeout: float = 600.0
    op_profiling: bool = False
    peak_memory: bool = True
    xnnpack: bool = False  # TFLite's XNNPACK delegate for float ops (LCE's published RPi 4B figures use it)
    indirect_bgemm: bool = False  # LCE's indirect BGEMM kernels instead of im2col + BGEMM
    affinity: str = ""  # CPU list for taskset ("4-7"), instead of the profile's; "": the profile's

    def __post_init__(self):
        for key, (name, check) in _CONFIG_CHECKS.items():
            try:
                check(getattr(self, key))
            except ValueError as e:
                raise UsageError(f"bad {name} {getattr(self, key)!r}: give {e}") from None

    def runtime_flags(self) -> list[str]:
        flags = [
            f"--num_threads={self.threads}",
            f"--num_runs={self.runs}",
            f"--warmup_runs={self.warmup}",
            f"--min_secs={self.min_secs}",
            f"--max_secs={self.max_secs}",
        ]
        if self.peak_memory:
            flags.append("--report_peak_memory_footprint=true")
        if self.op_profiling:
            flags.append("--enable_op_profiling=true")
        if self.xnnpack:
            flags.append("--use_xnnpack=true")
        if self.indirect_bgemm:
            flags.append("--use_indirect_bgemm=true")
        return flags


@dataclass
class BenchResult(Result):
    """The outcome of one configuration: figures when ``ok``, an error kind when not (the saved
    :class:`edgebnn.run.records.Result`, its configuration a :class:`BenchConfig`)."""

    config: BenchConfig = None

    def to_dict(self) -> dict:
        return {**super().to_dict(), "config": asdict(self.config)}


@dataclass
class DeviceRun:
    """Everything one device's benchmark produced, including how it failed."""

    profile: DeviceProfile
    fingerprint: dict = field(default_factory=dict)
    runtime: dict = field(default_factory=dict)
    results: list[BenchResult] = field(default_factory=list)
    error_kind: str = ""  # "" or an ErrorKind: the device could not be used at all
    error: str = ""
    warnings: list[str] = field(default_factory=list)
    temps: dict = field(default_factory=dict)
    steps: dict = field(default_factory=dict)  # seconds per step
    uploads: dict = field(default_factory=dict)
    connections: int = 0
    planned: int = 0  # the configurations the run set out to measure (a --tune sweep's, once known)
    finished: bool = False  # the protocol ran to its end (False while running, or when interrupted)

    @property
    def ok(self) -> bool:
        return not self.error_kind and any(r.ok for r in self.results)

    @property
    def ran(self) -> int:
        """How many configurations ran (failed ones included; those skipped after a lost connection not)."""
        return sum(r.error_kind != ErrorKind.SKIPPED for r in self.results)

    @property
    def complete(self) -> bool:
        """Every planned configuration ran and the protocol finished."""
        return self.finished and not self.error_kind and self.ran == self.planned


def expand_threads(profile: DeviceProfile, configs: list[BenchConfig]) -> list[BenchConfig]:
    """Replace ``threads=0`` ("the device's default") by one configuration per profile thread count."""
    return [replace(c, threads=t) for c in configs for t in (profile.threads if c.threads == 0 else (c.threads,))]


def summarize(device: str, config: BenchConfig, stdout: str) -> BenchResult:
    """Turn the runtime's output into a result; unparsable output is kept raw."""
    try:
        figures = parse_benchmark_output(stdout)
    except OutputError as e:
        return BenchResult(device, config, ok=False, error_kind=ErrorKind.UNPARSABLE,
                           error=f"{e}; the raw output is saved in the result", raw=stdout)
    timed = figures["timed"]
    if "per_run_us" in figures:
        latency = latency_stats(figures["per_run_us"])
    else:  # the tool prints aggregates only: no percentiles without per-run times
        latency = {"runs": int(timed["count"]), "mean_ms": timed["avg"] / 1e3, "std_ms": timed["std"] / 1e3,
                   "min_ms": timed["min"] / 1e3, "max_ms": timed["max"] / 1e3}
    if figures["memory"].get("peak_mb") is not None:
        latency["peak_memory_mb"] = figures["memory"]["peak_mb"]
    total_secs = timed["avg"] * timed["count"] / 1e6
    # The runtime stops at min_secs of wall time, loop overhead included: the sum of the timed runs
    # falls a little short of it (on a loaded host by a few %). Only a run cut short (by max_secs)
    # falls far short.
    valid = timed["count"] >= config.runs and total_secs >= 0.9 * config.min_secs
    interval = median_interval({"latency": latency, "figures": figures})  # once: a bootstrap is not free
    return BenchResult(device, config, ok=True, valid=valid, latency=latency, figures=figures, raw=stdout,
                       median_interval_ms=[round(x, 6) for x in interval] if interval else None)


async def run_config(transport, profile: DeviceProfile, config: BenchConfig, *, command: list[str],
                     scratch: str, context: dict | None = None) -> BenchResult:
    """Run one configuration in the scratch folder ``scratch`` on the device.

    Args:
        command: the runtime's argv without the timing flags.
        context: what a failure is diagnosed with (:func:`edgebnn.device.diagnose.diagnose`'s
            ``arch``, ``os_bits``, ``mem_available_mb``, ``model_bytes``, LCE versions).

    Raises:
        DeviceError: the connection to the device was lost.
    """
    start = time.perf_counter()
    argv = command + config.runtime_flags()
    if affinity := config.affinity or profile.affinity:
        argv = ["taskset", "-c", affinity, *argv]
    # The wrapper enforces the limit on the device; the transport's own is a backstop.
    cmd = await transport.run(in_scratch(argv, scratch=scratch, zones=profile.thermal_zones, limit=config.timeout),
                              timeout=config.timeout + KILL_GRACE + 10, watch=True)
    cmd.stderr, temps = split_temps(cmd.stderr)
    # timeout's own statuses after its limit (coreutils and BusyBox), not the runtime's own code.
    limit_passed = cmd.exit_status in LIMIT_STATUSES and time.perf_counter() - start >= config.timeout * 0.95
    if cmd.timed_out or limit_passed:
        result = BenchResult(profile.name, config, ok=False, error_kind=ErrorKind.TIMEOUT,
                             error=f"no result within {config.timeout:g} s: the runtime was killed on the device "
                                   "(raise --timeout for a slow model)", raw=cmd.stdout + cmd.stderr)
    else:
        result = _outcome(profile.name, config, cmd, context or {})
    result.seconds = time.perf_counter() - start
    if temps is not None:
        result.temps_c = temperatures(temps)
    return result


def _outcome(device: str, config: BenchConfig, cmd: CommandResult, context: dict) -> BenchResult:
    """What a runtime that ended within its limit did: figures, or the cause of its failure."""
    found = diagnose(cmd.exit_status, cmd.stdout, cmd.stderr, flags=config.runtime_flags(), **context)
    if cmd.exit_status != 0:
        return BenchResult(device, config, ok=False, raw=cmd.stdout + cmd.stderr,
                           error_kind=ErrorKind(found.kind) if found else ErrorKind.CRASH,
                           error=found.message if found else f"runtime exited with {cmd.exit_status}")
    result = summarize(device, config, cmd.stdout)
    if found is not None and result.ok:  # it ran, but not as asked: not a valid figure
        result.valid, result.error_kind, result.error = False, ErrorKind.FLAG_IGNORED, found.message
    return result


@contextlib.contextmanager
def _timed(steps: dict, name: str):
    """Add the time spent in the block to ``steps[name]``."""
    start = time.perf_counter()
    try:
        yield
    finally:
        steps[name] = round(steps.get(name, 0.0) + time.perf_counter() - start, 4)


async def bench_device(profile: DeviceProfile, graph: str | Path, configs: list[BenchConfig], *,
                       accept_new_host_key: bool = False, on_result=None,
                       converter_lce_version: str | None = None, tune: bool = False) -> DeviceRun:
    """Benchmark ``graph`` on one device under every configuration; never raises for the device.

    Args:
        profile: the device.
        graph: the local flatbuffer.
        configs: the configurations, run in order with ``profile.cooldown`` between them
            (``threads=0``: each of the profile's thread counts).
        accept_new_host_key: trust a board whose host key is not yet known.
        on_result: called with the :class:`DeviceRun` after each configuration (to save it).
        converter_lce_version: the LCE version that converted ``graph`` (warned about when the
            runtime's differs).
        tune: run :func:`edgebnn.device.tune.sweep` of ``configs[0]`` instead (threads up to the
            cores the preflight sees).

    Returns:
        The run: ``error_kind`` set when the device could not be used at all.
    """
    # The profile's pinning, recorded with each configuration (the record says where it ran).
    configs = [replace(c, affinity=c.affinity or profile.affinity) for c in expand_threads(profile, configs)]
    bench = _DeviceBench(profile, Path(graph), accept_new_host_key=accept_new_host_key, on_result=on_result,
                         converter_lce_version=converter_lce_version,
                         planned=0 if tune else len(configs))  # a sweep's size is known after the preflight
    try:
        uploads, command = device_files(profile, bench.graph)
        await bench.connect_and_preflight(uploads)  # 1. connect, 2. preflight
        if tune:
            configs = bench.plan_sweep(configs[0])  # the sweep, sized by what the preflight saw
        await bench.upload(uploads)  # 3. upload what is missing
        await bench.run_configs(configs, command)  # 4. run every configuration
    except DeviceError as e:
        bench.run.error_kind, bench.run.error = e.kind, str(e)
    finally:
        await bench.clean_up()  # 5. clean up what a failed configuration left
    return bench.finish()  # 6. warn about heat and oversubscribed threads; finished


class _DeviceBench:
    """One device's run in progress: the steps of :func:`bench_device` on its :class:`DeviceRun` and transport."""

    def __init__(self, profile: DeviceProfile, graph: Path, *, accept_new_host_key: bool, on_result,
                 converter_lce_version: str | None, planned: int):
        self.profile, self.graph = profile, graph
        self.run = DeviceRun(profile, planned=planned)
        self.transport = open_transport(profile, accept_new_host_key=accept_new_host_key)
        self.scratch = f"{profile.workdir.rstrip('/')}/run-{uuid.uuid4().hex[:12]}"
        self.on_result = on_result
        self.converter_lce_version = converter_lce_version

    async def connect_and_preflight(self, uploads: dict) -> None:
        """Steps 1 and 2: reach the device, then read what it is, whether it can run the benchmark
        and which of ``uploads`` it has already, in one command.

        Raises:
            DeviceError: it cannot be reached, or (``preflight``) it cannot run the benchmark.
        """
        run, profile = self.run, self.profile
        with _timed(run.steps, "connect"):
            await self.transport.connect()
        with _timed(run.steps, "preflight"):
            argv = preflight_argv(profile, runtime="" if profile.runtime_file else None, deep=False,
                                  uploads=list(uploads.values()))
            run.fingerprint = parse_preflight((await self.transport.run(argv, timeout=60)).stdout)
            run.temps["before"] = run.fingerprint["temps_c"]
            errors, run.warnings = problems(profile, run.fingerprint, deep=False,
                                            check_runtime=not profile.runtime_file)
            errors += runtime_file_problems(profile, run.fingerprint)
            if errors:
                raise DeviceError(ErrorKind.PREFLIGHT, "; ".join(errors))
        run.runtime = _runtime_info(profile, run.fingerprint)

    def plan_sweep(self, base: BenchConfig) -> list[BenchConfig]:
        """``--tune``'s configurations: :func:`edgebnn.device.tune.device_sweep` of ``base`` over the
        cores the preflight saw; a governor that may change the clock is warned about."""
        run = self.run
        configs, warnings = device_sweep(base, run.fingerprint, affinity=self.profile.affinity)
        run.planned = len(configs)
        run.warnings += warnings
        if run.fingerprint.get("governor") not in (None, "performance") and self.profile.board:
            run.warnings.append("the sweep may be unreliable: the governor is not `performance`, so the clock "
                                "may change between configurations")
        return configs

    async def upload(self, uploads: dict) -> None:
        """Step 3: upload what the device lacks; the record names the runtime (and runner) by sha256.

        Raises:
            DeviceError: ``disk_full`` or ``upload``.
        """
        run = self.run
        with _timed(run.steps, "upload"):
            run.uploads = await ensure_uploaded(self.transport, self.profile, uploads, run.fingerprint["disk_free_mb"],
                                                present=set(run.fingerprint.pop("present")))
        if "runtime" in run.uploads:
            run.runtime.update(path=run.uploads["runtime"]["path"], sha256=run.uploads["runtime"]["sha256"])
        if "runner" in run.uploads:
            run.runtime["runner_sha256"] = run.uploads["runner"]["sha256"]

    async def run_configs(self, configs: list[BenchConfig], command: list[str]) -> None:
        """Step 4: every configuration in turn, ``cooldown`` seconds apart, each result saved as it comes.

        A lost connection ends the step: the configurations not run yet are recorded as skipped.
        """
        run, profile = self.run, self.profile
        context = self._diagnosis_context()
        if warning := lce_version_warning(run.runtime.get("lce_version"), self.converter_lce_version):
            run.warnings.append(warning)
        if any(c.op_profiling for c in configs) and profile.runtime == "python":
            run.warnings.append("op profiling needs lce_benchmark_model: edgebnn's python runner does not profile ops")
        with _timed(run.steps, "run"):
            for i, config in enumerate(configs):
                if i and profile.cooldown:
                    await asyncio.sleep(profile.cooldown)
                try:
                    result = await self._measure(config, command, context)
                except DeviceError as e:
                    run.results.append(BenchResult(profile.name, config, ok=False, error_kind=e.kind, error=str(e)))
                    run.results += [BenchResult(profile.name, rest, ok=False, error_kind=ErrorKind.SKIPPED,
                                                error=f"not run: {e}") for rest in configs[i + 1:]]
                    break
                self._keep(result, context)

    def _diagnosis_context(self) -> dict:
        """What a failed configuration is diagnosed with (:func:`edgebnn.device.diagnose.diagnose`)."""
        found = self.run.fingerprint
        return {"arch": found.get("arch", ""), "os_bits": found.get("os_bits"),
                "mem_available_mb": found.get("mem_available_mb"), "model_bytes": self.graph.stat().st_size,
                "runtime_lce_version": self.run.runtime.get("lce_version"),
                "converter_lce_version": self.converter_lce_version}

    async def _measure(self, config: BenchConfig, command: list[str], context: dict) -> BenchResult:
        """One configuration (:func:`run_config`); a bug reading it is its error, not the run's.

        Raises:
            DeviceError: the connection to the device was lost.
        """
        try:
            return await run_config(self.transport, self.profile, config, command=command, scratch=self.scratch,
                                    context=context)
        except DeviceError:
            raise
        except Exception as e:  # the other configurations are kept
            return BenchResult(self.profile.name, config, ok=False, error_kind=ErrorKind.INTERNAL,
                               error=f"{type(e).__name__}: {e} (a bug in edgebnn; the other configurations are kept)")

    def _keep(self, result: BenchResult, context: dict) -> None:
        """Add ``result`` to the run (invalid when its threads exceed the cores) and save the run; the
        first LCE version a runtime prints is the run's (and diagnoses the configurations after it)."""
        run = self.run
        oversubscribed(result, run.fingerprint)
        run.results.append(result)
        if result.figures.get("lce_version") and not run.runtime.get("lce_version"):
            run.runtime["lce_version"] = context["runtime_lce_version"] = result.figures["lce_version"]
            if warning := lce_version_warning(run.runtime["lce_version"], self.converter_lce_version):
                run.warnings.append(warning)
        if self.on_result:
            self.on_result(self.run)

    async def clean_up(self) -> None:
        """Step 5: remove what a failed configuration left (a successful one cleans up after itself)."""
        run, transport = self.run, self.transport
        with _timed(run.steps, "cleanup"):
            try:
                if run.fingerprint and not (run.results and run.results[-1].temps_c is not None):
                    if not transport.connected:  # the link dropped mid-run: reconnect to leave the board clean
                        await transport.connect()
                    after = await transport.run(end_scratch(self.scratch, self.profile.thermal_zones), timeout=30)
                    run.temps["after"] = temperatures(after.stdout)
            except DeviceError as e:
                run.warnings.append(f"cleanup on {self.profile.name} failed: {e}")
            finally:
                run.connections = transport.connections
                await transport.close()

    def finish(self) -> DeviceRun:
        """Step 6: the temperatures after the run, the warnings only the whole run shows; the run
        marked finished and saved."""
        run = self.run
        if run.results and run.results[-1].temps_c is not None:
            run.temps["after"] = run.results[-1].temps_c
        run.warnings += [w for w in (heat_warning(run), oversubscription_warning(run)) if w]
        run.finished = True
        if self.on_result:
            self.on_result(run)
        return run


def _runtime_info(profile: DeviceProfile, fingerprint: dict) -> dict:
    found = fingerprint.get("runtime", {})
    if profile.runtime == "python":
        return {"kind": "python", "path": found.get("path", profile.python), "lce_version": found.get("lce_version")}
    return {"kind": "lce_benchmark_model", "path": found.get("path", profile.runtime), "sha256": found.get("sha256")}


async def bench_devices(plans: list[tuple[DeviceProfile, list[BenchConfig]]], graph: str | Path, *,
                        accept_new_host_key: bool = False, on_result=None,
                        converter_lce_version: str | None = None, tune: bool = False) -> list[DeviceRun]:
    """Benchmark ``graph`` on several devices concurrently (one connection each), each with its configurations."""
    runs = await asyncio.gather(
        *(bench_device(p, graph, configs, accept_new_host_key=accept_new_host_key, on_result=on_result,
                       converter_lce_version=converter_lce_version, tune=tune) for p, configs in plans),
        return_exceptions=True,
    )
    for i, r in enumerate(runs):
        if isinstance(r, BaseException):  # a bug, not a device fault: still report the others
            runs[i] = DeviceRun(plans[i][0], error_kind=ErrorKind.INTERNAL, error=f"{type(r).__name__}: {r}")
    return runs
