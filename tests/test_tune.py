"""`edgebnn bench --tune` on the local device: the sweep runs, the choice follows its rule, the
report shows it."""

import json

import pytest

from edgebnn.cli import cli
from edgebnn.device.bench import result_record
from edgebnn.device.preflight import parse_preflight
from edgebnn.device.protocol import BenchConfig, BenchResult
from edgebnn.device.tune import choose, clusters, cpu_list, parse_cpu_list, sweep


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


def test_tune_sweeps_threads_indirect_and_xnnpack_on_the_local_device(tiny_run, cli_runner, tmp_path):
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
    devices = tmp_path / "devices.toml"  # --save-tuned keeps the choice beside it (devices.setup.json)
    fast = ["--runs", "3", "--warmup", "0", "--min-secs", "0", "--devices-file", str(devices)]
    table = cli_runner.invoke(cli, ["bench", str(tiny_run.path), "--tune", "--save-tuned", *fast])
    assert table.exit_code == 0, table.output
    assert "chosen: threads=" in table.output and "fewer threads" in table.output
    assert "saved as local's defaults for bireal-tiny@32x32x1 (flatbuffer sha256" in table.output
    from edgebnn.device.setup_record import record_tuned, tuned_key
    from edgebnn.run.rundir import sha256_of

    key = tuned_key("bireal-tiny", [32, 32, 1], sha256_of(tiny_run.tflite_path))
    saved = json.loads(devices.with_name("devices.setup.json").read_text())["local"]["tuned"][key]

    later = cli_runner.invoke(cli, ["bench", str(tiny_run.path), "--json", *fast])  # the saved choice, said so
    assert later.exit_code == 0, later.output
    used = json.loads(later.stdout)
    (result,) = used["results"]
    assert {k: result["config"][k] for k in saved["config"]} == saved["config"]
    assert used["tuned_from"]["saved"] == saved["saved"] and "ran the tuned configuration" in later.stderr
    seeded = {"config": {"threads": 1, "indirect_bgemm": True, "xnnpack": True, "affinity": "0"}, "median_ms": 1.0,
              "saved": "2026-01-01T00:00:00Z"}  # not the defaults: proves the saved settings are what runs
    record_tuned(devices, "local", key, seeded)
    ran = json.loads(cli_runner.invoke(cli, ["bench", str(tiny_run.path), "--json", *fast]).stdout)
    assert {k: ran["results"][0]["config"][k] for k in seeded["config"]} == seeded["config"] and ran["results"][0]["ok"]
    record_tuned(devices, "local", key, {**seeded, "config": {"threads": "2"}})  # edited by hand
    bad = cli_runner.invoke(cli, ["bench", str(tiny_run.path), *fast])
    assert bad.exit_code == 2 and "bad saved tuned settings for bireal-tiny@32x32x1 (flatbuffer" in bad.output
    assert "threads '2'" in bad.output and "--save-tuned` again" in bad.output
    mine = json.loads(cli_runner.invoke(cli, ["bench", str(tiny_run.path), "--json", "--threads", "1", *fast]).stdout)
    assert "tuned_from" not in mine and mine["results"][0]["config"]["threads"] == 1  # given settings win
    unsaved = cli_runner.invoke(cli, ["bench", str(tiny_run.path), "--save-tuned", *fast])
    assert unsaved.exit_code == 2 and "add --tune" in unsaved.output
    report = cli_runner.invoke(cli, ["report", str(tiny_run.path)])
    assert "tuned configurations" in report.output
    refused = cli_runner.invoke(cli, ["bench", str(tiny_run.path), "--tune", "--threads", "2"])
    assert refused.exit_code == 2 and "--tune sweeps" in refused.output


# /proc/cpuinfo + sysfs as the preflight prints them: Rockchip RK3588 (4x A55 + 4x A76, capacities
# 414 / 1024) and RK3399 (4x A53 + 2x A72, a kernel without cpu_capacity).
RK3588 = ("cores=8\ncpu_parts=0xd05 0xd05 0xd05 0xd05 0xd0b 0xd0b 0xd0b 0xd0b\n"
          "cpu_implementers=0x41 0x41 0x41 0x41 0x41 0x41 0x41 0x41\n"
          "cpu_capacity= 414 414 414 414 1024 1024 1024 1024\n"
          "cpu_freq_khz= 1800000 1800000 1800000 1800000 2400000 2400000 2400000 2400000\nfreq_khz=1800000\n")
RK3399 = "cores=6\ncpu_parts=0xd03 0xd03 0xd03 0xd03 0xd08 0xd08\ncpu_capacity= - - - - - -\n"


@pytest.mark.parametrize("text, expected", [
    (RK3588, [[0, 1, 2, 3], [4, 5, 6, 7]]),
    (RK3399, [[0, 1, 2, 3], [4, 5]]),  # no capacities: told apart by CPU part
    ("cores=4\ncpu_parts=0xd05 0xd05 0xd05 0xd05\ncpu_capacity= 1024 1024 1024 1024\n", [[0, 1, 2, 3]]),
    ("cores=2\n", [[0, 1]]),  # an x86 host: one cluster
])
def test_clusters_from_capacity_else_cpu_part(text, expected):
    assert clusters(parse_preflight(text)) == expected


def test_a_big_little_sweep_pins_each_cluster_and_runs_all_cores_once():
    configs = sweep(BenchConfig(runs=7), parse_preflight(RK3588))
    placements = sorted({(c.affinity, c.threads) for c in configs})
    assert placements == sorted([("0-3", t) for t in range(1, 5)] + [("4-7", t) for t in range(1, 5)] + [("", 8)])
    assert len(configs) == 4 * len(placements) and all(c.runs == 7 for c in configs)
    assert {c.affinity for c in sweep(BenchConfig(), parse_preflight(RK3588), pin=False)} == {""}
    assert cpu_list([0, 2, 3, 4, 7]) == "0,2-4,7" and parse_cpu_list("0,2-4,7") == [0, 2, 3, 4, 7]
    with pytest.raises(ValueError, match="bad affinity '4-7; reboot'"):
        BenchConfig(affinity="4-7; reboot")


def test_a_pinned_result_is_held_to_its_cluster_s_limit_and_clock():
    fingerprint = parse_preflight(RK3588)
    latency = {"median_ms": 10.0}
    big = result_record(BenchResult("rk", BenchConfig(threads=2, affinity="4-7"), ok=True, latency=latency),
                        fingerprint, binary_macs=10**9)["roofline"]
    little = result_record(BenchResult("rk", BenchConfig(threads=2, affinity="0-3"), ok=True, latency=latency),
                           fingerprint, binary_macs=10**9)["roofline"]
    assert (big["core"], big["clock_mhz"], big["cores_used"]) == ("Cortex-A76", 2400, 2)
    assert (little["core"], little["clock_mhz"]) == ("Cortex-A55", 1800)
    assert big["achieved_gbmacs"] == little["achieved_gbmacs"] == 100.0
    assert big["lce_gbmacs"] > little["lce_gbmacs"]  # same latency, a smaller share of the faster cores
    both = result_record(BenchResult("rk", BenchConfig(threads=8), ok=True, latency=latency), fingerprint,
                         binary_macs=10**9)["roofline"]
    four = result_record(BenchResult("rk", BenchConfig(threads=4), ok=True, latency=latency), fingerprint,
                         binary_macs=10**9)["roofline"]
    assert both["core"] == "Cortex-A55+Cortex-A76" and both["lce_gbmacs"] == pytest.approx(
        2 * big["lce_gbmacs"] + 2 * little["lce_gbmacs"], rel=1e-3)  # every core at its own clock
    assert four["core"] == "Cortex-A76" and four["lce_gbmacs"] == pytest.approx(2 * big["lce_gbmacs"], rel=1e-3)
    offline = parse_preflight(RK3588.replace("cores=8", "cores=7").replace("0xd05 0xd05 0xd05 0xd05", "0xd05 0xd05 0xd05")
                              .replace("414 414 414 414", "414 414 414").replace("1800000 1800000 1800000 1800000",
                                                                                 "1800000 1800000 1800000")
                              + "cpu_ids=0 1 3 4 5 6 7\n")
    assert clusters(offline) == [[0, 1, 3], [4, 5, 6, 7]]  # CPU 2 offline: the others keep their numbers
    unknown_clock = {**fingerprint, "cpu_freq_mhz": [1800] * 4 + [None] * 4}
    pinned = result_record(BenchResult("rk", BenchConfig(threads=2, affinity="4-7"), ok=True, latency=latency),
                           unknown_clock, binary_macs=10**9)["roofline"]
    assert pinned["lce_gbmacs"] is None and "clock" in pinned["why_no_share"]  # not the little cluster's clock


def test_devices_setup_keeps_the_saved_tuned_settings(tmp_path):
    from edgebnn.device.setup_record import record_setup, record_tuned, tuned_key, tuned_settings
    from edgebnn.errors import EdgebnnError

    devices = tmp_path / "devices.toml"
    key = tuned_key("sabnn-r18", [224, 224, 3], "ab" * 32)
    record_tuned(devices, "pi", key, {"config": {"threads": 2}, "saved": "now", "median_ms": 3.5})
    record_setup(devices, "pi", {"runtime_file": "/x/lce_benchmark_model"})
    assert tuned_settings(devices, "pi", key)["config"] == {"threads": 2}
    assert key == "sabnn-r18@224x224x3/sha256:" + "ab" * 32
    assert tuned_settings(devices, "pi", tuned_key("sabnn-r18", [224, 224, 3], "cd" * 32)) is None  # other bytes
    assert tuned_settings(devices, "pi", "other@1x1x1") is None and tuned_settings(devices, "nope", key) is None
    setup = devices.with_name("devices.setup.json")
    setup.write_text("[1]")  # not a table: refused, never replaced (it may hold every runtime and choice)
    with pytest.raises(EdgebnnError, match="cannot use the setup record .* it holds a JSON list"):
        record_tuned(devices, "pi", key, {"config": {"threads": 4}, "saved": "now", "median_ms": 2.0})
    assert setup.read_text() == "[1]"
