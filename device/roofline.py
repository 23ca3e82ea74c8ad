"""How far a latency is from what the chip can do: achieved binary MACs per second against the
limits of the core's NEON pipes.

A binary MAC (BMAC) is one XNOR-popcount bit. A binary GEMM on 128-bit NEON spends, per 128 BMACs,
one EOR (the XOR of 128 weight bits with 128 activation bits) and one CNT (the popcount of its 16
bytes); LCE's kernels then add the byte counts up with ADDP and UADALP. With ``t(X)`` the
throughput of instruction X in instructions per cycle on one core, a kernel made of ``n(X)`` of
each producing ``B`` BMACs needs ``sum(n(X) / t(X))`` cycles (the instructions share the NEON
issue slots), so its limit is ``B / sum(n(X) / t(X))`` BMACs per cycle:

- the EOR+CNT floor: ``B = 128`` with one EOR and one CNT, ``128 / (1/t(EOR) + 1/t(CNT))``;
- LCE's mix: the 8x4x2 indirect-BGEMM block ``XOR_POPCOUNT_ACCUM_LOAD_BLOCK_64``
  (``core/indirect_bgemm/kernel_8x4x2_aarch64.h`` in larq/compute-engine): 16 EOR + 16 CNT +
  8 ADDP + 4 UADALP for 2048 BMACs.

Derived for the Cortex-A55 at 1.908 GHz (t = 1, 1, 1, 0.5): floor 128 / 2 = 64 BMAC/cycle =
122.1 GBMAC/s per core; LCE mix 2048 / (16 + 16 + 8 + 8) = 42.7 BMAC/cycle = 81.4 GBMAC/s per
core. A limit for N threads is N times the per-core one, up to the cores there are. Loads,
im2col, the output transform and the float layers are not counted: the share of the limit is an
upper bound of how well the binary layers use the chip, and on a real model it stays well below 1.

Throughputs (one table, with sources; hardware.md gathers them): Cortex-A53 measured by
ocxtal/insn_bench_aarch64 (Raspberry Pi 3); Cortex-A55 from slothy-optimizer's model of Arm's
A55 software optimization guide (UADALP not modelled: taken as the A53's 0.5); Cortex-A72 by
insn_bench_aarch64 (NXP LX2160A); Cortex-A76 / Neoverse-N1 by insn_bench_aarch64 (AWS Graviton2).
Cores are identified from ``/proc/cpuinfo`` (implementer 0x41, ``CPU part``); the clock from
cpufreq (``scaling_cur_freq``, else ``cpuinfo_max_freq``).
"""

from __future__ import annotations

from dataclasses import dataclass

# CPU part -> core, for Arm's implementer 0x41: the cores found on common boards (THROUGHPUT
# below has the limits of some of them).
PARTS = {
    "0xd03": "Cortex-A53", "0xd04": "Cortex-A35", "0xd05": "Cortex-A55", "0xd07": "Cortex-A57",
    "0xd08": "Cortex-A72", "0xd09": "Cortex-A73", "0xd0a": "Cortex-A75", "0xd0b": "Cortex-A76",
    "0xd0c": "Neoverse-N1", "0xd0d": "Cortex-A77", "0xd41": "Cortex-A78", "0xd44": "Cortex-X1",
    "0xd46": "Cortex-A510", "0xd47": "Cortex-A710", "0xd4b": "Cortex-A78C",
}
# core -> (EOR, CNT, ADDP, UADALP) throughput per cycle, 128-bit, and where it comes from.
THROUGHPUT = {
    "Cortex-A53": ((0.99, 0.99, 0.99, 0.50), "ocxtal/insn_bench_aarch64, Raspberry Pi 3 (measured)"),
    "Cortex-A55": ((1.0, 1.0, 1.0, 0.50), "slothy cortex_a55 model of Arm's optimization guide; UADALP as A53"),
    "Cortex-A72": ((1.5, 1.0, 1.5, 1.0), "ocxtal/insn_bench_aarch64, NXP LX2160A (measured)"),
    "Cortex-A76": ((2.0, 2.0, 2.0, 1.0), "ocxtal/insn_bench_aarch64, AWS Graviton2 (Neoverse-N1, A76-class)"),
    "Neoverse-N1": ((2.0, 2.0, 2.0, 1.0), "ocxtal/insn_bench_aarch64, AWS Graviton2 (measured)"),
}
LCE_BLOCK = ((16, 16, 8, 4), 2048)  # (EOR, CNT, ADDP, UADALP) counts, BMACs: the 8x4x2 block


def per_cycle(core: str) -> tuple[float, float]:
    """``(EOR+CNT floor, LCE mix)`` in BMACs per cycle on one ``core``."""
    (eor, cnt, addp, uadalp), _ = THROUGHPUT[core]
    floor = 128 / (1 / eor + 1 / cnt)
    counts, bmacs = LCE_BLOCK
    mix = bmacs / sum(n / t for n, t in zip(counts, (eor, cnt, addp, uadalp), strict=True))
    return floor, mix


def name_cores(parts: list[str], implementers: list[str] = ()) -> list[str]:
    """Core names for ``CPU part`` values (with their ``CPU implementer`` where known): Arm's (0x41) named."""
    names = []
    for i, part in enumerate(p.lower() for p in parts):
        implementer = implementers[i].lower() if i < len(implementers) else "0x41"
        names.append(PARTS.get(part, f"part {part}") if implementer == "0x41" else f"part {part}")
    return names


def identify(cpuinfo: str) -> list[str]:
    """The cores ``/proc/cpuinfo`` lists (``CPU part`` of implementer 0x41), named where known."""
    parts, implementers = [], []
    for line in cpuinfo.splitlines():
        key, _, value = (part.strip() for part in line.partition(":"))
        if key == "CPU implementer":
            implementers.append(value)
        elif key == "CPU part":
            parts.append(value)
            if len(implementers) < len(parts):
                implementers.append(implementers[-1] if implementers else "0x41")
    return name_cores(parts, implementers)


@dataclass(frozen=True)
class Roofline:
    """Achieved binary throughput of one result and, for a known core, its share of the limits."""

    binary_macs: int | None
    achieved_gbmacs: float | None  # binary MACs per second at the median latency, / 1e9
    core: str | None = None
    clock_mhz: float | None = None
    cores_used: int | None = None
    floor_gbmacs: float | None = None  # EOR+CNT floor of the cores used
    lce_gbmacs: float | None = None  # LCE's instruction mix on the cores used
    share_of_floor: float | None = None
    share_of_lce: float | None = None
    why_no_share: str = ""


def roofline(*, binary_macs: int | None, latency_ms: float | None, cores: list[str], clock_mhz: float | None,
             threads: int, clocks_mhz: list[float | None] | None = None) -> Roofline:
    """The roofline figures of one configuration.

    Args:
        cores: the cores it may run on (:func:`identify`'s names, as the preflight saw them).
        clock_mhz: their clock; ``clocks_mhz``, per core where known, overrides it (big.LITTLE
            clusters run at different clocks).
        threads: the threads used: the limit is that of the fastest cores they can occupy (on
            big.LITTLE an upper bound: the scheduler may put a thread on a little core).
    """
    if not binary_macs or not latency_ms:
        return Roofline(binary_macs, None, why_no_share="no binary MACs or no latency")
    achieved = round(binary_macs / (latency_ms / 1e3) / 1e9, 3)
    known = [c for c in cores if c in THROUGHPUT]
    if not known:
        why = (f"core {cores[0]} has no known NEON limits" if cores else
               "the CPU names no Arm core (an x86 host, or a board whose cpuinfo has no CPU part)")
        return Roofline(binary_macs, achieved, why_no_share=why)
    clocks = [(clocks_mhz[i] if clocks_mhz and i < len(clocks_mhz) and clocks_mhz[i] else clock_mhz)
              for i in range(len(cores))]
    used = max(1, min(threads or 1, len(cores)))
    # (floor, mix) in GBMAC/s per core, fastest first
    limits = sorted(((tuple(x * clock * 1e6 / 1e9 for x in per_cycle(c)), c, clock) for c, clock in zip(cores, clocks)
                     if c in THROUGHPUT and clock), key=lambda x: (-x[0][1], x[1]))
    if len(limits) < used:
        why = ("the clock could not be read" if len(known) >= used else
               f"{used - len(known)} of the {used} cores used have no known NEON limits")
        return Roofline(binary_macs, achieved, core=known[0], why_no_share=why)
    top = limits[:used]
    floor, mix = (sum(x[0][k] for x in top) for k in (0, 1))
    return Roofline(binary_macs, achieved, core="+".join(sorted({c for _, c, _ in top})), clock_mhz=top[0][2],
                    cores_used=used, floor_gbmacs=round(floor, 2), lce_gbmacs=round(mix, 2),
                    share_of_floor=round(achieved / floor, 4), share_of_lce=round(achieved / mix, 4))
