"""`edgebnn bench --tune` on the local device: the sweep runs, the choice follows its rule, the
report shows it."""

import json

from edgebnn.cli import cli
from edgebnn.device.tune import choose


def _result(threads, median, *, indirect=False, xnnpack=False, valid=True, per_run=None):
    return {"ok": True, "valid": valid, "config": {"threads": threads, "indirect_bgemm": indirect, "xnnpack": xnnpack},
            "latency": {"median_ms": median, "mean_ms": median, "std_ms": 0.01, "runs": 50},
            "figures": {"per_run_us": per_run} if per_run else {}}


def test_the_rule_prefers_fewer_threads_within_the_noise_and_the_fastest_beyond_it():
    close = [_result(1, 10.0, per_run=[10_000, 10_100, 9_950] * 10), _result(2, 9.98, per_run=[9_980, 10_050, 9_900] * 10)]
    assert choose(close)["config"]["threads"] == 1  # overlapping intervals: a tie, fewer threads win
    apart = [_result(1, 10.0, per_run=[10_000, 10_020] * 20), _result(2, 6.0, per_run=[6_000, 6_010] * 20)]
    assert choose(apart)["config"]["threads"] == 2
    assert choose([_result(1, 1.0, valid=False)])["index"] is None  # only valid figures count


def test_tune_sweeps_threads_indirect_and_xnnpack_on_the_local_device(tiny_run, cli_runner):
    result = cli_runner.invoke(cli, ["bench", str(tiny_run.path), "--tune", "--runs", "3", "--warmup", "0",
                                     "--min-secs", "0", "--json"])
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout)
    configs = {(r["config"]["threads"], r["config"]["indirect_bgemm"], r["config"]["xnnpack"]) for r in record["results"]}
    cores = record["fingerprint"]["cores"]
    assert configs == {(t, i, x) for t in range(1, cores + 1) for i in (False, True) for x in (False, True)}
    choice = record["tune"]
    assert choice["index"] is not None and record["results"][choice["index"]]["valid"] and "fewer threads" in choice["rule"]
    assert tiny_run.manifest["benchmarks"][-1]["tuned"] == choice["config"]
    table = cli_runner.invoke(cli, ["bench", str(tiny_run.path), "--tune", "--runs", "3", "--warmup", "0",
                                    "--min-secs", "0"])
    assert table.exit_code == 0 and "chosen: threads=" in table.output and "fewer threads" in table.output
    report = cli_runner.invoke(cli, ["report", str(tiny_run.path)])
    assert "tuned configurations" in report.output
    refused = cli_runner.invoke(cli, ["bench", str(tiny_run.path), "--tune", "--threads", "2"])
    assert refused.exit_code == 2 and "--tune sweeps" in refused.output
