"""edgebnn report's sweep, limit-line and flips plots, and a --tune sweep kept apart in the tables.

Bench records are made by the device stage's own writers (``device_record`` and ``result_record``
over ``BenchResult``s: the shape ``edgebnn bench --tune`` saves), training manifests in the
shape ``edgebnn train`` writes (``model_options``, ``recipe``, ``flips``); the plots are checked
through the data they are drawn from, the files through the CLI.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest

from edgebnn.cli import cli
from edgebnn.device.bench import device_record
from edgebnn.device.profiles import DeviceProfile
from edgebnn.device.protocol import BenchConfig, BenchResult, DeviceRun
from edgebnn.device.roofline import per_cycle
from edgebnn.device.tune import median_interval as tune_interval
from edgebnn.reporting.compare import compare
from edgebnn.reporting.load import build_report, load_run, recorded_interval
from edgebnn.reporting.plots import draw_all, flip_series, limit_lines, sweep_series
from edgebnn.reporting.tables import device_tables

BINARY_MACS = 60_000_000
A55 = {"arch": "aarch64", "cores": 4, "cpu_cores": ["Cortex-A55"] * 4, "freq_mhz": 1908.0}
SHA = "0" * 64  # the flatbuffer the runs' manifests record and their bench records measured
# threads -> median ms; indirect BGEMM a little faster, XNNPACK no help: 8 configurations
SWEEP = {(t, i, x): base * (0.8 if i else 1.0) * (1.02 if x else 1.0)
         for t, base in ((1, 10.0), (2, 6.0)) for i in (False, True) for x in (False, True)}


def _result(device: str, threads: int, median: float, *, indirect=False, xnnpack=False, affinity="",
            ok=True) -> BenchResult:
    per_run = [median * 1e3 + d for d in (-40, -15, 0, 10, 35)] * 8  # microseconds, a small spread
    config = BenchConfig(threads=threads, runs=40, warmup=1, min_secs=0, indirect_bgemm=indirect, xnnpack=xnnpack,
                         affinity=affinity)
    if not ok:
        return BenchResult(device, config, ok=False, error_kind="crash", error="runtime exited with 139")
    latency = {"runs": 40, "median_ms": median, "mean_ms": median, "p90_ms": median * 1.05, "std_ms": 0.02}
    figures = {"per_run_us": per_run}
    return BenchResult(device, config, ok=True, valid=True, latency=latency, figures=figures,  # as summarize() does
                       median_interval_ms=list(tune_interval({"latency": latency, "figures": figures})))


def _save(run: Path, device: str, results: list[BenchResult], *, fingerprint: dict, board=True, tune=False,
          started="2026-02-01T00:00:00Z") -> dict:
    """A bench record as ``edgebnn bench`` writes it, saved under ``run/bench``."""
    profile = DeviceProfile(name=device, transport="ssh" if board else "local", board=board)
    device_run = DeviceRun(profile=profile, fingerprint=fingerprint, results=results, planned=len(results),
                           finished=True)
    record = device_record(device_run, model="m", model_file={"sha256": SHA}, started=started,
                           binary_macs=BINARY_MACS, tune=tune)
    (run / "bench").mkdir(parents=True, exist_ok=True)
    (run / "bench" / f"{device}-{started.replace(':', '')}-abcd1234.json").write_text(json.dumps(record))
    return record


def _manifest(run: Path, *, model="sabnn-r18", options=None, lr=1e-3, flips=None) -> Path:
    run.mkdir(parents=True, exist_ok=True)
    manifest = {
        "model": model, "data": "digits", "card": {"name": model, "published": {}},
        "model_options": options or {}, "seed": 0, "input_shape": [32, 32, 1],
        "recipe": {"name": model, "source": "test", "epochs": len(flips or [1]), "batch_size": 32, "lr": lr},
        "metrics": {"val_accuracy": 0.61, "epochs": len(flips or [1])},
        "stats": {"params": 100_000, "binary_params": 90_000, "float_params": 10_000, "binary_mac_share": 0.9,
                  "binary_macs": BINARY_MACS},
        "conversion": {"binary_layers": 4, "bconv": 4, "bconv_coverage": 1.0, "tflite_bytes": 50_000},
        "files": {"model.tflite": {"sha256": SHA, "bytes": 50_000}},
    }
    if flips is not None:
        manifest["flips"] = {"file": "logs/flips.csv", "per_epoch": flips,
                             "layers": {"conv1": {"first": flips[0], "last": flips[-1], "mean": flips[0], "max": flips[0]}}}
    (run / "manifest.json").write_text(json.dumps(manifest))
    return run


@pytest.fixture
def tuned(tmp_path):
    """A run swept by --tune on an A55 board (8 configurations) and timed on the host."""
    root = tmp_path / "runs"
    run = _manifest(root / "tuned", model="bireal-tiny")
    results = [_result("bananapi", t, m, indirect=i, xnnpack=x) for (t, i, x), m in SWEEP.items()]
    record = _save(run, "bananapi", results, fingerprint=A55, tune=True)
    _save(run, "local", [_result("local", 1, 30.0), _result("local", 2, 18.0)],
          fingerprint={"cores": 2, "cpu_cores": []}, board=False)
    return root, record


@pytest.fixture
def trained(tmp_path):
    """Two SA-BNN trainings, the ablation (state_aware=false) and the method, with their flips."""
    root = tmp_path / "claims"
    _manifest(root / "method", options={"width": 0.25, "state_aware": True}, flips=[0.31, 0.12, 0.05])
    _manifest(root / "ablation", options={"width": 0.25, "state_aware": False}, flips=[0.33, 0.2, 0.14])
    return root


def test_a_tune_sweep_keeps_its_eight_configurations(tuned, cli_runner):
    root, record = tuned
    result = cli_runner.invoke(cli, ["report", str(root), "--format", "json"])
    assert result.exit_code == 0, result.output
    (run,) = json.loads(result.output)["runs"]
    board = [b for b in run["benchmarks"] if b["device"] == "bananapi"]
    assert sorted((b["threads"], b["indirect_bgemm"], b["xnnpack"]) for b in board) == sorted(SWEEP)
    assert {b["affinity"] for b in board} == {""}  # a record from before affinity: no pinning
    assert {(b["threads"], b["indirect_bgemm"], b["xnnpack"]): b["median_ms"] for b in board} == pytest.approx(SWEEP)
    (sweep,) = run["sweeps"]
    assert sweep["device"] == "bananapi" and len(sweep["results"]) == 8
    assert sweep["chosen"] == record["tune"]["index"] is not None
    for r, original in zip(sweep["results"], record["results"]):
        assert (r["median_ms"], r["low_ms"], r["high_ms"]) == pytest.approx(tune_interval(original))
        assert r["low_ms"] < r["median_ms"] < r["high_ms"]
    assert run["tuned"][0]["threads"] == record["tune"]["config"]["threads"] and run["tuned"][0]["affinity"] == ""
    rows = list(csv.DictReader(io.StringIO(cli_runner.invoke(cli, ["report", str(root), "--format", "csv"]).output)))
    assert len([r for r in rows if r["device"] == "bananapi"]) == 8


def test_tables_name_the_settings_only_where_a_device_has_them(tuned):
    root, _ = tuned
    tables = {t["device"]: t for t in device_tables(build_report([root]))}
    board = [h for h in tables["bananapi"]["header"] if h.endswith("median / p90 ms")]
    assert board == ["1 thr median / p90 ms", "1 thr, XNNPACK median / p90 ms", "1 thr, indirect BGEMM median / p90 ms",
                     "1 thr, indirect BGEMM, XNNPACK median / p90 ms", "2 thr median / p90 ms",
                     "2 thr, XNNPACK median / p90 ms", "2 thr, indirect BGEMM median / p90 ms",
                     "2 thr, indirect BGEMM, XNNPACK median / p90 ms"]
    (row,) = tables["bananapi"]["rows"]
    cells = row[len(tables["bananapi"]["header"]) - 3 - len(board):][:len(board)]
    assert cells[2] == f"{SWEEP[(1, True, False)]:.2f} / {SWEEP[(1, True, False)] * 1.05:.2f}"
    # the host ran the defaults only: its table is what it always was
    assert [h for h in tables["local"]["header"] if "thr" in h] == ["1 thr median / p90 ms", "2 thr median / p90 ms"]


def test_affinity_tells_configurations_apart(tmp_path):
    run = _manifest(tmp_path / "pinned")
    record = _save(run, "rock5", [_result("rock5", 4, 5.0), _result("rock5", 4, 9.0), _result("rock5", 4, 7.0)],
                   fingerprint=A55)
    for r, cpus in zip(record["results"], ("4-7", "0-3")):  # the third is unpinned, as older records are
        r["config"]["affinity"] = cpus
    (run / "bench" / "rock5-20260201T000000Z-abcd1234.json").write_text(json.dumps(record))
    entries = load_run(run)["benchmarks"]
    assert [(b["affinity"], b["median_ms"]) for b in entries] == [("", 7.0), ("0-3", 9.0), ("4-7", 5.0)]
    (table,) = [t for t in device_tables(build_report([run])) if t["device"] == "rock5"]
    assert [h for h in table["header"] if "thr" in h] == [
        "4 thr median / p90 ms", "4 thr, CPUs 0-3 median / p90 ms", "4 thr, CPUs 4-7 median / p90 ms"]
    rows = {r[0]: r for r in compare(load_run(run), load_run(run))["rows"]}
    assert "latency 4 thr, CPUs 4-7 (median / p90 ms)" in rows and "latency 4 thr (median / p90 ms)" in rows


def test_the_sweep_plot_draws_every_combination_and_names_the_choice(tuned):
    root, record = tuned
    report = build_report([root])
    (run,) = report["runs"]
    series = sweep_series(run, run["sweeps"][0])
    labels = [line["label"] for line in series["lines"]]
    assert labels == ["indirect BGEMM off, XNNPACK off", "indirect BGEMM off, XNNPACK on",
                      "indirect BGEMM on, XNNPACK off", "indirect BGEMM on, XNNPACK on"]
    for line, (indirect, xnnpack) in zip(series["lines"], [(False, False), (False, True), (True, False), (True, True)]):
        assert [p[0] for p in line["points"]] == [1, 2]
        assert [p[1] for p in line["points"]] == pytest.approx([SWEEP[(t, indirect, xnnpack)] for t in (1, 2)])
        assert all(low < median < high and valid for _, median, low, high, valid in line["points"])
    config = record["tune"]["config"]
    chosen = series["chosen"]
    assert (chosen["threads"], chosen["median_ms"]) == (config["threads"], pytest.approx(record["tune"]["median_ms"]))
    on = lambda key: "on" if config[key] else "off"  # noqa: E731
    assert chosen["label"] == f"chosen: {config['threads']} thr, indirect BGEMM {on('indirect_bgemm')}, XNNPACK {on('xnnpack')}"
    assert series["title"] == "tuned: bananapi (board)"


def test_a_failed_configuration_has_no_point_and_nothing_valid_chooses_nothing(tmp_path):
    run = _manifest(tmp_path / "r")
    _save(run, "bananapi", [_result("bananapi", 1, 0, ok=False), _result("bananapi", 2, 0, ok=False)],
          fingerprint=A55, tune=True)
    r = load_run(run)
    series = sweep_series(r, r["sweeps"][0])
    assert series["chosen"] is None and [line["points"] for line in series["lines"]] == [[]]
    assert "tune-sweep" in draw_all(build_report([run]))  # drawn, saying nothing was chosen


def test_the_limit_line_is_binary_macs_over_the_per_core_limit_times_threads(tuned):
    root, _ = tuned
    report = build_report([root])
    (line,) = limit_lines(report)  # the host names no Arm core: no line
    assert line["device"] == "bananapi" and line["label"] == "LCE-mix limit, bananapi (Cortex-A55)"
    per_core = per_cycle("Cortex-A55")[1] * A55["freq_mhz"] * 1e6  # BMACs per second on one core
    assert [t for t, _ in line["points"]] == [1, 2]
    for threads, ms in line["points"]:
        assert ms == pytest.approx(BINARY_MACS / (per_core * threads) * 1e3, rel=1e-3)
    # below every measured latency: a limit, not a figure
    assert all(ms < min(m for (t, _, _), m in SWEEP.items() if t == threads) for threads, ms in line["points"])


def test_flips_are_one_line_per_training_run_named_by_its_ablation(trained):
    report = build_report([trained])
    series = {s["label"]: s for s in flip_series(report)}
    assert set(series) == {"ablation sabnn-r18 state_aware=false width=0.25", "method sabnn-r18 state_aware=true width=0.25"}
    ablation = series["ablation sabnn-r18 state_aware=false width=0.25"]
    assert ablation["epochs"] == [1, 2, 3] and ablation["ratios"] == [0.33, 0.2, 0.14]
    runs = {Path(r["path"]).name: r for r in report["runs"]}
    assert runs["ablation"]["model_options"] == {"width": 0.25, "state_aware": False}
    assert runs["method"]["flips_per_epoch"] == [0.31, 0.12, 0.05]


def test_the_learning_rate_is_named_where_the_runs_differ_in_it(tmp_path):
    _manifest(tmp_path / "low", model="tang2017-compact", lr=1e-4, flips=[0.1, 0.02])
    _manifest(tmp_path / "high", model="tang2017-compact", lr=1e-3, flips=[0.3, 0.2])
    _manifest(tmp_path / "untrained", model="tang2017-compact")  # no flips: no line
    labels = sorted(s["label"] for s in flip_series(build_report([tmp_path])))
    assert labels == ["high tang2017-compact lr=0.001", "low tang2017-compact lr=0.0001"]


def test_report_writes_and_embeds_the_new_plots(tuned, trained, cli_runner, tmp_path):
    root, _ = tuned
    out = tmp_path / "out" / "r.md"
    out.parent.mkdir()
    result = cli_runner.invoke(cli, ["report", str(root), str(trained), "--out", str(out)])
    assert result.exit_code == 0, result.output
    md = out.read_text()
    for name in ("accuracy-latency", "size-latency", "latency-threads", "tune-sweep", "flips"):
        png = out.with_name(f"r-{name}.png")
        assert f"![{name}](r-{name}.png)" in md and png.read_bytes().startswith(b"\x89PNG") and png.stat().st_size > 5000
    page = tmp_path / "out" / "r.html"
    assert cli_runner.invoke(cli, ["report", str(root), str(trained), "--out", str(page)]).exit_code == 0
    text = page.read_text()
    assert text.count('src="data:image/png;base64,') == 5
    assert 'alt="tune-sweep"' in text and 'alt="flips"' in text


def test_plots_without_sweeps_or_flips_are_not_drawn(tmp_path):
    run = _manifest(tmp_path / "plain")
    _save(run, "local", [_result("local", 1, 3.0)], fingerprint={"cores": 2, "cpu_cores": []}, board=False)
    assert set(draw_all(build_report([run]))) == {"accuracy-latency", "size-latency", "latency-threads"}
    assert limit_lines(build_report([run])) == []


def test_the_report_draws_the_interval_the_tune_rule_compared(tmp_path):
    """The device stage writes each result's interval once; the report draws that one, not its own."""
    from sshd import TOOL

    from edgebnn.device.bench import result_record
    from edgebnn.device.protocol import BenchConfig, summarize

    result = summarize("pi", BenchConfig(runs=3, min_secs=0), TOOL)  # lce_benchmark_model's aggregates
    record = result_record(result, {"cpu_cores": []}, binary_macs=None)
    median, low, high = record["median_interval_ms"]
    assert median == 1.65025 and low < median < high
    assert recorded_interval(record) == (median, low, high) == pytest.approx(tune_interval(record))
    assert recorded_interval({"ok": True, "latency": {"mean_ms": 12.3}}) == (12.3, None, None)  # an older record
    assert recorded_interval({"ok": False, "latency": {}}) is None


def test_a_pinned_sweep_has_a_line_and_a_limit_per_cpu_list(tmp_path):
    run = _manifest(tmp_path / "pinned")
    big_little = {"cores": 8, "cpu_ids": list(range(8)), "cpu_cores": ["Cortex-A55"] * 4 + ["Cortex-A76"] * 4,
                  "freq_mhz": 1800, "cpu_freq_mhz": [1800] * 4 + [2400] * 4}
    results = ([_result("rock5", t, 10.0 / t) for t in (1, 2)]
               + [_result("rock5", t, 6.0 / t, affinity="0-3") for t in (1, 2)])
    _save(run, "rock5", results, fingerprint=big_little, tune=True)
    report = build_report([run])
    (r,) = report["runs"]
    series = sweep_series(r, r["sweeps"][0])
    assert [line["label"] for line in series["lines"]] == ["indirect BGEMM off, XNNPACK off",
                                                          "indirect BGEMM off, XNNPACK off, CPUs 0-3"]
    assert [[p[1] for p in line["points"]] for line in series["lines"]] == [[10.0, 5.0], [6.0, 3.0]]
    labels = [line["label"] for line in limit_lines(report)]
    # unpinned, the threads may use the big cores; pinned to CPUs 0-3, the little ones
    assert labels == ["LCE-mix limit, rock5 (Cortex-A76)", "LCE-mix limit, rock5 (Cortex-A55, CPUs 0-3)"]
    assert "latency-threads" in draw_all(report) and "tune-sweep" in draw_all(report)
