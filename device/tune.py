"""``edgebnn bench --tune``: the fastest valid configuration of a device, chosen by a stated rule.

The sweep: thread counts from 1 up to the cores the preflight saw, LCE's indirect BGEMM off and
on, TFLite's XNNPACK delegate off and on (LCE's maintainers' answer to which is faster: try
both). On a big.LITTLE board (clusters told apart by ``cpu_capacity``, else by CPU part) each
cluster is swept on its own, pinned with ``taskset`` (threads 1 up to its cores), and all cores
unpinned at full thread count once more: whether 4 big cores beat 4 big + 4 little is a
question of the model. Each configuration follows the protocol (validity, cooldown,
temperatures); a failed one is recorded and the sweep goes on.

The rule: the valid configuration with the lowest median wins, and any whose 95 % confidence
interval of the median overlaps the winner's counts as a tie; among ties, fewer threads win
(they leave cores to the rest of the system and heat the SoC less), then the defaults (indirect
BGEMM off, XNNPACK off). Intervals come from a bootstrap of the per-run times (fixed seed, so a
rerun on the same figures picks the same), or from mean +- 1.96 std / sqrt(n) when the runtime
printed aggregates only.
"""

from __future__ import annotations

import math
import random
from dataclasses import replace

RULE = ("lowest median among valid configurations; overlapping 95% intervals of the median are ties, "
        "broken by fewer threads, then indirect BGEMM off, then XNNPACK off, then no pinning")


def clusters(fingerprint: dict) -> list[list[int]]:
    """The CPU clusters of a device, as CPU numbers: one per distinct ``cpu_capacity`` (else CPU part).

    CPUs are the online ones, numbered as ``/proc/cpuinfo`` numbers them (an offline CPU leaves a
    gap, never shifts the others). A board whose CPUs all look alike (or that tells neither) is
    one cluster.
    """
    cores = fingerprint.get("cores") or 1
    ids = fingerprint.get("cpu_ids") or []
    ids = ids if len(ids) == cores else list(range(cores))
    for key in ("cpu_capacity", "cpu_cores"):
        kinds = fingerprint.get(key) or []
        if len(kinds) == cores and None not in kinds and len(set(kinds)) > 1:
            groups: dict = {}
            for cpu, kind in zip(ids, kinds):
                groups.setdefault(kind, []).append(cpu)
            return list(groups.values())
    return [ids]


def cpu_list(cpus: list[int]) -> str:
    """``[4, 5, 6, 7]`` -> ``"4-7"`` (``taskset -c``'s CPU list)."""
    runs, start = [], None
    for prev, cpu in zip([None, *cpus], [*cpus, None]):
        if start is None:
            start = cpu
        elif cpu is None or cpu != prev + 1:
            runs.append(f"{start}-{prev}" if prev != start else str(start))
            start = cpu
    return ",".join(runs)


def parse_cpu_list(text: str) -> list[int]:
    """``"0-3,6"`` -> ``[0, 1, 2, 3, 6]`` (``""``: none)."""
    cpus = []
    for part in filter(None, text.split(",")):
        low, _, high = part.partition("-")
        cpus += range(int(low), int(high or low) + 1)
    return cpus


def device_sweep(base, fingerprint: dict, *, affinity: str = "") -> tuple[list, list[str]]:
    """The sweep for one device and why it may be less than asked: ``(configs, warnings)``.

    A device the user pinned (its profile's ``affinity``) is swept on those CPUs only; a
    big.LITTLE board whose ``taskset`` takes no CPU list is swept unpinned.
    """
    if affinity:
        cpus = parse_cpu_list(affinity)
        return [replace(c, affinity=affinity) for c in sweep(base, {"cores": len(cpus)}, pin=False)], []
    tools = fingerprint.get("tools") or {}
    can_pin = bool(tools.get("taskset") and tools.get("taskset_list", True))
    warnings = []
    if not can_pin and len(clusters(fingerprint)) > 1:
        warnings.append("the board has CPU clusters but no `taskset -c`: the sweep does not pin each cluster "
                        "(install util-linux)")
    return sweep(base, fingerprint, pin=can_pin), warnings


def sweep(base, fingerprint: dict, *, pin: bool = True) -> list:
    """The configurations ``--tune`` runs, from ``base``'s timing settings.

    Args:
        fingerprint: the preflight's (``cores``, ``cpu_capacity``, ``cpu_cores``).
        pin: sweep each cluster of a big.LITTLE board pinned (needs ``taskset`` on the device).
    """
    groups = clusters(fingerprint) if pin else []
    if len(groups) > 1:
        placements = [(cpu_list(g), t) for g in groups for t in range(1, len(g) + 1)]
        placements.append(("", sum(len(g) for g in groups)))
    else:
        placements = [("", t) for t in range(1, max(1, fingerprint.get("cores") or 1) + 1)]
    return [replace(base, threads=t, affinity=affinity, indirect_bgemm=indirect, xnnpack=xnnpack)
            for affinity, t in placements for indirect in (False, True) for xnnpack in (False, True)]


def median_interval(result: dict) -> tuple[float, float, float] | None:
    """``(median, low, high)`` in ms of one result record, or None when it has no latency."""
    latency = result.get("latency") or {}
    per_run = (result.get("figures") or {}).get("per_run_us")
    if per_run:
        times = sorted(t / 1e3 for t in per_run)
        rng = random.Random(0)
        medians = sorted(_median([rng.choice(times) for _ in times]) for _ in range(200))
        return _median(times), medians[4], medians[195]
    centre = latency.get("median_ms", latency.get("mean_ms"))
    if centre is None:
        return None
    half = 1.96 * (latency.get("std_ms") or 0.0) / math.sqrt(max(1, latency.get("runs") or 1))
    return centre, centre - half, centre + half


def _median(values: list[float]) -> float:
    values = sorted(values)
    mid = len(values) // 2
    return values[mid] if len(values) % 2 else (values[mid - 1] + values[mid]) / 2


def choose(results: list[dict]) -> dict:
    """The choice among result records (``edgebnn.device.bench.result_record``): index, config, why.

    Returns:
        ``{"index", "config", "median_ms", "ties", "rule"}``; ``index`` None when nothing was valid.
    """
    scored = [(i, tuple(r["median_interval_ms"]) if r.get("median_interval_ms") else median_interval(r))
              for i, r in enumerate(results) if r.get("ok") and r.get("valid")]
    scored = [(i, m) for i, m in scored if m is not None]
    if not scored:
        return {"index": None, "config": None, "median_ms": None, "ties": [], "rule": RULE}
    best, (median, low, high) = min(scored, key=lambda x: x[1][0])
    ties = [i for i, (_, lo, hi) in scored if lo <= high and hi >= low]

    def preference(i: int):
        c = results[i]["config"]
        return c["threads"], c.get("indirect_bgemm", False), c.get("xnnpack", False), bool(c.get("affinity")), \
            dict(scored)[i][0]

    chosen = min(ties, key=preference)
    return {"index": chosen, "config": results[chosen]["config"], "median_ms": dict(scored)[chosen][0],
            "fastest_index": best, "ties": ties, "rule": RULE}
