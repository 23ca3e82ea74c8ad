"""edgebnn report / compare, the plots and benchmarks/run_all.

Run directories are written by hand in the formats the stages write (manifest.json and
bench/<device>-<utc>.json), including partial and failed runs; one test reports a real run.
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from edgebnn.cli import cli
from edgebnn.reporting.compare import compare
from edgebnn.reporting.load import build_report, find_runs, load_run
from edgebnn.reporting.plots import draw_all, pareto_front
from edgebnn.reporting.tables import device_tables

ROOT = Path(__file__).resolve().parents[1]


def chromium() -> str:
    """Chromium's path; skips without it, but fails under CI (.ci/run installs it), like the sshd fixture."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        message = "chromium is not installed: apt-get install chromium (.ci/run installs it)"
        if os.environ.get("CI"):
            pytest.fail(message)  # CI must render the page, never skip it
        pytest.skip(message)
    return found


def _result(threads, *, median=None, ok=True, valid=True, error_kind="", peak=None, runs=50):
    latency = {} if median is None else {"runs": runs, "mean_ms": median * 1.01, "median_ms": median, "p90_ms": median * 1.1}
    return {
        "device": "?", "config": {"threads": threads, "runs": 50, "warmup": 5, "min_secs": 1.0},
        "ok": ok, "error_kind": error_kind, "error": "runtime exited with 139" if error_kind else "",
        "valid": valid, "latency": {**latency, **({"peak_memory_mb": peak} if peak is not None else {})},
        "figures": {"memory": {"peak_mb": peak}} if peak is not None else {},
    }


SHA = "5" * 64  # the flatbuffer the fixture runs were converted to (manifest) and benchmarked on (records)


def _bench(run: Path, device: str, results, *, kind="host", started="2026-01-01T00:00:00Z", board=None, sha=SHA):
    record = {"device": device, "profile": {"name": device, "board": board if board is not None else kind == "board"},
              "model": "m", "started": started, "results": results, "model_file": {"sha256": sha, "bytes": 96_892}}
    if kind is not None:
        record["figure_kind"] = kind
    (run / "bench").mkdir(exist_ok=True)
    (run / "bench" / f"{device}-{started.replace(':', '')}.json").write_text(json.dumps(record))


def _run(root: Path, name: str, *, model: str, top1=None, published=None, converted=True, data="digits", **stats):
    run = root / name
    run.mkdir(parents=True)
    manifest = {
        "model": model, "data": data,
        "card": {"name": model, "published": {"imagenet_top1": published} if published else {}},
        "stats": {"params": stats.get("params", 300_000), "binary_params": 290_000, "float_params": 10_000,
                  "binary_mac_share": stats.get("share", 0.97)},
    }
    if top1 is not None:
        manifest["metrics"] = {"val_accuracy": top1, "epochs": 3}
    else:
        manifest["weights"] = "random"
    if converted:
        manifest["conversion"] = {"binary_layers": 6, "bconv": stats.get("bconv", 6),
                                  "bconv_coverage": stats.get("bconv", 6) / 6, "tflite_bytes": stats.get("size", 96_892)}
        manifest["files"] = {"model.tflite": {"sha256": SHA, "bytes": stats.get("size", 96_892)}}
    (run / "manifest.json").write_text(json.dumps(manifest))
    return run


@pytest.fixture
def runs(tmp_path):
    """A folder of runs: two devices (host and board), a failed and an invalid configuration,
    a run trained but never converted, a malformed bench file, and a rerun configuration."""
    root = tmp_path / "runs"
    tiny = _run(root, "tiny", model="bireal-tiny", top1=0.97)
    _bench(tiny, "local", [_result(1, median=3.7, peak=30.5), _result(4, median=2.1, valid=False, runs=3)])
    _bench(tiny, "bananapi", [_result(1, median=1.2, peak=12.0), _result(4, ok=False, error_kind="crash")], kind="board")
    qn = _run(root, "qn", model="quicknet", published=63.3, params=13_000_000, size=4_400_000, bconv=5)
    _bench(qn, "local", [_result(1, median=200.0)], started="2026-01-01T00:00:00Z")
    _bench(qn, "local", [_result(1, median=80.0), _result(4, median=40.0)], started="2026-01-02T00:00:00Z")
    (qn / "bench" / "local-broken.json").write_text("{not json")
    _run(root, "untrained", model="quicknet-large", converted=False, published=66.9)
    return root


def test_find_runs_in_folders_and_errors(runs, tmp_path):
    assert sorted(p.name for p in find_runs([runs])) == ["qn", "tiny", "untrained"]
    assert [p.name for p in find_runs([runs / "qn", runs])][:1] == ["qn"] and len(find_runs([runs / "qn", runs])) == 3
    (tmp_path / "empty").mkdir()
    with pytest.raises(Exception, match="no run directory"):
        find_runs([tmp_path / "empty"])
    with pytest.raises(Exception, match="no such run directory"):
        find_runs([tmp_path / "nope"])


def test_runs_with_one_name_stay_apart(tmp_path):
    for folder in ("monday", "tuesday"):
        _run(tmp_path / folder, "tiny", model="bireal-tiny", top1=0.9)
    assert sorted(r["name"] for r in build_report([tmp_path])["runs"]) == ["monday/tiny", "tuesday/tiny"]
    assert [r["name"] for r in build_report([tmp_path / "monday" / "tiny"])["runs"]] == ["tiny"]


def test_load_run_reads_defensively(runs):
    qn = load_run(runs / "qn")
    assert qn["top1"] is None and qn["published_top1"] == 63.3 and qn["published_dataset"] == "imagenet"
    # the later record of a configuration wins; the malformed file is a problem, not a crash
    local = {b["threads"]: b for b in qn["benchmarks"]}
    assert local[1]["median_ms"] == 80.0 and local[4]["median_ms"] == 40.0
    assert any("local-broken.json" in p for p in qn["problems"])
    tiny = load_run(runs / "tiny")
    assert tiny["top1"] == pytest.approx(97.0)
    untrained = load_run(runs / "untrained")
    assert untrained["benchmarks"] == [] and untrained["tflite_bytes"] is None


def test_markdown_report_tables_per_device(runs, cli_runner):
    result = cli_runner.invoke(cli, ["report", str(runs)])
    assert result.exit_code == 0, result.output
    md = result.output
    assert "## bananapi: board figures" in md
    assert "## local: host figures (not an ARM board)" in md
    assert "## not benchmarked" in md and "not converted" in md
    assert "| tiny | bireal-tiny | digits | 97.0% | - |" in md
    assert "63.3% (imagenet)" in md and "random weights" in md
    assert "1.20 / 1.32" in md and "failed: crash" in md and "crash at 4 thr" in md
    assert "2.10 / 2.31 (invalid)" in md and "invalid at 4 thr" in md
    assert "| 30.5 |" in md  # peak memory
    assert "5/6 (83%)" in md and "6/6 (100%)" in md  # LceBconv2d coverage
    assert "published reference figures" in md and "| QuickNetSmall | Raspberry Pi 4B | 1 | 27.7 |" in md


def test_device_filter(runs, cli_runner):
    result = cli_runner.invoke(cli, ["report", str(runs), "--device", "bananapi"])
    assert result.exit_code == 0, result.output
    assert "bananapi: board figures" in result.output and "## local" not in result.output
    assert "## not benchmarked on bananapi" in result.output
    bad = cli_runner.invoke(cli, ["report", str(runs), "--device", "pi5"])
    assert bad.exit_code == 2 and "no benchmark on device 'pi5'" in bad.output and "bananapi, local" in bad.output


def test_odd_values_never_crash_the_report(tmp_path, cli_runner):
    run = tmp_path / "odd"
    (run / "bench").mkdir(parents=True)
    (run / "manifest.json").write_text(json.dumps({
        "model": "m", "stats": "n/a", "conversion": [1], "metrics": {"val_accuracy": "nan"},
        "card": {"published": {"imagenet_top1": None, "imagenet_top5": 80.0}}, "benchmarks": 3}))
    (run / "bench" / "a.json").write_text(json.dumps([1, 2]))
    (run / "bench" / "b.json").write_text(json.dumps({"device": "x", "results": [1, None, {"latency": None, "ok": True}]}))
    (tmp_path / "no-manifest-here").mkdir()
    for fmt in ("md", "html", "json", "csv"):
        result = cli_runner.invoke(cli, ["report", str(tmp_path), "--format", fmt])
        assert result.exit_code == 0, (fmt, result.output)
    r = load_run(run)
    assert r["top1"] is None and r["params"] is None and r["published_top1"] is None
    # a record that names no flatbuffer is no figure of the run: stale, shown apart
    assert r["benchmarks"] == [] and [b["device"] for b in r["stale"]] == ["x"]
    assert r["stale"][0]["figure_kind"] == "unknown"


def test_host_figures_are_never_called_board_figures(tmp_path):
    run = _run(tmp_path, "r", model="m", top1=0.5)
    _bench(run, "old", [_result(1, median=1.0)], kind=None, board=False)
    _bench(run, "mystery", [_result(1, median=1.0)], kind=None, board=True, started="2026-01-03T00:00:00Z")
    kinds = {b["device"]: b["figure_kind"] for b in load_run(run)["benchmarks"]}
    # A record must say what its figures are: the report reads no other field to guess it.
    assert kinds == {"old": "unknown", "mystery": "unknown"}
    titles = [t["title"] for t in device_tables(build_report([run]))]
    assert "old: unknown figure kind" in titles and "mystery: unknown figure kind" in titles
    assert not any("board figures" in t for t in titles)


def test_aggregate_only_figures_show_the_mean(tmp_path, cli_runner):
    """lce_benchmark_model prints aggregates only: no median or p90, so the mean is shown as such."""
    run = _run(tmp_path, "r", model="m", top1=0.5)
    result = _result(1)
    result["latency"] = {"runs": 50, "mean_ms": 12.34, "std_ms": 0.2, "min_ms": 12.0, "max_ms": 13.0}
    _bench(run, "bananapi", [result], kind="board")
    out = tmp_path / "r.md"
    assert cli_runner.invoke(cli, ["report", str(run), "--out", str(out)]).exit_code == 0
    md = out.read_text()
    assert "| mean 12.34 |" in md
    assert "![accuracy-latency](r-accuracy-latency.png)" in md and (tmp_path / "r-accuracy-latency.png").exists()


def test_json_and_csv(runs, cli_runner, tmp_path):
    out = tmp_path / "r.json"
    assert cli_runner.invoke(cli, ["report", str(runs), "--out", str(out)]).exit_code == 0
    data = json.loads(out.read_text())
    assert {r["model"] for r in data["runs"]} == {"bireal-tiny", "quicknet", "quicknet-large"}
    assert len(data["published"]) == 7
    result = cli_runner.invoke(cli, ["report", str(runs), "--format", "csv"])
    rows = list(csv.DictReader(io.StringIO(result.output)))
    # tiny: 2 devices x 2 threads, qn: 2 threads, untrained: one line without a device
    assert len(rows) == 7
    crash = [r for r in rows if r["error_kind"] == "crash"]
    assert len(crash) == 1 and crash[0]["device"] == "bananapi" and crash[0]["figure_kind"] == "board"


def test_report_does_not_import_tensorflow(runs, tmp_path):
    code = (
        "import sys; from click.testing import CliRunner; from edgebnn.cli import cli; "
        f"r = CliRunner().invoke(cli, ['report', {str(runs)!r}, '--out', {str(tmp_path / 'r.html')!r}]); "
        "assert r.exit_code == 0, r.output; "
        "assert 'tensorflow' not in sys.modules, 'tensorflow was imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
    assert (tmp_path / "r.html").stat().st_size > 10_000
    assert sorted(p.name for p in tmp_path.glob("*.png")) == [
        "r-accuracy-latency.png", "r-latency-threads.png", "r-size-latency.png"]


def test_pareto_front():
    points = [(10, 60), (20, 65), (15, 59), (30, 64), (5, 50), (40, 70)]
    assert pareto_front(points) == [(5, 50), (10, 60), (20, 65), (40, 70)]


def test_plots_are_pngs(runs):
    plots = draw_all(build_report([runs]))
    assert set(plots) == {"accuracy-latency", "size-latency", "latency-threads"}
    assert all(png.startswith(b"\x89PNG") and len(png) > 5000 for png in plots.values())


def test_chromium_missing_fails_under_ci_and_skips_elsewhere(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # a PATH without chromium
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="chromium is not installed"):
        chromium()
    monkeypatch.delenv("CI")
    with pytest.raises(pytest.skip.Exception):
        chromium()


def test_html_renders_in_headless_chromium(runs, cli_runner, tmp_path):
    browser = chromium()
    page = tmp_path / "report.html"
    assert cli_runner.invoke(cli, ["report", str(runs), "--out", str(page)]).exit_code == 0
    text = page.read_text()
    assert "http://" not in text and "https://" not in text  # self-contained: nothing to fetch
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={tmp_path / 'profile'}"]
    dom = subprocess.run([browser, *flags, "--dump-dom", page.as_uri()], capture_output=True, text=True,
                         timeout=120, check=True).stdout
    assert dom.count("<table>") == 4  # bananapi, local, not benchmarked, published
    assert "local: host figures (not an ARM board)" in dom and "bananapi: board figures" in dom
    assert dom.count('src="data:image/png;base64,') == 3
    shot = tmp_path / "shot.png"
    subprocess.run([browser, *flags, "--window-size=1200,1600", f"--screenshot={shot}", page.as_uri()],
                   capture_output=True, timeout=120, check=True)
    assert shot.read_bytes().startswith(b"\x89PNG") and shot.stat().st_size > 20_000


def test_compare_two_runs(runs, cli_runner):
    result = compare(load_run(runs / "tiny"), load_run(runs / "qn"))
    assert result["device_a"] == result["device_b"] == "local"
    rows = {r[0]: r for r in result["rows"]}
    assert rows["latency 1 thr (median / p90 ms)"][3] == f"{80.0 / 3.7:.2f}x"
    assert rows["flatbuffer"][3] == f"{4_400_000 / 96_892:.2f}x"
    assert result["warnings"] == []
    out = cli_runner.invoke(cli, ["compare", str(runs / "tiny"), str(runs / "qn"), "--json"])
    assert out.exit_code == 0, out.output
    assert json.loads(out.output)["rows"] == result["rows"]


def test_compare_two_devices_of_one_run(runs, cli_runner):
    result = cli_runner.invoke(cli, ["compare", str(runs / "tiny"), "--device", "local", "--device", "bananapi"])
    assert result.exit_code == 0, result.output
    assert "A: bireal-tiny on local (host)" in result.output and "B: bireal-tiny on bananapi (board)" in result.output
    assert f"{1.2 / 3.7:.2f}x" in result.output
    assert "not like for like" in result.output  # host against board is flagged


def test_compare_errors(runs, cli_runner):
    result = cli_runner.invoke(cli, ["compare", str(runs / "tiny")])
    assert result.exit_code == 2 and "two runs" in result.output
    result = cli_runner.invoke(cli, ["compare", str(runs / "tiny"), str(runs / "qn"), "--device", "bananapi"])
    assert result.exit_code == 2 and "on device 'bananapi'" in result.output
    result = cli_runner.invoke(cli, ["compare", str(runs), str(runs / "qn")])
    assert result.exit_code == 2 and "holds 3 runs" in result.output


def test_report_of_a_real_run(tiny_run, cli_runner):
    from edgebnn.device.bench import bench_run
    from edgebnn.device.protocol import BenchConfig

    bench_run(tiny_run, devices="local", configs=[BenchConfig(threads=1, runs=3, warmup=1, min_secs=0)])
    (r,) = build_report([tiny_run.path])["runs"]
    assert r["model"] == "bireal-tiny" and r["bconv"] == r["binary_layers"] > 0
    # tiny_run is shared by the session: other tests may have benchmarked it on "loopback" or swept it.
    (entry,) = [b for b in r["benchmarks"] if b["threads"] == 1 and b["device"] == "local" and not b["xnnpack"]
                and not b["indirect_bgemm"] and not b["affinity"]]
    assert entry["ok"] and entry["figure_kind"] == "host" and entry["median_ms"] > 0 and entry["peak_mb"] is not None
    result = cli_runner.invoke(cli, ["report", str(tiny_run.path)])
    assert "local: host figures" in result.output and "bireal-tiny" in result.output


def test_run_all_collects_json_lines(tmp_path):
    bench = tmp_path / "benchmarks"
    bench.mkdir()
    (bench / "fast.py").write_text(
        "import json, sys\nprint('warming up')\n"
        "print(json.dumps({'benchmark': 'fast', 'quick': '--quick' in sys.argv, 'ratio': 2.5}))\n")
    (bench / "broken.py").write_text("import sys\nsys.exit('no model --> <oops>')\n")
    # One JSON line per model, as convert_models.py once printed: keeping the last would drop figures.
    (bench / "chatty.py").write_text("print('{\"model\": \"a\"}')\nprint('{\"model\": \"b\"}')\n")
    run_all = [sys.executable, str(ROOT / "benchmarks" / "run_all"), "--dir", str(bench)]
    proc = subprocess.run(run_all + ["--quick"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1  # two scripts failed
    lines = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [(x["script"], x["ok"]) for x in lines] == [("broken", False), ("chatty", False), ("fast", True)]
    assert "2 JSON lines on stdout" in lines[1]["error"]
    assert lines[2]["result"] == {"benchmark": "fast", "quick": True, "ratio": 2.5}
    results = bench / "RESULTS.md"
    md = results.read_text()
    assert "| fast | ok |" in md and "ratio: 2.5" in md and "| broken | failed |" in md and "no model" in md
    assert "cores" in md and "commit" in md and "run_all --quick" in md
    only = subprocess.run(run_all + ["fast", "--out", str(tmp_path / "R.md")], capture_output=True, text=True, timeout=120)
    assert only.returncode == 0 and '"quick": false' in (tmp_path / "R.md").read_text()
    bad = subprocess.run(run_all + ["nope"], capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "unknown benchmark(s) nope" in bad.stderr

    # Re-running a subset replaces its entries and keeps the others, each with its own date and run.
    (bench / "broken.py").write_text("import json\nprint(json.dumps({'benchmark': 'broken', 'fixed': True}))\n")
    again = subprocess.run(run_all + ["broken"], capture_output=True, text=True, timeout=120)
    assert again.returncode == 0 and "2 earlier entries kept" in again.stderr
    md = results.read_text()
    assert md.count("\n## ") == 3 and "| broken | ok |" in md and "fixed: True" in md and "no model" not in md
    assert "ratio: 2.5" in md and "| chatty | failed |" in md
    rows = {line.split(" | ")[0]: line for line in md.splitlines() if line.startswith("| ")}
    assert "(--quick)" in rows["| fast"] and "(--quick)" not in rows["| broken"]


@pytest.mark.parametrize("script", sorted(p.name for p in (ROOT / "benchmarks").glob("*.py")))
def test_every_benchmark_takes_quick(script):
    # run_all --quick passes --quick to every script: one that rejected it would fail the whole run.
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / script), "--help"], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0 and "--quick" in proc.stdout, proc.stderr


def test_convert_models_keeps_failed_models_inside_its_one_record(capsys):
    import importlib.util
    from types import SimpleNamespace

    spec = importlib.util.spec_from_file_location("convert_models", ROOT / "benchmarks" / "convert_models.py")
    convert_models = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(convert_models)

    def measure(card):
        if card.name == "broken":
            raise ValueError("cannot build at 64x64\nmore detail")
        ratio = {"a": 1.5, "c": 2.5}[card.name]
        return {"model": card.name, "bconv_coverage": 1.0, "parity_ok": True, "size_ratio": 1.1,
                "latency_ratio_lce_over_float": ratio}

    figures = convert_models.measure_all([SimpleNamespace(name=n) for n in ("a", "broken", "c")], measure)
    assert [r["model"] for r in figures["models"]] == ["a", "broken", "c"]
    assert figures["models"][1] == {"model": "broken", "error": "ValueError: cannot build at 64x64"}
    assert figures["summary"] == {"models": 3, "measured": 2, "failed": 1, "failed_models": ["broken"],
                                  "full_bconv_coverage": 2, "parity_ok": 2,
                                  "median_latency_ratio_lce_over_float": 2.0, "median_size_ratio": 1.1}
    assert "cannot build" in capsys.readouterr().err  # the traceback goes to stderr
