"""Issues 21 and 23, the device and report side: what a device or a shared run directory brings is
data, every figure is bound to the flatbuffer it measured, and nothing measured is lost.

Each case goes through the command a user runs (CliRunner on ``edgebnn.cli.cli``, or an ``edgebnn``
process where a signal or a second user is part of it), with the real local device, the real
OpenSSH board (tests/sshd.py), a real second user (``nobody``), real SIGINT and a real full tmpfs.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from faults import fails_cleanly, small_tmpfs, wait_for
from sshd import TOOL, free_port, sshd  # noqa: F401  (fixture)
from test_report import _bench, _result, _run
from test_ssh import fake_run, fake_runtime, printing_tool

from edgebnn.cli import cli
from edgebnn.run.rundir import sha256_of

EDGEBNN = str(Path(sys.executable).with_name("edgebnn"))
FAST = ["--runs", "3", "--warmup", "0", "--min-secs", "0"]
NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
TERMINAL = ("\x1b", "\x07", "\x9b", "\x08", "\r")  # nothing a terminal acts on may reach it


def edgebnn(*args, env=None) -> subprocess.Popen:
    return subprocess.Popen([EDGEBNN, *map(str, args)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env)


def bench_record(run: Path) -> dict:
    """The run's only bench record."""
    (path,) = (run / "bench").glob("*.json")
    return json.loads(path.read_text())


@pytest.fixture
def fresh(tiny_copy):
    """A private copy of the shared converted run, without the benchmarks other tests gave it."""
    shutil.rmtree(tiny_copy.path / "bench", ignore_errors=True)
    return tiny_copy


def as_nobody(*argv: str, **kwargs) -> subprocess.CompletedProcess:
    """``argv`` run as the real second user ``nobody``."""
    if os.geteuid() != 0:
        pytest.skip("needs root to act as a second user")
    return subprocess.run([*NOBODY, *argv], check=True, capture_output=True, text=True, **kwargs)


def fill(disk: Path) -> None:
    """Write to ``disk`` until it is full (a real ENOSPC, as another program filling it would)."""
    fd = os.open(disk / "filler", os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    try:
        with contextlib.suppress(OSError):
            while True:
                os.write(fd, b"x" * 4096)
    finally:
        os.close(fd)


@contextlib.contextmanager
def shared_tmp():
    """A fresh folder right in /tmp (sticky, world-writable): where another user can create trees first."""
    folder = Path("/tmp") / f"edgebnn-trust-{uuid.uuid4().hex[:10]}"
    try:
        yield folder
    finally:
        subprocess.run(["rm", "-rf", str(folder)], check=False)


# -- A. the local device's work folder is private ----------------------------------------------------
def test_the_local_work_folder_is_this_user_s_own(fresh, cli_runner, tmp_path, monkeypatch):
    monkeypatch.setenv("EDGEBNN_CACHE", str(tmp_path / "cache"))
    result = cli_runner.invoke(cli, ["bench", str(fresh.path), "--json", *FAST])
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout)
    work = tmp_path / "cache" / "work"
    assert record["profile"]["workdir"] == str(work)
    assert all(u["path"].startswith(f"{work}/") for u in record["uploads"].values())
    st = work.stat()
    assert st.st_uid == os.geteuid() and st.st_mode & 0o777 == 0o700


def _payload(marker: Path) -> str:
    """A stand-in for edgebnn's runner that another user plants: it runs code, and makes up figures."""
    return f"import pathlib\npathlib.Path({str(marker)!r}).write_text('pwned')\nprint({TOOL!r})\n"


def _plant(work: Path, marker: Path, owner: list[str]) -> subprocess.Popen:
    """Create ``work`` with the runner's content-addressed path holding the payload (as ``owner``), and
    keep swapping the payload back in (the race between edgebnn's check and its run)."""
    from edgebnn.device import runner

    digest = sha256_of(Path(runner.__file__))
    folder = work / "bin" / digest
    payload = work / "payload.py"
    subprocess.run([*owner, "sh", "-c", 'mkdir -p "$1" && chmod 777 "$1" && cat > "$2" && cp "$2" "$1/runner.py"',
                    "sh", str(folder), str(payload)], input=_payload(marker), text=True, check=True)
    swap = f'while :; do cp "{payload}" "{folder}/.r$$" && mv -f "{folder}/.r$$" "{folder}/runner.py"; done'
    return subprocess.Popen([*owner, "sh", "-c", swap], start_new_session=True, stderr=subprocess.DEVNULL)


@pytest.mark.parametrize("case", ["nobody-workdir", "devices-check", "writable-workdir", "nobody-cache"])
def test_a_work_folder_another_user_could_change_is_refused(fresh, cli_runner, tmp_path, monkeypatch, case):
    marker = tmp_path / "PWNED"
    before = sorted((fresh.path / "bench").glob("*.json"))
    with shared_tmp() as shared:
        swapper = None
        if case == "nobody-cache":  # the default folder, in a cache folder nobody made first (we make work)
            as_nobody("mkdir", "-p", "-m", "755", str(shared / "cache"))
            what = f"its parent {shared} is owned by nobody (uid 65534)"
            monkeypatch.setenv("EDGEBNN_CACHE", str(shared / "cache"))
        elif case == "writable-workdir":  # ours, but anyone may write it: nobody plants the payload in it
            (shared / "work").mkdir(parents=True)
            (shared / "work").chmod(0o777)
            swapper, what = _plant(shared / "work", marker, NOBODY), "its mode is 0777: group or others can write it"
        else:  # nobody made the tree first
            as_nobody("mkdir", "-m", "755", str(shared))
            swapper, what = _plant(shared / "work", marker, NOBODY), "it is owned by nobody (uid 65534)"
        try:
            if case == "nobody-cache":
                devices = []
            else:
                file = tmp_path / "devices.toml"
                file.write_text(f'[devices.local]\nworkdir = "{shared}/work"\n')
                devices = ["--devices-file", str(file)]
            if case == "devices-check":
                result = cli_runner.invoke(cli, ["devices", "check", "local", *devices])
            else:
                result = cli_runner.invoke(cli, ["bench", str(fresh.path), *devices, *FAST])
        finally:
            if swapper is not None:
                os.killpg(swapper.pid, signal.SIGKILL)
                swapper.wait()
        fails_cleanly(result, 2, "refusing the local work folder", what, "Another user could swap the runner",
                      "set a private `workdir` for this device in your devices file")
        assert not marker.exists()
    assert sorted((fresh.path / "bench").glob("*.json")) == before


# -- B. what a device prints never reaches the terminal raw -------------------------------------------
ESCAPES = "\x1b]0;owned\x07\x1b[2J\x1b[31m\x9b1mred\x1b[0m\x08"  # title, clear, colours, backspace


def test_what_a_device_prints_reaches_the_terminal_without_escape_sequences(sshd, tmp_path, cli_runner):  # noqa: F811
    run = fake_run(tmp_path)
    crash = fake_runtime(tmp_path / "rt", f"printf '{ESCAPES}lce_benchmark_model: not found\\n' >&2\nexit 127\n")
    python = fake_runtime(tmp_path / "py", f"printf '{ESCAPES}0.16.0\\n'\n", name="python3")
    devices = tmp_path / "devices.toml"
    devices.write_text(sshd.toml("crashy", runtime=crash) + sshd.toml("chatty", runtime="python", python=python))
    bench = cli_runner.invoke(cli, ["bench", str(run.path), "--device", "crashy", "--devices-file", str(devices),
                                    *FAST])
    check = cli_runner.invoke(cli, ["devices", "check", "chatty", "--devices-file", str(devices)])
    assert bench.exit_code == 1 and "runtime_start" in bench.output, bench.output
    assert check.exit_code == 0 and "LCE red0.16.0" in check.output, check.output
    assert "(\"redlce_benchmark_model:" in bench.output  # quoted from the board, without its escapes
    for output in (bench.output, check.output):
        assert not [c for c in TERMINAL if c in output], repr(output)
    assert ESCAPES in bench_record(run.path)["results"][0]["raw"]  # the record keeps it raw (JSON escapes it)
    as_json = cli_runner.invoke(cli, ["devices", "check", "chatty", "--devices-file", str(devices), "--json"])
    assert "\x1b" not in as_json.output and json.loads(as_json.output)["fingerprint"]["runtime"]["lce_version"] \
        == ESCAPES + "0.16.0"


# -- C. a figure is shown only beside the flatbuffer it measured ----------------------------------------
def test_compare_after_an_int8_reconvert_shows_the_float_figure_as_stale(fresh, cli_runner, tmp_path):
    a = fresh.path
    assert cli_runner.invoke(cli, ["bench", str(a), *FAST]).exit_code == 0
    b = tmp_path / "int8"
    shutil.copytree(a, b)  # a shared run, re-converted: its bench records measured the float file
    converted = cli_runner.invoke(cli, ["convert", str(b), "--int8", "--data", "digits"])
    assert converted.exit_code == 0, converted.output
    result = cli_runner.invoke(cli, ["compare", str(a), str(b)])
    assert result.exit_code == 0, result.output
    (line,) = [ln for ln in result.output.splitlines() if ln.lstrip().startswith("latency")]
    assert "stale:" in line and "x" not in line.split(")")[-1]  # one measurement of the float file: no ratio
    rows = {r[0]: r for r in json.loads(cli_runner.invoke(cli, ["compare", str(a), str(b), "--json"]).output)["rows"]}
    latency = rows["latency 1 thr (median / p90 ms)"]
    assert latency[2].startswith("stale: ") and latency[3] == "-"
    assert "B's latency on bireal-tiny was measured on another flatbuffer" in result.output
    report = json.loads(cli_runner.invoke(cli, ["report", str(b), "--format", "json"]).output)
    (r,) = report["runs"]
    assert r["benchmarks"] == [] and len(r["stale"]) == 1 and r["stale"][0]["model_sha256"] != r["model_sha256"]
    md = cli_runner.invoke(cli, ["report", str(a), str(b)]).output
    assert "## stale figures: measured on another flatbuffer" in md and "only stale figures" in md
    from edgebnn.reporting.load import build_report
    from edgebnn.reporting.plots import accuracy_panels, size_latency  # noqa: F401

    plotted = build_report([a, b])
    assert [len(run["benchmarks"]) for run in plotted["runs"]] == [1, 0]  # what every plot draws from
    assert cli_runner.invoke(cli, ["bench", str(b), *FAST]).exit_code == 0  # measured now: compared
    again = json.loads(cli_runner.invoke(cli, ["compare", str(a), str(b), "--json"]).output)
    assert {r[0]: r for r in again["rows"]}["latency 1 thr (median / p90 ms)"][3].endswith("x")


# -- D. saved tuned settings belong to the bytes that were tuned ----------------------------------------
def test_saved_tuned_settings_apply_only_to_the_flatbuffer_tuned(fresh, cli_runner, tmp_path):
    devices = ["--devices-file", str(tmp_path / "devices.toml")]

    def tuned_from(*src) -> bool:
        ran = cli_runner.invoke(cli, ["bench", *map(str, src), "--json", *devices, *FAST])
        assert ran.exit_code == 0, ran.output
        assert ("ran the tuned configuration" in ran.stderr) == ("tuned_from" in json.loads(ran.stdout))
        return "tuned_from" in json.loads(ran.stdout)

    tuned = cli_runner.invoke(cli, ["bench", str(fresh.path), "--tune", "--save-tuned", *devices, *FAST])
    assert tuned.exit_code == 0 and "saved as local's defaults for bireal-tiny@32x32x1" in tuned.output, tuned.output
    assert not tuned_from("bireal-tiny", "--width", "2", "--out", tmp_path / "wide")  # another width of the model
    assert tuned_from(fresh.path)  # the bytes tuned
    one, other = tmp_path / "one" / "model.tflite", tmp_path / "other" / "model.tflite"  # two files of one name
    for path, source in ((one, fresh.tflite_path), (other, tmp_path / "wide" / "model.tflite")):
        path.parent.mkdir()
        shutil.copy(source, path)
    tuned = cli_runner.invoke(cli, ["bench", str(one), "--out", str(tmp_path / "r1"), "--tune", "--save-tuned",
                                    *devices, *FAST])
    assert tuned.exit_code == 0 and "saved as local's defaults for model (flatbuffer sha256" in tuned.output
    assert not tuned_from(other, "--out", tmp_path / "r2")
    assert tuned_from(one, "--out", tmp_path / "r3")


# -- E. an interrupted --tune chooses nothing ------------------------------------------------------------
def test_an_interrupted_tune_chooses_nothing_and_says_how_far_it_got(fresh, tmp_path, cli_runner):
    devices = tmp_path / "devices.toml"
    proc = edgebnn("bench", fresh.path, "--tune", "--save-tuned", "--devices-file", devices, "--runs", "3",
                   "--warmup", "0", "--min-secs", "1.5")
    bench = fresh.path / "bench"

    def measured() -> int:
        files = list(bench.glob("*.json")) if bench.exists() else []
        try:
            return len(json.loads(files[0].read_text())["results"]) if files else 0
        except ValueError:  # never half-written (atomic), but be safe while it is replaced
            return 0

    try:
        wait_for(lambda: measured() >= 2 or proc.poll() is not None, timeout=120, what="two configurations ran")
        assert proc.poll() is None, proc.communicate()
        proc.send_signal(signal.SIGINT)  # Ctrl-C, as a terminal sends it
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 1 and "Traceback" not in err, err
    record = bench_record(fresh.path)
    ran = record["configurations"]["ran"]
    assert 2 <= ran < 8 == record["configurations"]["planned"] and len(record["results"]) == ran
    assert f"interrupted: configurations measured local: {ran} of 8; kept in" in err
    assert record["error_kind"] == "interrupted" and record["complete"] is False
    assert record["tune"]["index"] is None and record["tune"]["config"] is None and record["tune"]["ran"] == ran
    assert not devices.with_name("devices.setup.json").exists()  # nothing chosen, nothing saved
    assert fresh.manifest["benchmarks"][-1]["complete"] is False
    report = cli_runner.invoke(cli, ["report", str(fresh.path)])
    assert f"incomplete: {ran} of 8 configurations ran, nothing chosen" in report.output


# -- F, G. figures that are not numbers: that configuration's error, the others kept ------------------------
def test_a_non_finite_figure_is_never_valid(sshd, tmp_path, cli_runner):  # noqa: F811
    counter = tmp_path / "count"
    tool = fake_runtime(tmp_path / "rt", f"""n=$(cat {counter} 2>/dev/null || echo 0); echo $((n+1)) > {counter}
case $n in
  0) cat <<'EOF'
{TOOL.replace("avg=1650.25", "avg=1e999")}EOF
  ;;
  1) cat <<'EOF'
{TOOL}edgebnn per-run us: 1650 nan 1640
EOF
  ;;
  *) cat <<'EOF'
{TOOL}EOF
  ;;
esac
""")
    run = fake_run(tmp_path)
    devices = tmp_path / "devices.toml"
    devices.write_text(sshd.toml("loopback", runtime=tool))
    result = cli_runner.invoke(cli, ["bench", str(run.path), "--device", "loopback", "--devices-file", str(devices),
                                     "--threads", "1,1,2", *FAST, "--json"])
    assert result.exit_code == 0, result.output
    inf, nan, good = json.loads(result.stdout)["results"]
    for bad, what in ((inf, "timed avg=inf"), (nan, "per-run time #2 = nan")):
        assert not bad["ok"] and not bad["valid"] and bad["error_kind"] == "unparsable" and what in bad["error"]
        assert bad["latency"] == {}
    assert good["ok"] and good["valid"]
    record = Path(json.loads(result.stdout)["file"])  # an older record holding a NaN: not valid either
    data = json.loads(record.read_text())
    data["results"][2]["latency"]["median_ms"] = float("nan")
    record.write_text(json.dumps(data))
    entry = json.loads(cli_runner.invoke(cli, ["report", str(run.path), "--format", "json"]).output)["runs"][0]
    two = [b for b in entry["benchmarks"] if b["threads"] == 2][0]
    assert two["valid"] is False and two["median_ms"] is None


def test_one_unreadable_configuration_keeps_the_others(sshd, tmp_path, cli_runner):  # noqa: F811
    stray = TOOL.replace("init=1.5 overall", "init=. overall")  # one stray "." in one line
    tool = fake_runtime(tmp_path / "rt", f"""case "$*" in
  *--num_threads=2*) cat <<'EOF'
{stray}EOF
  ;;
  *) cat <<'EOF'
{TOOL}EOF
  ;;
esac
""")
    run = fake_run(tmp_path)
    devices = tmp_path / "devices.toml"
    devices.write_text(sshd.toml("loopback", runtime=tool))
    result = cli_runner.invoke(cli, ["bench", str(run.path), "--device", "loopback", "--devices-file", str(devices),
                                     "--threads", "2,1", *FAST, "--json"])
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout)
    assert not record["error_kind"] and record["ok"]
    broken, kept = record["results"]
    assert broken["error_kind"] == "unparsable" and "not a number" in broken["error"] and "init=." in broken["error"]
    assert kept["ok"] and kept["valid"] and kept["latency"]["mean_ms"] == pytest.approx(1.65025)
    assert [r["error_kind"] for r in bench_record(run.path)["results"]] == ["unparsable", ""]


# -- H. a setup record that cannot be read is never replaced ------------------------------------------------
@pytest.mark.parametrize("kind", ["truncated", "folder", "list"])
def test_a_broken_setup_record_is_refused_never_replaced(fresh, tmp_path, cli_runner, kind):
    devices = tmp_path / "devices.toml"
    setup = devices.with_name("devices.setup.json")
    whole = json.dumps({"pi": {"runtime_file": "/x/lce_benchmark_model", "tuned": {"m@1x1x1/sha256:00": {}}}})
    if kind == "folder":
        setup.mkdir()
    else:
        setup.write_text(whole[: len(whole) // 2] if kind == "truncated" else "[1]")
    before = setup.read_text() if setup.is_file() else None
    for args in (["--tune", "--save-tuned"], []):  # saving a choice, and reading one
        result = cli_runner.invoke(cli, ["bench", str(fresh.path), "--devices-file", str(devices), *args, *FAST])
        fails_cleanly(result, 1, f"cannot use the setup record {setup}", "edgebnn does not replace it",
                      "move it aside")
    assert (setup.read_text() if setup.is_file() else None) == before and setup.exists()
    assert not (fresh.path / "bench").exists()  # refused before anything ran
    listing = cli_runner.invoke(cli, ["devices", "--devices-file", str(devices)])
    assert listing.exit_code == 0 and f"warning: cannot use the setup record {setup}" in listing.output


# -- I. a full disk: a named error, and what was measured kept ----------------------------------------------
def test_a_disk_that_fills_during_a_bench_keeps_what_was_measured(tiny_run, tmp_path):
    with small_tmpfs(tmp_path / "disk", kib=2048) as disk:
        run = disk / "run"
        shutil.copytree(tiny_run.path, run, ignore=shutil.ignore_patterns("bench", "*.keras"))
        proc = edgebnn("bench", run, "--threads", "1,1,1", "--runs", "3", "--warmup", "0", "--min-secs", "1.5")
        try:
            wait_for(lambda: list(run.glob("bench/*.json")) or proc.poll() is not None, timeout=120,
                     what="the first configuration was saved")
            fill(disk)
            out, err = proc.communicate(timeout=120)
        finally:
            proc.kill()
        record = json.loads(next(run.glob("bench/*.json")).read_text())
        leftovers = [p.name for p in run.rglob(".*tmp*")]
    assert proc.returncode == 1 and "Traceback" not in err and "unexpected" not in err, err
    assert "cannot save the bench record" in err and "No space left on device" in err and "free some space" in err
    kept = len(record["results"])
    assert 1 <= kept < 3 and all(r["ok"] for r in record["results"])
    assert f"the copy saved before holds {kept} of the 3 configurations measured" in err
    assert out.count("valid") >= 3  # every figure is printed, saved or not
    assert leftovers == []


def test_a_bench_on_a_full_disk_says_so(tiny_run, tmp_path, cli_runner):
    with small_tmpfs(tmp_path / "disk", kib=1024) as disk:
        run = disk / "run"
        shutil.copytree(tiny_run.path, run, ignore=shutil.ignore_patterns("bench", "*.keras"))
        fill(disk)
        result = cli_runner.invoke(cli, ["bench", str(run), *FAST])
    fails_cleanly(result, 1, "cannot save the bench record", "No space left on device", "nothing of it is saved",
                  "free some space in")
    assert "valid" in result.stdout  # the figure is printed even so


def test_report_out_on_a_full_disk_names_the_file(tmp_path, cli_runner):
    run = _run(tmp_path / "runs", "tiny", model="bireal-tiny", top1=0.9)
    _bench(run, "local", [_result(1, median=3.7)])
    with small_tmpfs(tmp_path / "disk", kib=32) as disk:
        result = cli_runner.invoke(cli, ["report", str(run), "--out", str(disk / "report.md")])
        leftovers = sorted(p.name for p in disk.iterdir())
    fails_cleanly(result, 1, "cannot write the report file", "No space left on device",
                  "free some space there or give another --out")
    assert all(not name.startswith(".") for name in leftovers)  # nothing half-written


# -- J. names from shared runs are text ---------------------------------------------------------------------
def test_names_from_shared_runs_are_text_in_the_report(tmp_path, cli_runner):
    root = tmp_path / "runs"
    evil = _run(root, "<img src=x onerror=alert(1)>", model="<script>alert(1)</script>", top1=0.8)
    money = _run(root, "run $\\undefinedmacro$", model="m $\\nosuchsymbol$ [x](javascript:alert(1))", top1=0.7)
    manifest = json.loads((money / "manifest.json").read_text())
    manifest["flips"] = {"per_epoch": [0.3, 0.1]}  # the flips plot labels a line by the run's name
    (money / "manifest.json").write_text(json.dumps(manifest))
    for run in (evil, money):
        _bench(run, "local", [_result(1, median=2.0)])
    out = tmp_path / "report.md"
    result = cli_runner.invoke(cli, ["report", str(root), "--out", str(out)])
    assert result.exit_code == 0, result.output
    md = out.read_text()
    assert "<script" not in md and "<img" not in md and "[x](javascript" not in md
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in md and "&lt;img src=x onerror=alert(1)&gt;" in md
    assert sorted(p.name for p in tmp_path.glob("report-*.png")) == [
        "report-accuracy-latency.png", "report-flips.png", "report-latency-threads.png", "report-size-latency.png"]


# -- K. suggested commands are quoted -----------------------------------------------------------------------
def test_suggested_ssh_commands_are_quoted(sshd, tmp_path, cli_runner):  # noqa: F811
    odd = tmp_path / "odd dir; touch PWNED"
    odd.mkdir()
    unknown = odd / "known_hosts"
    unknown.write_text("")
    stranger = Path(f"{odd}/stranger")
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(stranger)], check=True)
    devices = tmp_path / "devices.toml"
    port = free_port()
    devices.write_text(sshd.toml("keyless", known_hosts=str(unknown)) + sshd.toml("stranger", key=str(stranger))
                       + sshd.toml("lab board", port=port).replace("[devices.lab board]", '[devices."lab board"]'))
    check = lambda name: cli_runner.invoke(cli, ["devices", "check", name, "--devices-file", str(devices)])  # noqa: E731
    keyscan = check("keyless")
    fails_cleanly(keyscan, 1, f"`ssh-keyscan -p {sshd.port} 127.0.0.1 >> '{unknown}'`")
    auth = check("stranger")
    fails_cleanly(auth, 1, f"`ssh-copy-id -i '{stranger}' -p {sshd.port} {sshd.user}@127.0.0.1`")
    refused = check("lab board")
    fails_cleanly(refused, 1, "`edgebnn devices check 'lab board'`")


# -- L. figures are labelled by what was measured --------------------------------------------------------------
def test_figures_follow_the_architecture_the_preflight_saw(sshd, tmp_path, cli_runner):  # noqa: F811
    cores = sum(line.startswith("processor") for line in Path("/proc/cpuinfo").read_text().splitlines())
    run = fake_run(tmp_path)
    run.update(data="digits", metrics={"val_accuracy": 0.5})  # a top-1, so that the accuracy plot has a point
    devices = tmp_path / "devices.toml"  # a profile named for the paper's board, reaching this x86 machine
    devices.write_text(sshd.toml("bananapi", runtime=printing_tool(tmp_path / "rt"), board=True))
    result = cli_runner.invoke(cli, ["bench", str(run.path), "--device", "bananapi", "--devices-file", str(devices),
                                     "--threads", f"1,{cores + 1}", *FAST])
    assert result.exit_code == 0, result.output
    assert "on bananapi (host figures)" in result.stdout and "board figures" not in result.output
    assert "bananapi is x86_64 (uname -m), not an ARM board" in result.stderr
    assert f"threads {cores + 1} exceed the cores available ({cores} online)" in result.stderr
    record = bench_record(run.path)
    assert record["figure_kind"] == "host" and run.manifest["benchmarks"][-1]["figure_kind"] == "host"
    one, many = record["results"]
    assert one["valid"] and one["cores_available"] == cores
    assert many["ok"] and not many["valid"] and many["error_kind"] == "oversubscribed"
    assert f"exceed the {cores} online cores the preflight saw" in many["error"]
    md = cli_runner.invoke(cli, ["report", str(run.path)]).output
    assert "## bananapi: host figures" in md and "board figures" not in md.split("## published")[0]
    path = next((run.path / "bench").glob("*.json"))
    older = json.loads(path.read_text())
    older["figure_kind"] = "board"  # written before the kind followed the architecture
    path.write_text(json.dumps(older))
    from edgebnn.reporting.load import build_report
    from edgebnn.reporting.plots import accuracy_panels

    report = build_report([run.path])
    assert {b["figure_kind"] for b in report["runs"][0]["benchmarks"]} == {"host"}
    assert "bananapi: host figures" in cli_runner.invoke(cli, ["report", str(run.path)]).output
    assert [(p["device"], p["kind"]) for p in accuracy_panels(report) if p["device"]] == [("bananapi", "host")]


# -- M. top-1 on different datasets never share an axis ----------------------------------------------------------
def test_the_accuracy_plot_keeps_datasets_apart(tmp_path, cli_runner):
    from edgebnn.reporting.load import build_report
    from edgebnn.reporting.plots import accuracy_panels

    root = tmp_path / "runs"
    digits = _run(root, "tiny", model="bireal-tiny", top1=0.97, data="digits")
    zoo = _run(root, "qn", model="quicknet", published=63.3)  # random weights: the paper's ImageNet top-1
    cifar = _run(root, "c10", model="bireal-tiny", top1=0.81, data="cifar10:/data/cifar")
    for run in (digits, zoo, cifar):
        _bench(run, "local", [_result(1, median=3.0)])
    result = cli_runner.invoke(cli, ["report", str(root), "--out", str(tmp_path / "r.html")])
    assert result.exit_code == 0 and (tmp_path / "r-accuracy-latency.png").exists(), result.output
    panels = {panel["dataset"]: panel for panel in accuracy_panels(build_report([root]))}
    assert sorted(panels) == ["cifar10", "digits", "imagenet"]
    assert [p[2] for pts in panels["digits"]["groups"].values() for p in pts] == ["bireal-tiny"]
    assert list(panels["imagenet"]["groups"]) == ["paper top-1"] and panels["imagenet"]["published"]
    assert not panels["digits"]["published"] and not panels["cifar10"]["published"]  # ImageNet stars stay apart
