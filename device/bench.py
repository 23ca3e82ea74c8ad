"""``edgebnn bench``: a run's flatbuffer on one or more devices, every result recorded.

:func:`bench_run` runs the protocol (:mod:`edgebnn.device.protocol`) on every device
concurrently and writes one record per device, ``bench/<device>-<utc>-<id>.json``: the one
shape of a benchmark result, rewritten after every configuration (results already obtained
survive an interruption) and read by the report as it is. ``manifest["benchmarks"]`` indexes
those files.
"""

from __future__ import annotations

import asyncio
import math
import uuid
from collections.abc import Callable
from dataclasses import asdict, replace

from edgebnn import atomic
from edgebnn.device.arch import machine_arch
from edgebnn.device.devices_file import default_devices_file
from edgebnn.device.errors import ErrorKind
from edgebnn.device.local import check_local_workdirs
from edgebnn.device.profiles import resolve_devices
from edgebnn.device.protocol import BenchConfig, DeviceRun, bench_devices
from edgebnn.device.roofline import roofline
from edgebnn.device.setup_record import read_setup, record_tuned, setup_path, short_key, tuned_key, tuned_settings
from edgebnn.device.tune import RULE, choose, parse_cpu_list
from edgebnn.errors import EdgebnnError, UsageError, shell_command
from edgebnn.run.records import BenchRecord, Result, TuneChoice
from edgebnn.run.rundir import RunDir, file_record, utc_now


def parse_threads(text: str) -> list[int]:
    """``"1,4"`` -> ``[1, 4]``.

    Raises:
        UsageError: not positive integers separated by commas.
    """
    try:
        threads = [int(t) for t in str(text).split(",") if t.strip()]
    except ValueError:
        threads = []
    if not threads or min(threads) < 1:
        raise UsageError(f"bad --threads {text!r}: give positive integers separated by commas, e.g. 1,4")
    return threads


def bench_configs(threads: str | None, *, runs: int = 50, warmup: int = 5, min_secs: float = 1.0,
                  max_secs: float = 150.0, timeout: float = 600.0, op_profiling: bool = False,
                  xnnpack: bool = False, indirect_bgemm: bool = False) -> list[BenchConfig]:
    """One configuration per thread count of ``threads`` (``"1,4"``; None: each device's default).

    Raises:
        UsageError: a bad value, named.
    """
    counts = parse_threads(threads) if threads is not None else [0]
    return [BenchConfig(threads=t, runs=runs, warmup=warmup, min_secs=min_secs, max_secs=max_secs, timeout=timeout,
                        op_profiling=op_profiling, xnnpack=xnnpack, indirect_bgemm=indirect_bgemm) for t in counts]


def check_cooldown(cooldown: float | None) -> None:
    """Raises UsageError unless ``cooldown`` is None or a finite number of seconds >= 0."""
    if cooldown is not None and not (math.isfinite(cooldown) and cooldown >= 0):
        raise UsageError(f"bad --cooldown {cooldown!r}: give a finite number of seconds of at least 0")


def measured_result(result, fingerprint: dict, binary_macs: int | None) -> Result:
    """One configuration's record: its figures and its roofline (achieved binary MACs/s, share of the limits)."""
    latency = result.latency.get("median_ms", result.latency.get("mean_ms")) if result.ok else None
    cores, clocks = fingerprint.get("cpu_cores") or [], fingerprint.get("cpu_freq_mhz") or []
    clock = fingerprint.get("freq_mhz") or fingerprint.get("max_freq_mhz")  # cpu0's
    if result.config.affinity:  # pinned: the limit of the cores (and the clocks) it runs on
        ids = fingerprint.get("cpu_ids") or list(range(len(cores)))
        pinned = parse_cpu_list(result.config.affinity)
        where = [ids.index(cpu) for cpu in pinned if cpu in ids]
        cores = [cores[i] for i in where if i < len(cores)]
        clocks = [clocks[i] if i < len(clocks) else None for i in where]
        clock = clock if 0 in pinned else None  # never another cluster's clock
    limits = roofline(binary_macs=binary_macs, latency_ms=latency, cores=cores, clock_mhz=clock, clocks_mhz=clocks,
                      threads=result.config.threads)
    return Result(**{**result.to_dict(), "roofline": asdict(limits)})


def result_record(result, fingerprint: dict, binary_macs: int | None) -> dict:
    """:func:`measured_result` as saved (a dict)."""
    return measured_result(result, fingerprint, binary_macs).to_dict()


ARM = ("aarch64", "arm")


def figure_kind(profile, fingerprint: dict) -> tuple[str, str]:
    """``(kind, why)``: ``board`` for an ARM board the profile calls a board, else ``host``.

    The kind follows what the preflight saw (``uname -m``), not the profile's name: an x86 machine
    runs LCE's portable reference kernels, so even a profile called ``bananapi`` that reaches one
    gives host figures (``why`` says so). ``unknown`` when the device never told its architecture.
    """
    uname = fingerprint.get("arch") or ""
    arch = machine_arch(uname)
    if not profile.board:
        return "host", ""
    if arch in ARM:
        return "board", ""
    if arch:
        return "host", (f"{profile.name} is {uname} (uname -m), not an ARM board: LCE runs its portable reference "
                        "kernels there, so these are host figures")
    return "unknown", ""


def bench_record(device_run: DeviceRun, *, model: str, model_file: dict, started: str,
                 binary_macs: int | None = None, tune: bool = False, tuned_from: dict | None = None) -> BenchRecord:
    """The bench record of one device: everything the run produced, failures included."""
    from edgebnn import __version__

    profile = device_run.profile
    kind, why = figure_kind(profile, device_run.fingerprint)
    results = [measured_result(r, device_run.fingerprint, binary_macs) for r in device_run.results]
    return BenchRecord(
        device=profile.name, profile=profile.to_dict(), figure_kind=kind, fingerprint=device_run.fingerprint,
        runtime=device_run.runtime, model=model, model_file=model_file, started=started, edgebnn=__version__,
        ok=device_run.ok, error_kind=device_run.error_kind, error=device_run.error,
        warnings=([why] if why else []) + device_run.warnings, complete=device_run.complete,
        configurations={"planned": device_run.planned, "ran": device_run.ran}, temps_c=device_run.temps,
        steps_s=device_run.steps, uploads=device_run.uploads, connections=device_run.connections,
        binary_macs=binary_macs, results=results,
        tuned_from=tuned_from or None,  # the configuration came from a saved `--tune --save-tuned`
        tune=tune_choice(device_run, results) if tune else None)


def tune_choice(device_run: DeviceRun, results: list[Result]) -> TuneChoice:
    """The choice among a sweep's results; an interrupted or cut sweep chooses nothing (a choice among part is none)."""
    counts = {"planned": device_run.planned, "ran": device_run.ran}
    if device_run.complete:
        return TuneChoice(**choose([r.to_dict() for r in results]), complete=True, **counts)
    return TuneChoice(rule=RULE, complete=False, **counts)


def device_record(device_run: DeviceRun, **kwargs) -> dict:
    """:func:`bench_record` as saved (a dict)."""
    return bench_record(device_run, **kwargs).to_dict()


def tune_summary(choice: TuneChoice) -> str:
    """What a ``--tune`` choice says in one line: the choice, or why there is none."""
    if not choice.complete:
        return (f"tune incomplete: {choice.ran or 0} of {choice.planned or 'the'} configurations ran, nothing chosen "
                "(run the sweep again to choose)")
    if choice.index is None:
        return "tune: no configuration was valid, nothing chosen"
    return f"chosen: {describe(choice.config)} (median {choice.median_ms:.3f} ms; {choice.rule})"


def check_flatbuffer(run: RunDir) -> dict:
    """The run's ``model.tflite`` record, after checking it is the one the manifest describes.

    Raises:
        EdgebnnError: no flatbuffer, or one whose sha256 differs from the manifest's (a
            truncated or replaced file never reaches a runtime).
    """
    if not run.tflite_path.is_file():
        raise EdgebnnError(f"no model.tflite in {str(run.path)!r}: run "
                           f"`{shell_command('edgebnn', 'convert', run.path, '--to', 'tflite')}` first")
    found = file_record(run.tflite_path)
    recorded = run.section("files").get(run.tflite_path.name)
    if not isinstance(recorded, dict) or recorded.get("sha256") != found["sha256"]:
        raise EdgebnnError(
            f"{run.tflite_path} is not the flatbuffer the manifest records (sha256 {found['sha256'][:12]}..., "
            f"manifest {str((recorded or {}).get('sha256'))[:12]}...): convert again with "
            f"`{shell_command('edgebnn', 'convert', run.path, '--to', 'tflite')}`"
        )
    return found


# The settings a saved tune choice sets; the timing settings stay the user's.
TUNED_FIELDS = ("threads", "indirect_bgemm", "xnnpack", "affinity")


def describe(config: dict) -> str:
    """``threads=2, indirect BGEMM on, XNNPACK off[, CPUs 4-7]`` for a config (a dict)."""
    on = lambda key: "on" if config.get(key) else "off"  # noqa: E731
    pinned = f", CPUs {config['affinity']}" if config.get("affinity") else ""
    return f"threads={config['threads']}, indirect BGEMM {on('indirect_bgemm')}, XNNPACK {on('xnnpack')}{pinned}"


def tuned_config(base: BenchConfig, entry: dict) -> BenchConfig:
    """``base``'s timing settings with a saved tune choice's placement and switches."""
    return replace(base, **{k: v for k, v in entry["config"].items() if k in TUNED_FIELDS})


def check_bench_options(configs: list[BenchConfig], *, cooldown: float | None, tune: bool, save_tuned: bool) -> None:
    """Raises UsageError for options that contradict each other, or a bad ``cooldown``."""
    check_cooldown(cooldown)
    if tune and any(c.threads or c.xnnpack or c.indirect_bgemm for c in configs):
        raise UsageError("--tune sweeps --threads, --use-xnnpack and --use-indirect-bgemm itself: drop them")
    if save_tuned and not tune:
        raise UsageError("--save-tuned saves the configuration --tune chooses: add --tune")


def bench_run(run: RunDir | Callable[[], RunDir], *, devices: str, configs: list[BenchConfig], devices_file=None,
              accept_new_host_key: bool = False, cooldown: float | None = None, tune: bool = False,
              save_tuned: bool = False, use_tuned: bool = False,
              show: Callable[[list[dict]], None] | None = None) -> list[dict]:
    """Benchmark the run's flatbuffer on every device in ``devices`` concurrently.

    Args:
        run: a converted run directory, or a function making one (called once the options and
            devices are checked: a usage error costs no conversion).
        devices: a name, a fleet, an ``ssh://`` URL or a comma list of them.
        configs: the timing configurations.
        devices_file: the devices file (default: the user's).
        accept_new_host_key: trust boards whose host key is not yet known.
        cooldown: seconds between configurations, instead of each device's.
        tune: sweep threads, indirect BGEMM and XNNPACK on each device (:mod:`edgebnn.device.tune`)
            from ``configs[0]``'s timing settings, and record the choice.
        save_tuned: with ``tune``, save each device's choice as its defaults for this flatbuffer
            (:func:`edgebnn.device.setup_record.record_tuned`); the record names the file (``saved_tuned``).
        use_tuned: on a device with saved defaults for this flatbuffer, run those instead of
            ``configs``' settings (the caller gave none of its own); the record says so (``tuned_from``).
        show: called with the records before a failure below is raised (what the user must see).

    Returns:
        The records (:meth:`edgebnn.run.records.BenchRecord.to_dict`), in the order of ``devices``,
        each with its ``file``; one that could not be saved (a full disk) carries ``unsaved``, the
        message saying what is on disk.

    Raises:
        UsageError: contradicting options, a bad cooldown, an unknown device.
        EdgebnnError: interrupted (Ctrl-C): the records say so, and keep what was measured; a record
            could not be saved; every configuration failed.
        UnsafeWorkdir: this machine's work folder is not private to this user (exit 2).
    """
    check_bench_options(configs, cooldown=cooldown, tune=tune, save_tuned=save_tuned)
    profiles = resolve_devices(devices, devices_file=devices_file)
    check_local_workdirs(profiles)
    if cooldown is not None:
        profiles = [replace(p, cooldown=cooldown) for p in profiles]
    if save_tuned:  # before the sweep, not after it: a broken setup record is refused, never replaced
        read_setup(setup_path(devices_file or default_devices_file()))
    session = _Session(run() if callable(run) else run, profiles, devices_file=devices_file, tune=tune)
    plans = session.plans(configs, use_tuned=use_tuned and not tune)
    device_runs = session.measure(plans, accept_new_host_key=accept_new_host_key)
    records = [session.finish(r, save_tuned=save_tuned) for r in device_runs]
    session.index(records)
    if session.interrupted:
        raise EdgebnnError(session.interruption(records))
    returned = [session.returned(r) for r in records]
    if show:
        show(returned)
    session.check_outcome(records)
    return returned


class _Session:
    """One bench of one run on its devices: where each record goes, and what was saved of it."""

    def __init__(self, run: RunDir, profiles: list, *, devices_file, tune: bool):
        self.run, self.profiles, self.devices_file, self.tune = run, profiles, devices_file, tune
        self.model_file = check_flatbuffer(run)
        self.started = utc_now()
        stamp = self.started.replace(":", "")
        # A random part: two benches started in the same second never share a file.
        self.paths = {p.name: run.bench_dir / f"{p.file_name}-{stamp}-{uuid.uuid4().hex[:8]}.json" for p in profiles}
        self.model = run.manifest["model"]
        self.key = tuned_key(self.model, run.manifest.get("input_shape"), self.model_file["sha256"])
        self.binary_macs = run.section("stats").get("binary_macs")  # at the run's input size
        self.saved: dict[str, dict] = {}  # each device's saved --tune choice this bench runs
        self.latest: dict[str, DeviceRun] = {}  # each device's run as last seen: what an interruption keeps
        self.kept: dict[str, int] = {}  # configurations in the last copy saved of each device's record
        self.failed: dict[str, OSError] = {}  # the last save that failed (a full disk), per device
        self.unsaved: dict[str, str] = {}  # what is not on disk of a device's record, in words
        self.interrupted = False

    def plans(self, configs: list[BenchConfig], *, use_tuned: bool) -> list[tuple]:
        """Each device with its configurations: its saved tuned ones (``use_tuned``), else ``configs``."""
        if use_tuned:
            self.saved = {p.name: s for p in self.profiles if (s := tuned_settings(self.devices_file, p.name, self.key))}
        return [(p, [tuned_config(configs[0], self.saved[p.name])] if p.name in self.saved else configs)
                for p in self.profiles]

    def record(self, device_run: DeviceRun) -> BenchRecord:
        return bench_record(device_run, model=self.model, model_file=self.model_file, started=self.started,
                            binary_macs=self.binary_macs,
                            tune=self.tune, tuned_from=self.saved.get(device_run.profile.name))

    def save(self, device_run: DeviceRun) -> None:
        """Write the device's record; a failed write is remembered, never the end of the bench."""
        name = device_run.profile.name
        self.latest[name] = device_run
        if self.write(name, self.record(device_run)):
            self.failed.pop(name, None)
            self.kept[name] = len(device_run.results)

    def write(self, name: str, record: BenchRecord) -> bool:
        try:
            atomic.write_json(self.paths[name], record.to_dict())
        except OSError as e:
            self.failed[name] = e
            return False
        return True

    def measure(self, plans: list[tuple], *, accept_new_host_key: bool) -> list[DeviceRun]:
        """Every device's run, each saved as it goes; Ctrl-C keeps what each had measured."""
        converter = self.run.section("versions").get("larq-compute-engine")
        try:
            device_runs = asyncio.run(bench_devices(plans, self.run.tflite_path, accept_new_host_key=accept_new_host_key,
                                                    on_result=self.save, converter_lce_version=converter, tune=self.tune))
        except KeyboardInterrupt:
            self.interrupted = True
            device_runs = [self.latest.get(p.name) or DeviceRun(p) for p in self.profiles]
            for device_run in device_runs:
                if not device_run.finished:
                    device_run.error_kind = ErrorKind.INTERRUPTED
                    device_run.error = (f"interrupted (Ctrl-C) after {device_run.ran} of "
                                        f"{device_run.planned or 'the planned'} configurations: the figures "
                                        "measured are kept")
        return [self.settled(r) for r in device_runs]

    def settled(self, device_run: DeviceRun) -> DeviceRun:
        """The device's final run, saved: a bug after some configurations ran keeps them, with the error."""
        last = self.latest.get(device_run.profile.name)
        if device_run.error_kind == ErrorKind.INTERNAL and last is not None:
            last.error_kind, last.error = device_run.error_kind, device_run.error
            device_run = last
        self.save(device_run)
        return device_run

    def finish(self, device_run: DeviceRun, *, save_tuned: bool) -> BenchRecord:
        """The device's final record, with the tuned choice saved (``save_tuned``); what is unsaved is noted."""
        name, path = device_run.profile.name, self.paths[device_run.profile.name]
        record = self.record(device_run)
        if save_tuned and record.tune and record.tune.index is not None:
            self.save_choice(record, path)
            self.write(name, record)
        if name in self.failed:
            self.unsaved[name] = _unsaved(path, self.failed[name], self.kept.get(name), len(record.results))
        return record

    def returned(self, record: BenchRecord) -> dict:
        """The record as :func:`bench_run` returns it: with its ``file``, and ``unsaved`` if it is not on disk."""
        unsaved = {"unsaved": self.unsaved[record.device]} if record.device in self.unsaved else {}
        return {**record.to_dict(), "file": str(self.paths[record.device]), **unsaved}

    def check_outcome(self, records: list[BenchRecord]) -> None:
        """Raises EdgebnnError when a record could not be saved, or when every configuration failed."""
        if self.unsaved:
            raise EdgebnnError("; ".join(self.unsaved[r.device] for r in records if r.device in self.unsaved))
        if not any(result.ok for record in records for result in record.results):
            names = ", ".join(r.device for r in records)
            raise EdgebnnError(f"every configuration failed on {names}: see "
                               f"{', '.join(str(self.paths[r.device]) for r in records)}")

    def save_choice(self, record: BenchRecord, path) -> None:
        """Save the device's ``--tune`` choice as its defaults for this flatbuffer; the record says where."""
        choice = record.tune
        entry = {"config": {k: choice.config.get(k) for k in TUNED_FIELDS}, "median_ms": choice.median_ms,
                 "rule": choice.rule, "saved": self.started, "run": str(self.run.path),
                 "file": str(path.relative_to(self.run.path)), "model_sha256": self.model_file["sha256"]}
        try:
            where = record_tuned(self.devices_file, record.device, self.key, entry)
            record.saved_tuned = {"key": self.key, "label": short_key(self.key), "path": str(where)}
        except OSError as e:  # the sweep itself is safe in the record already
            record.warnings.append(f"could not save the tuned settings: {e.strerror or e} ({e.filename}); "
                                   "pass a writable --devices-file folder")

    def index(self, records: list[BenchRecord]) -> None:
        """Append the records on disk to ``manifest["benchmarks"]``; one that cannot be indexed says so."""
        index = [{"device": r.device, "file": str(self.paths[r.device].relative_to(self.run.path)),
                  "started": self.started, "figure_kind": r.figure_kind, "ok": r.ok, "error_kind": r.error_kind,
                  "model_sha256": self.model_file["sha256"], "complete": r.complete,
                  **({"tuned": r.tune.config} if r.tune else {})}
                 for r in records if r.device in self.kept]  # only records on disk
        try:
            self.run.edit(lambda data: data.__setitem__("benchmarks", [*(data.get("benchmarks") or []), *index]))
        except EdgebnnError as e:  # the records hold the figures; the index is what could not be written
            for r in records:
                self.unsaved.setdefault(r.device, f"the manifest could not index {self.paths[r.device]}: {e}")

    def interruption(self, records: list[BenchRecord]) -> str:
        """What an interrupted bench measured, and where it is kept."""
        files = ", ".join(str(self.paths[r.device]) for r in records if self.kept.get(r.device))
        ran = "; ".join(f"{r.device}: {r.ran} of {r.planned or '?'}" for r in records)
        return (f"interrupted: configurations measured {ran}"
                + (f"; kept in {files} (marked incomplete)" if files else "; nothing was measured yet"))


def _unsaved(path, error: OSError, kept: int | None, measured: int) -> str:
    """What a failed save of a bench record left: the path, why, what the last saved copy holds, the next step."""
    why = error.strerror or str(error)
    held = (f"the copy saved before holds {kept} of the {measured} configurations measured" if kept
            else "nothing of it is saved")
    return (f"cannot save the bench record {path}: {why}; {held} (all are printed above): free some space in "
            f"{path.parent} and run the bench again")
