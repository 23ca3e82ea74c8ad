import asyncio
import json

import pytest

from edgebnn.device.bench import BenchConfig, run_config
from edgebnn.device.local import LocalTransport
from edgebnn.device.output import OutputError, parse_benchmark_output
from edgebnn.device.profiles import get_profile
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


def test_unknown_device():
    with pytest.raises(UsageError, match="unknown device 'pi5'"):
        get_profile("pi5")


def test_runner_figures_round_trip(tiny_run):
    config = BenchConfig(threads=1, runs=20, warmup=2, min_secs=0.0)
    result = asyncio.run(run_config(LocalTransport(), get_profile("local"), str(tiny_run.tflite_path), config))
    assert result.ok and result.valid, result.error
    assert len(result.figures["per_run_us"]) >= 20
    # The runner's own summary line agrees with the per-run times it printed.
    assert result.figures["timed"]["min"] == pytest.approx(min(result.figures["per_run_us"]), abs=1)
    assert result.latency["median_ms"] > 0


def test_failed_configuration_is_recorded_not_raised(tmp_path):
    config = BenchConfig(threads=1, runs=1, warmup=0, min_secs=0.0)
    result = asyncio.run(run_config(LocalTransport(), get_profile("local"), str(tmp_path / "missing.tflite"), config))
    assert not result.ok
    assert result.error_kind == "crash"


def test_bench_command_writes_json_and_manifest(tiny_run, cli_runner):
    from edgebnn.cli import cli

    result = cli_runner.invoke(cli, ["bench", str(tiny_run.path), "--runs", "10", "--warmup", "1", "--min-secs", "0", "--json"])
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout)
    assert record["figure_kind"] == "host"
    assert record["results"][0]["ok"]
    summary = tiny_run.manifest["benchmarks"][-1]
    assert summary["device"] == "local"
    assert summary["results"][0]["p90_ms"] >= summary["results"][0]["median_ms"]
    assert (tiny_run.path / summary["file"]).exists()
