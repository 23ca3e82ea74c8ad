"""Cores named from /proc/cpuinfo texts in the documented format, and the share of their limits."""

import pytest

from edgebnn.device.roofline import identify, per_cycle, roofline


def cpuinfo(part: str, n: int, implementer: str = "0x41", extra: str = "") -> str:
    block = ("processor\t: {i}\nBogoMIPS\t: 48.00\nFeatures\t: fp asimd evtstrm crc32 cpuid\n"
             f"CPU implementer\t: {implementer}\nCPU architecture: 8\nCPU variant\t: 0x0\nCPU part\t: {part}\n"
             "CPU revision\t: 4\n\n")
    return "".join(block.format(i=i) for i in range(n)) + extra


@pytest.mark.parametrize("part, core", [("0xd03", "Cortex-A53"), ("0xd05", "Cortex-A55"), ("0xd08", "Cortex-A72"),
                                        ("0xd0b", "Cortex-A76")])
def test_cores_are_named_from_their_part(part, core):
    assert identify(cpuinfo(part, 4, extra="Hardware\t: BCM2835\nModel\t: a board\n")) == [core] * 4


def test_a_big_little_board_and_a_foreign_implementer():
    rk3399 = cpuinfo("0xd03", 4) + cpuinfo("0xd08", 2)
    assert identify(rk3399) == ["Cortex-A53"] * 4 + ["Cortex-A72"] * 2
    assert identify(cpuinfo("0xd03", 1, implementer="0x51")) == ["part 0xd03"]  # Qualcomm's numbering


def test_the_banana_pi_m5_limits_match_the_derivation():
    floor, mix = per_cycle("Cortex-A55")
    assert floor == pytest.approx(64.0) and mix == pytest.approx(2048 / 48)
    # QuickNet (1.85 G binary MACs) at 45 ms on 4 cores at 1.908 GHz
    r = roofline(binary_macs=1_850_000_000, latency_ms=45.0, cores=identify(cpuinfo("0xd05", 4)), clock_mhz=1908,
                 threads=4)
    assert r.achieved_gbmacs == pytest.approx(41.11, abs=0.01)
    assert r.floor_gbmacs == pytest.approx(4 * 122.1, abs=0.1) and r.lce_gbmacs == pytest.approx(4 * 81.4, abs=0.1)
    assert r.share_of_lce == pytest.approx(41.11 / 325.6, abs=1e-3) and r.cores_used == 4


def test_a_board_whose_cpuinfo_names_no_part_gets_no_share():
    text = "processor\t: 0\nmodel name\t: ARMv7 Processor rev 4 (v7l)\nHardware\t: BCM2835\n"
    r = roofline(binary_macs=10**9, latency_ms=100.0, cores=identify(text), clock_mhz=1200, threads=1)
    assert r.achieved_gbmacs == pytest.approx(10.0) and r.share_of_lce is None
    assert "names no Arm core" in r.why_no_share


def test_every_bench_record_carries_its_roofline(tiny_run, cli_runner):
    import json

    from edgebnn.cli import cli

    result = cli_runner.invoke(cli, ["bench", str(tiny_run.path), "--runs", "3", "--min-secs", "0", "--json"])
    assert result.exit_code == 0, result.output
    line = json.loads(result.stdout)["results"][0]["roofline"]
    assert line["binary_macs"] == tiny_run.manifest["stats"]["binary_macs"] > 0
    assert line["achieved_gbmacs"] > 0 and line["share_of_lce"] is None and line["why_no_share"]  # an x86 host
