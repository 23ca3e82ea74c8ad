import asyncio
import json
import sys

import pytest

from edgebnn.device.local import LocalTransport
from edgebnn.device.output import OutputError, parse_benchmark_output
from edgebnn.device.profiles import get_profile
from edgebnn.device.protocol import BenchConfig, run_config
from edgebnn.device.stats import latency_stats
from edgebnn.errors import UsageError

# Output of lce_benchmark_model in the benchmark tool's format (TFLite 2.x benchmark_model).
TOOL_OUTPUT = """\
STARTING!
Log parameter values verbosely: [0]
Num threads: [4]
Graph: [/tmp/edgebnn/models/quicknet.tflite]
#threads used for CPU inference: [4]
Loaded model /tmp/edgebnn/models/quicknet.tflite
The input model file size (MB): 4.15366
Initialized session in 2.513ms.
Running benchmark for at least 1 iterations and at least 0.5 seconds but terminate if exceeding 150 seconds.
count=24 first=24178 curr=20615 min=20518 max=24178 avg=20847.2 std=725

Running benchmark for at least 50 iterations and at least 1 seconds but terminate if exceeding 150 seconds.
count=50 first=20710 curr=20671 min=20501 max=21350 avg=20787.5 std=171

Inference timings in us: Init: 2513, First inference: 24178, Warmup (avg): 20847.2, Inference (avg): 20787.5
Note: as the benchmark tool itself affects memory footprint, the following is only APPROXIMATE to the actual memory footprint of the model at runtime. Take the information at your discretion.
Memory footprint delta from the start of the tool (MB): init=4.71875 overall=11.8281
Overall peak memory footprint (MB) via periodic monitoring: 14.9883
"""


def test_parse_tool_output():
    figures = parse_benchmark_output(TOOL_OUTPUT)
    assert figures["timed"] == {"count": 50, "first": 20710, "curr": 20671, "min": 20501, "max": 21350,
                                "avg": 20787.5, "std": 171}
    assert figures["warmup"]["count"] == 24
    assert figures["timings"] == {"init": 2513, "first": 24178, "warmup_avg": 20847.2, "inference_avg": 20787.5}
    assert figures["memory"] == {"init_mb": 4.71875, "overall_mb": 11.8281, "peak_mb": 14.9883}
    assert "per_run_us" not in figures


def test_unparsable_output():
    with pytest.raises(OutputError):
        parse_benchmark_output("Segmentation fault\n")


def test_latency_stats():
    stats = latency_stats([1000.0] * 9 + [11000.0])
    assert stats["median_ms"] == 1.0
    assert stats["max_ms"] == 11.0
    assert stats["mean_ms"] == pytest.approx(2.0)
    assert stats["runs"] == 10


def runner_command(graph: str) -> list[str]:
    """edgebnn's runner on this machine, for one configuration without the protocol around it."""
    return [sys.executable, "-m", "edgebnn.device.runner", f"--graph={graph}"]


def run_local(config, graph, scratch, profile=None):
    """One configuration through the protocol's wrapper, on this machine."""
    return asyncio.run(run_config(LocalTransport(), profile or get_profile("local"), config,
                                  command=runner_command(str(graph)), scratch=str(scratch)))


def test_unknown_device():
    with pytest.raises(UsageError, match="unknown device 'pi5'"):
        get_profile("pi5")


def test_runner_figures_round_trip(tiny_run, tmp_path):
    config = BenchConfig(threads=1, runs=20, warmup=2, min_secs=0.0)
    result = run_local(config, tiny_run.tflite_path, tmp_path / "scratch")
    assert result.ok and result.valid, result.error
    assert len(result.figures["per_run_us"]) >= 20
    # The runner's own summary line agrees with the per-run times it printed.
    assert result.figures["timed"]["min"] == pytest.approx(min(result.figures["per_run_us"]), abs=1)
    assert result.latency["median_ms"] > 0


def test_run_that_misses_its_minimum_runs_or_duration_is_invalid(tiny_run, tmp_path):
    # max_secs stops the runner first, as it stops lce_benchmark_model: figures, but not valid ones.
    graph, local = str(tiny_run.tflite_path), get_profile("local")
    for config in (BenchConfig(runs=10**6, warmup=1, min_secs=0.0, max_secs=0.3),
                   BenchConfig(runs=3, warmup=1, min_secs=30.0, max_secs=0.3)):
        result = run_local(config, graph, tmp_path / "scratch", local)
        assert result.ok and not result.valid and result.latency["median_ms"] > 0, (config, result.error)
    result = run_local(BenchConfig(runs=3, warmup=1, min_secs=0.0), graph, tmp_path / "scratch", local)
    assert result.ok and result.valid


def test_low_free_memory_is_a_preflight_warning():
    from edgebnn.device.preflight import LOW_MEMORY_MB, check_device, problems

    local = get_profile("local")
    fingerprint = asyncio.run(check_device(local))["fingerprint"]
    assert fingerprint["mem_available_mb"] > 0
    for free, warned in ((LOW_MEMORY_MB - 1, True), (LOW_MEMORY_MB, False)):
        errors, warnings = problems(local, {**fingerprint, "mem_available_mb": free})
        assert any(f"only {free} MB of memory available" in w for w in warnings) == warned, warnings


def test_failed_configuration_is_recorded_not_raised(tmp_path):
    config = BenchConfig(threads=1, runs=1, warmup=0, min_secs=0.0)
    result = run_local(config, tmp_path / "missing.tflite", tmp_path / "scratch")
    assert not result.ok
    assert result.error_kind == "model_file" and "missing.tflite" in result.error


def test_bench_command_writes_json_and_manifest(tiny_run, cli_runner):
    from edgebnn.cli import cli

    result = cli_runner.invoke(cli, ["bench", str(tiny_run.path), "--runs", "10", "--warmup", "1", "--min-secs", "0", "--json"])
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout)
    assert record["figure_kind"] == "host"
    assert record["results"][0]["ok"]
    assert record["results"][0]["latency"]["p90_ms"] >= record["results"][0]["latency"]["median_ms"]
    entry = tiny_run.manifest["benchmarks"][-1]
    assert entry["device"] == "local" and entry["ok"] and entry["figure_kind"] == "host"
    assert json.loads((tiny_run.path / entry["file"]).read_text())["results"] == record["results"]


def test_peak_memory_is_the_runtime_s_own(tiny_run):
    """The runner is forked from this process, which holds TensorFlow (a GB or so): the peak
    it reports must be its own (a tiny model in LCE's interpreter: tens of MB), not ours."""
    import resource

    from edgebnn.device.bench import bench_run
    from edgebnn.device.protocol import BenchConfig

    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 > 400  # the large parent
    (record,) = bench_run(tiny_run, devices="local", configs=[BenchConfig(threads=1, runs=3, warmup=0, min_secs=0)])
    peak = record["results"][0]["figures"]["memory"]["peak_mb"]
    assert 5 < peak < 300, peak


def test_bench_command_passes_xnnpack_to_the_runtime(tiny_run, cli_runner):
    from edgebnn.cli import cli

    result = cli_runner.invoke(cli, ["bench", str(tiny_run.path), "--runs", "3", "--warmup", "0", "--min-secs", "0",
                                     "--use-xnnpack", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["results"][0]["config"]["xnnpack"] is True


# lce_benchmark_model with --enable_op_profiling=true, as TFLite >= 2.13 prints it: log lines
# prefixed with "INFO: ", tab-separated tables, and "Timings (microseconds)" lines that are not
# the timed-run summary.
PROFILED_OUTPUT = """\
INFO: STARTING!
INFO: Num threads: [1]
INFO: Enable op profiling: [1]
INFO: Initialized session in 3.1ms.
INFO: Running benchmark for at least 1 iterations and at least 0.5 seconds but terminate if exceeding 150 seconds.
INFO: count=40 first=14000 curr=12100 min=12000 max=14000 avg=12200 std=300

INFO: Running benchmark for at least 50 iterations and at least 1 seconds but terminate if exceeding 150 seconds.
INFO: count=83 first=12150 curr=12080 min=11990 max=12600 avg=12110.4 std=95

INFO: Inference timings in us: Init: 3100, First inference: 14000, Warmup (avg): 12200, Inference (avg): 12110.4
INFO: Memory footprint delta from the start of the tool (MB): init=2.0 overall=6.5
INFO: Profiling Info for Benchmark Initialization:
============================== Run Order ==============================
\t             [node type]\t  [start]\t  [first]\t [avg ms]\t     [%]\t  [cdf%]\t  [mem KB]\t[times called]\t[Name]
\t         AllocateTensors\t    0.000\t    0.210\t    0.210\t100.000%\t100.000%\t     0.000\t        1\tAllocateTensors/0

Timings (microseconds): count=1 curr=210
Memory (bytes): count=0
1 nodes observed

INFO: Operator-wise Profiling Info for Regular Benchmark Runs:
============================== Run Order ==============================
\t             [node type]\t  [start]\t  [first]\t [avg ms]\t     [%]\t  [cdf%]\t  [mem KB]\t[times called]\t[Name]
\t             LceQuantize\t    0.000\t    0.050\t    0.048\t  0.400%\t  0.400%\t     0.000\t        1\t[quant_conv2d/quantize]:0
\t              LceBconv2d\t    0.048\t    9.100\t    9.020\t 74.600%\t 75.000%\t     0.000\t        1\t[quant_conv2d/bconv]:1
\t                 CONV_2D\t    9.070\t    3.000\t    3.020\t 25.000%\t100.000%\t     0.000\t        1\t[conv2d/BiasAdd]:2

============================== Top by Computation Time ==============================
\t             [node type]\t  [start]\t  [first]\t [avg ms]\t     [%]\t  [cdf%]\t  [mem KB]\t[times called]\t[Name]
\t              LceBconv2d\t    0.048\t    9.100\t    9.020\t 74.600%\t 74.600%\t     0.000\t        1\t[quant_conv2d/bconv]:1

Number of nodes executed: 3
============================== Summary by node type ==============================
\t             [Node type]\t  [count]\t  [avg ms]\t    [avg %]\t    [cdf %]\t  [mem KB]\t[times called]
\t              LceBconv2d\t        1\t     9.020\t    74.606%\t    74.606%\t     0.000\t        1
\t                 CONV_2D\t        1\t     3.020\t    24.979%\t    99.585%\t     0.000\t        1
\t             LceQuantize\t        1\t     0.048\t     0.415%\t   100.000%\t     0.000\t        1

Timings (microseconds): count=83 first=12100 curr=12050 min=11950 max=12550 avg=12088 std=94
Memory (bytes): count=0
3 nodes observed
"""


def test_parse_op_profiling_output():
    figures = parse_benchmark_output(PROFILED_OUTPUT)
    # The timed-run summary, not the profiler's "Timings (microseconds)" line after it.
    assert figures["timed"]["avg"] == 12110.4 and figures["timed"]["count"] == 83
    assert figures["warmup"]["count"] == 40
    assert figures["timings"]["inference_avg"] == 12110.4
    assert figures["memory"] == {"init_mb": 2.0, "overall_mb": 6.5}
    runs = figures["op_profile"]["runs"]
    assert [r["node_type"] for r in runs["run_order"]] == ["LceQuantize", "LceBconv2d", "CONV_2D"]
    assert runs["run_order"][1] == {"node_type": "LceBconv2d", "start": 0.048, "first": 9.1, "avg_ms": 9.02,
                                    "pct": 74.6, "cdf_pct": 75.0, "mem_kb": 0.0, "times_called": 1.0,
                                    "name": "[quant_conv2d/bconv]:1"}
    assert runs["nodes_executed"] == 3
    assert runs["summary_by_node_type"][0]["avg_pct"] == 74.606
    assert len(runs["top_by_computation_time"]) == 1
    assert figures["op_profile"]["init"]["run_order"][0]["node_type"] == "AllocateTensors"


def test_parse_old_tool_output():
    # TFLite 1.x: no prefix, a warm-up line with count and curr only, "Peak memory footprint".
    old = ("count=1 curr=1058871\n\ncount=50 first=885931 curr=881142 min=851668 max=903937 avg=880688 std=12426\n"
           "Peak memory footprint (MB): init=0 overall=12.8672\n")
    figures = parse_benchmark_output(old)
    assert figures["warmup"] == {"count": 1, "curr": 1058871, "first": 1058871, "min": 1058871, "max": 1058871,
                                 "avg": 1058871, "std": 0}
    assert figures["timed"]["avg"] == 880688
    assert figures["memory"] == {"init_mb": 0.0, "overall_mb": 12.8672}
    with pytest.raises(OutputError):
        parse_benchmark_output("count=1 curr=1058871\n")  # a warm-up only: the timed runs are missing



# lce_benchmark_model when every timed run took the same time (a tiny model, the tool's whole
# microseconds): TFLite's Stat prints "count=N curr=T", with "(all same)" glued on when N > 1.
ALL_SAME_OUTPUT = """\
INFO: STARTING!
INFO: Num threads: [1]
INFO: Graph: [/tmp/edgebnn/models/tiny.tflite]
INFO: Loaded model /tmp/edgebnn/models/tiny.tflite
INFO: Initialized session in 0.412ms.
INFO: Running benchmark for at least 1 iterations and at least 0.5 seconds but terminate if exceeding 150 seconds.
INFO: count=41229 first=31 curr=11 min=11 max=96 avg=11.93 std=1

INFO: Running benchmark for at least {runs} iterations and at least 0 seconds but terminate if exceeding 150 seconds.
INFO: {timed}

INFO: Inference timings in us: Init: 412, First inference: 31, Warmup (avg): 11.93, Inference (avg): 12
"""


@pytest.mark.parametrize("runs, timed", [(1, "count=1 curr=12"), (5, "count=5 curr=12(all same)")])
def test_parse_timed_runs_that_all_took_the_same_time(runs, timed):
    from edgebnn.device.protocol import summarize

    text = ALL_SAME_OUTPUT.format(runs=runs, timed=timed)
    figures = parse_benchmark_output(text)
    assert figures["timed"] == {"count": runs, "curr": 12, "first": 12, "min": 12, "max": 12, "avg": 12, "std": 0}
    assert figures["warmup"]["count"] == 41229
    result = summarize("board", BenchConfig(runs=runs, min_secs=0.0), text)
    assert result.ok and result.valid and result.latency["mean_ms"] == 0.012 and result.latency["std_ms"] == 0
    # The short form alone is a warm-up whose timed runs never came.
    with pytest.raises(OutputError, match="timed runs"):
        parse_benchmark_output("INFO: count=5 curr=12(all same)\n")


# -- profiles ----------------------------------------------------------------------------------
def test_devices_file_env_and_ssh_config(tmp_path, monkeypatch):
    from edgebnn.device.profiles import parse_ssh_url, resolve_devices

    monkeypatch.delenv("EDGEBNN_BANANAPI_HOST", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.ssh/config
    listing = tmp_path / "devices.toml"
    listing.write_text('[devices.bananapi]\nuser = "pi"\n\n[devices.rpi4]\nhost = "10.0.0.4"\nthreads = [1, 4]\n'
                       'affinity = "0-3"\n\n[fleets]\nlab = ["bananapi", "rpi4"]\n')
    with pytest.raises(UsageError, match=r"no host set for device 'bananapi'.*EDGEBNN_BANANAPI_HOST"):
        get_profile("bananapi", devices_file=listing)
    monkeypatch.setenv("EDGEBNN_BANANAPI_HOST", "192.0.2.10")
    pi = get_profile("bananapi", devices_file=listing)
    assert (pi.host, pi.user, pi.threads, pi.runtime) == ("192.0.2.10", "pi", (4, 1), "lce_benchmark_model")
    assert [p.name for p in resolve_devices("lab,local", devices_file=listing)] == ["bananapi", "rpi4", "local"]
    assert get_profile("rpi4", devices_file=listing).affinity == "0-3"
    # An alias in ~/.ssh/config is enough: asyncssh applies its HostName, User, Port, ProxyJump.
    monkeypatch.delenv("EDGEBNN_BANANAPI_HOST")
    (tmp_path / ".ssh").mkdir()
    (tmp_path / ".ssh" / "config").write_text("Host bananapi\n  HostName 192.0.2.11\n  ProxyJump gateway\n")
    assert get_profile("bananapi", devices_file=listing).host == "bananapi"

    url = parse_ssh_url("ssh://pi@192.0.2.12:2222?runtime=python&threads=1,4")
    assert (url.user, url.host, url.port, url.runtime, url.threads) == ("pi", "192.0.2.12", 2222, "python", (1, 4))
    with pytest.raises(UsageError, match="unknown setting 'colour'"):
        parse_ssh_url("ssh://pi@host?colour=red")


def test_malformed_devices_file(tmp_path):
    bad = tmp_path / "devices.toml"
    bad.write_text("[devices.x\nhost = 1")
    with pytest.raises(UsageError, match="malformed devices file"):
        get_profile("x", devices_file=bad)
    bad.write_text('[devices.x]\nhost = "h"\nthreads = [0]\n')
    with pytest.raises(UsageError, match="bad threads"):
        get_profile("x", devices_file=bad)


def test_local_timeout_kills_the_process_group(tmp_path):
    script = tmp_path / "hang"
    script.write_text("#!/bin/sh\nsleep 876543 &\nwait\n")
    script.chmod(0o755)
    result = asyncio.run(LocalTransport().run([str(script)], timeout=1))
    assert result.timed_out
    import time

    from sshd import running

    deadline = time.monotonic() + 5
    while running("sleep 876543"):
        assert time.monotonic() < deadline, "the child of a timed-out command survived"
        time.sleep(0.1)


@pytest.mark.parametrize("kwargs, message", [
    ({"tune": True, "configs": [BenchConfig(threads=2)]}, "--tune sweeps --threads"),
    ({"tune": True, "configs": [BenchConfig(threads=0, xnnpack=True)]}, "drop them"),
    ({"save_tuned": True}, "add --tune"),
    ({"cooldown": float("nan")}, "bad --cooldown nan"),
])
def test_bench_run_checks_its_options_before_making_the_run(kwargs, message):
    """A usage error costs no conversion: the function making the run is never called."""
    from edgebnn.device import bench_run

    def never():
        raise AssertionError("the run was made before the options were checked")

    kwargs = {"configs": [BenchConfig(threads=0)], **kwargs}
    with pytest.raises(UsageError, match=message):
        bench_run(never, devices="local", **kwargs)
