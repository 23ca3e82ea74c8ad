"""The benchmark protocol: one device, one model, several configurations, over any transport.

Numbered steps, each timed: connect -> preflight (which also reports the uploads the board
already has) -> upload what is missing (content-addressed, checksum verified) -> run every
configuration under a time limit, with a cooldown between them (each in its own scratch
folder, removed with the temperatures read in the same round trip) -> clean up what a failed
configuration left. A failure is recorded with an error kind instead of raised, so one bad
configuration (a crash at 4 threads, say) or one unreachable board does not lose the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
import uuid
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from edgebnn.device.diagnose import diagnose, lce_version_warning
from edgebnn.device.errors import DeviceError, ErrorKind
from edgebnn.device.output import OutputError, parse_benchmark_output
from edgebnn.device.preflight import TEMPS, parse_preflight, preflight_argv, problems, temperatures
from edgebnn.device.profiles import DeviceProfile
from edgebnn.device.stats import latency_stats
from edgebnn.device.transport import KILL_GRACE, LIMIT_STATUSES, Upload, open_transport
from edgebnn.device.tune import check_cpu_list, median_interval
from edgebnn.errors import UsageError, shell_command
from edgebnn.run.rundir import sha256_of

# Runs the runtime ("$@") in the scratch folder "$1" under a time limit of "$3" seconds, removes
# the folder, and reports the SoC temperatures (of the thermal zones "$2" names) on stderr: in the
# happy path a configuration costs one round trip, cleanup included.
# The runtime gets a process group of its own (setsid) with its `timeout`, recorded in .pgid. A
# watchdog reads our stdin, which edgebnn holds open and never writes: it ends when edgebnn does
# (Ctrl-C, SIGKILL, a closed SSH channel), and then the whole group is killed. Only once the
# runtime is dead is the scratch folder removed; SIGPIPE is ignored so that a message to a stderr
# nobody reads any more (edgebnn is gone) cannot end the wrapper before its cleanup.
_IN_SCRATCH = r"""
trap '' PIPE
scratch=$1 zones=$2 limit=$3; shift 3
mkdir -p "$scratch" && cd "$scratch" || exit 125
exec 3<&0
if command -v setsid >/dev/null 2>&1; then
  setsid timeout -k KILL_GRACE "$limit" "$@" </dev/null 3<&- &
else
  timeout -k KILL_GRACE "$limit" "$@" </dev/null 3<&- &
fi
pid=$!
echo "$pid" > .pgid
(while read -r _ <&3; do :; done; kill -KILL -"$pid" 2>/dev/null; kill -KILL "$pid" 2>/dev/null) &
watch=$!
exec 3<&-
wait "$pid"; status=$?
kill "$watch" 2>/dev/null
kill -KILL -"$pid" 2>/dev/null
cd / && rm -rf "$scratch"
printf 'edgebnn-temps: ' >&2; (TEMPS) >&2
exit $status
""".replace("(TEMPS)", "(" + TEMPS + ")").replace("KILL_GRACE", str(KILL_GRACE))
# Ends what a configuration left in the scratch folder "$1" (its runtime's group, when that
# group's leader still works in the folder: a pid reused since is never touched), then removes it.
_END_SCRATCH = r"""
scratch=$1 zones=$2
if [ -f "$scratch/.pgid" ]; then
  pg=$(cat "$scratch/.pgid")
  [ "$(readlink "/proc/$pg/cwd" 2>/dev/null)" = "$scratch" ] && kill -KILL -"$pg" 2>/dev/null
fi
rm -rf "$scratch"
TEMPS
""".replace("TEMPS", TEMPS)
TEMPS_MARK = "edgebnn-temps: "


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
        try:
            check_cpu_list(self.affinity)
        except ValueError as e:
            raise UsageError(f"bad affinity {self.affinity!r}: give {e}") from None
        counts = {"threads": (self.threads, 0), "runs": (self.runs, 1), "warmup": (self.warmup, 0)}
        for name, (value, low) in counts.items():
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise UsageError(f"bad --{name} {value!r}: give an integer of at least {low}")
        seconds = {"min-secs": (self.min_secs, True), "max-secs": (self.max_secs, False),
                   "timeout": (self.timeout, False)}
        for name, (value, zero_ok) in seconds.items():
            if not (isinstance(value, (int, float)) and math.isfinite(value) and (value > 0 or zero_ok and value == 0)):
                raise UsageError(f"bad --{name} {value!r}: give a finite number of seconds "
                                 f"{'of at least 0' if zero_ok else 'above 0'}")

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
class BenchResult:
    """The outcome of one configuration: figures when ``ok``, an error kind when not."""

    device: str
    config: BenchConfig
    ok: bool
    error_kind: str = ""  # "" or an ErrorKind
    error: str = ""
    valid: bool = False
    latency: dict = field(default_factory=dict)
    figures: dict = field(default_factory=dict)
    raw: str = ""
    seconds: float = 0.0
    temps_c: list | None = None  # SoC temperatures right after this configuration (None: not read)
    median_interval_ms: list | None = None  # (median, low, high): what --tune's rule compares
    cores_available: int | None = None  # the online cores it could use (those pinned to), as the preflight saw

    def to_dict(self) -> dict:
        return asdict(self)


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
    argv = ["sh", "-c", _IN_SCRATCH, "sh", scratch, profile.thermal_zones, f"{config.timeout:g}", *argv]
    # The wrapper enforces the limit on the device; the transport's own is a backstop.
    cmd = await transport.run(argv, timeout=config.timeout + KILL_GRACE + 10, watch=True)
    temps = [line for line in cmd.stderr.splitlines() if line.startswith(TEMPS_MARK)]
    cmd.stderr = "\n".join(line for line in cmd.stderr.splitlines() if not line.startswith(TEMPS_MARK))
    # timeout's own statuses after its limit (coreutils and BusyBox), not the runtime's own code.
    limit_passed = cmd.exit_status in LIMIT_STATUSES and time.perf_counter() - start >= config.timeout * 0.95
    if cmd.timed_out or limit_passed:
        result = BenchResult(profile.name, config, ok=False, error_kind=ErrorKind.TIMEOUT,
                             error=f"no result within {config.timeout:g} s: the runtime was killed on the device "
                                   "(raise --timeout for a slow model)", raw=cmd.stdout + cmd.stderr)
    else:
        found = diagnose(cmd.exit_status, cmd.stdout, cmd.stderr, flags=config.runtime_flags(), **(context or {}))
        if cmd.exit_status != 0:
            result = BenchResult(profile.name, config, ok=False, raw=cmd.stdout + cmd.stderr,
                                 error_kind=ErrorKind(found.kind) if found else ErrorKind.CRASH,
                                 error=found.message if found else f"runtime exited with {cmd.exit_status}")
        else:
            result = summarize(profile.name, config, cmd.stdout)
            if found is not None and result.ok:  # it ran, but not as asked: not a valid figure
                result.valid, result.error_kind, result.error = False, ErrorKind.FLAG_IGNORED, found.message
    result.seconds = time.perf_counter() - start
    if temps:
        result.temps_c = temperatures(temps[-1][len(TEMPS_MARK):])
    return result


@contextlib.contextmanager
def _timed(steps: dict, name: str):
    """Add the time spent in the block to ``steps[name]``."""
    start = time.perf_counter()
    try:
        yield
    finally:
        steps[name] = round(steps.get(name, 0.0) + time.perf_counter() - start, 4)


def device_files(profile: DeviceProfile, graph: Path):
    """The uploads a run needs and the runtime's argv on the device."""
    from edgebnn.device import runner

    work = profile.workdir.rstrip("/") or "/"
    digest = sha256_of(graph)
    model = Upload(graph, f"{work}/models/{digest}/{graph.name}", digest)
    uploads = {"model": model}
    if profile.runtime == "python":
        script = Path(runner.__file__)
        digest = sha256_of(script)
        uploads["runner"] = Upload(script, f"{work}/bin/{digest}/runner.py", digest)
        command = [profile.python, uploads["runner"].remote]
    elif profile.runtime_file:
        binary = Path(profile.runtime_file).expanduser()
        if not binary.is_file():
            raise DeviceError(ErrorKind.PREFLIGHT, f"runtime_file {profile.runtime_file!r} for {profile.name} does not exist: "
                                           f"run `{shell_command('edgebnn', 'devices', 'setup', profile.name, '--download')}` "
                                           "or fix the path")
        digest = sha256_of(binary)
        uploads["runtime"] = Upload(binary, f"{work}/bin/{digest}/lce_benchmark_model", digest, mode="755")
        command = [uploads["runtime"].remote]
    else:
        command = [profile.runtime]
    return uploads, command + [f"--graph={model.remote}"]


async def ensure_uploaded(transport, profile: DeviceProfile, uploads: dict, disk_free_mb: float | None,
                          present: set[str] | None = None) -> dict:
    """Upload what the board lacks (by sha256); ``{name: {"path", "uploaded", "attempts"}}``.

    Raises:
        DeviceError: ``disk_full`` when the board has no room, ``upload`` otherwise.
    """
    if present is None:
        present = await transport.present(list(uploads.values()))
    missing = [u for u in uploads.values() if u.remote not in present]
    need_mb = sum(u.local.stat().st_size for u in missing) / 2**20
    if missing and disk_free_mb is not None and disk_free_mb < need_mb + 1:
        raise DeviceError(ErrorKind.DISK_FULL, f"{profile.name} has {disk_free_mb:.1f} MB free in {profile.workdir!r}, the "
                                       f"upload needs {need_mb:.1f} MB: free space on the board or set another "
                                       "`workdir` in your devices file")
    report = {}
    for name, item in uploads.items():
        attempts = await transport.upload(item) if item in missing else 0
        report[name] = {"path": item.remote, "sha256": item.sha256, "uploaded": bool(attempts), "attempts": attempts}
    return report


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
    graph = Path(graph)
    # The profile's pinning, recorded with each configuration (the record says where it ran).
    configs = [replace(c, affinity=c.affinity or profile.affinity) for c in expand_threads(profile, configs)]
    run = DeviceRun(profile, planned=0 if tune else len(configs))  # a sweep's size is known after the preflight
    transport = open_transport(profile, accept_new_host_key=accept_new_host_key)
    scratch = f"{profile.workdir.rstrip('/')}/run-{uuid.uuid4().hex[:12]}"
    try:
        uploads, command = device_files(profile, graph)
        with _timed(run.steps, "connect"):
            await transport.connect()
        with _timed(run.steps, "preflight"):
            argv = preflight_argv(profile, runtime="" if profile.runtime_file else None, deep=False,
                                  uploads=list(uploads.values()))
            run.fingerprint = parse_preflight((await transport.run(argv, timeout=60)).stdout)
            run.temps["before"] = run.fingerprint["temps_c"]
            errors, run.warnings = problems(profile, run.fingerprint, deep=False,
                                            check_runtime=not profile.runtime_file)
            errors += runtime_file_problems(profile, run.fingerprint)
            if errors:
                raise DeviceError(ErrorKind.PREFLIGHT, "; ".join(errors))
        run.runtime = _runtime_info(profile, run.fingerprint)
        if tune:
            from edgebnn.device.tune import device_sweep

            configs, warnings = device_sweep(configs[0], run.fingerprint, affinity=profile.affinity)
            run.planned = len(configs)
            run.warnings += warnings
            if run.fingerprint.get("governor") not in (None, "performance") and profile.board:
                run.warnings.append("the sweep may be unreliable: the governor is not `performance`, so the clock "
                                    "may change between configurations")
        with _timed(run.steps, "upload"):
            run.uploads = await ensure_uploaded(transport, profile, uploads, run.fingerprint["disk_free_mb"],
                                                present=set(run.fingerprint.pop("present")))
        if "runtime" in run.uploads:
            run.runtime.update(path=run.uploads["runtime"]["path"], sha256=run.uploads["runtime"]["sha256"])
        if "runner" in run.uploads:
            run.runtime["runner_sha256"] = run.uploads["runner"]["sha256"]
        context = {"arch": run.fingerprint.get("arch", ""), "os_bits": run.fingerprint.get("os_bits"),
                   "mem_available_mb": run.fingerprint.get("mem_available_mb"), "model_bytes": graph.stat().st_size,
                   "runtime_lce_version": run.runtime.get("lce_version"), "converter_lce_version": converter_lce_version}
        if warning := lce_version_warning(run.runtime.get("lce_version"), converter_lce_version):
            run.warnings.append(warning)
        if any(c.op_profiling for c in configs) and profile.runtime == "python":
            run.warnings.append("op profiling needs lce_benchmark_model: edgebnn's python runner does not profile ops")
        with _timed(run.steps, "run"):
            for i, config in enumerate(configs):
                if i and profile.cooldown:
                    await asyncio.sleep(profile.cooldown)
                try:
                    result = await run_config(transport, profile, config, command=command, scratch=scratch,
                                              context=context)
                except DeviceError as e:
                    run.results.append(BenchResult(profile.name, config, ok=False, error_kind=e.kind, error=str(e)))
                    run.results += [BenchResult(profile.name, rest, ok=False, error_kind=ErrorKind.SKIPPED,
                                                error=f"not run: {e}") for rest in configs[i + 1:]]
                    break
                except Exception as e:  # a bug reading one configuration: that configuration's error, not the run's
                    result = BenchResult(profile.name, config, ok=False, error_kind=ErrorKind.INTERNAL,
                                         error=f"{type(e).__name__}: {e} (a bug in edgebnn; the other configurations "
                                               "are kept)")
                oversubscribed(result, run.fingerprint)
                run.results.append(result)
                if result.figures.get("lce_version") and not run.runtime.get("lce_version"):
                    run.runtime["lce_version"] = context["runtime_lce_version"] = result.figures["lce_version"]
                    if warning := lce_version_warning(run.runtime["lce_version"], converter_lce_version):
                        run.warnings.append(warning)
                if on_result:
                    on_result(run)
    except DeviceError as e:
        run.error_kind, run.error = e.kind, str(e)
    finally:
        with _timed(run.steps, "cleanup"):
            await _clean_up(run, transport, scratch)
    if run.results and run.results[-1].temps_c is not None:
        run.temps["after"] = run.results[-1].temps_c
    # Each configuration's temperatures, not only the last: a hot SoC mid-sweep may cool by the end.
    readings = [(max(r.temps_c), f"threads={r.config.threads}") for r in run.results if r.temps_c]
    if run.temps.get("after") and not (run.results and run.results[-1].temps_c):
        readings.append((max(run.temps["after"]), "cleanup"))
    hot = [(t, when) for t, when in readings if t >= profile.throttle_temp]
    if hot:
        run.warnings.append(
            f"{profile.name} reached {max(t for t, _ in hot):.0f} C during the run (>= {profile.throttle_temp:g} C, "
            f"after {', '.join(dict.fromkeys(w for _, w in hot))}): those figures are probably throttled; add "
            f"cooling or a longer `cooldown` (now {profile.cooldown:g} s) for {profile.name} and run again")
    over = sorted({r.config.threads for r in run.results if r.ok and r.cores_available is not None
                   and r.config.threads > r.cores_available})
    if over:
        run.warnings.append(f"threads {', '.join(map(str, over))} exceed the cores available "
                            f"({run.fingerprint.get('cores')} online): those figures are kept but marked invalid")
    run.finished = True
    if on_result:
        on_result(run)
    return run


def oversubscribed(result: BenchResult, fingerprint: dict) -> None:
    """Record the cores ``result``'s configuration could use; more threads than those make it invalid.

    Threads beyond the online cores (or the CPUs it was pinned to) take turns on them: the figure
    measures the scheduler's time slicing, not the model at that thread count, so it is kept but
    never valid (a report shows it as such, and ``--tune`` never chooses it).
    """
    from edgebnn.device.tune import parse_cpu_list

    cores = fingerprint.get("cores")
    if not isinstance(cores, int) or cores < 1:
        return  # the device did not tell: nothing to hold the threads against
    if result.config.affinity:
        ids = fingerprint.get("cpu_ids") or list(range(cores))
        cores = len([cpu for cpu in parse_cpu_list(result.config.affinity) if cpu in ids]) or cores
    result.cores_available = cores
    if result.ok and result.config.threads > cores:
        where = f"the {cores} CPUs it is pinned to ({result.config.affinity})" if result.config.affinity else \
            f"the {cores} online cores the preflight saw"
        why = (f"threads={result.config.threads} exceed {where}: the threads take turns, so the figure is kept but "
               f"not valid; give --threads {cores} or fewer")
        result.valid = False
        if result.error_kind:  # already invalid for another reason: say both
            result.error = f"{result.error}; {why}"
        else:
            result.error_kind, result.error = ErrorKind.OVERSUBSCRIBED, why


async def _clean_up(run: DeviceRun, transport, scratch: str) -> None:
    """Remove what a failed configuration left (a successful one cleans up after itself)."""
    try:
        if run.fingerprint and not (run.results and run.results[-1].temps_c is not None):
            if not transport.connected:  # the link dropped mid-run: reconnect to leave the board clean
                await transport.connect()
            after = await transport.run(["sh", "-c", _END_SCRATCH, "sh", scratch, run.profile.thermal_zones],
                                        timeout=30)
            run.temps["after"] = temperatures(after.stdout)
    except DeviceError as e:
        run.warnings.append(f"cleanup on {run.profile.name} failed: {e}")
    finally:
        run.connections = transport.connections
        await transport.close()


def runtime_file_problems(profile: DeviceProfile, fingerprint: dict) -> list[str]:
    """A local runtime to upload must be an executable built for the device's architecture."""
    if not profile.runtime_file:
        return []
    from edgebnn.device.setup import elf_arch, machine_arch

    path = Path(profile.runtime_file).expanduser()
    if not path.is_file():
        return []  # device_files() names the missing file
    built, board = elf_arch(path), machine_arch(fingerprint.get("arch", ""))
    if built is None and path.read_bytes()[:2] == b"#!":
        return []  # a script: it runs wherever its interpreter does
    if built is None:
        return [f"runtime_file {str(path)!r} for {profile.name} is not an ELF executable: give the "
                "lce_benchmark_model built for the board"]
    if board and built != board:
        return [f"runtime_file {str(path)!r} is built for {built}, {profile.name} is {board} "
                f"(uname -m: {fingerprint.get('arch')}): give the lce_benchmark_model built for {board}"]
    return []


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
