"""``edgebnn bench --tune``: the fastest valid configuration of a device, chosen by a stated rule.

The sweep: thread counts from 1 up to the cores the preflight saw, LCE's indirect BGEMM off and
on, TFLite's XNNPACK delegate off and on (LCE's maintainers' answer to which is faster: try
both). Each configuration follows the protocol (validity, cooldown, temperatures); a failed one
is recorded and the sweep goes on.

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
        "broken by fewer threads, then indirect BGEMM off, then XNNPACK off")


def sweep(base, cores: int | None) -> list:
    """The configurations ``--tune`` runs, from ``base``'s timing settings."""
    return [replace(base, threads=t, indirect_bgemm=indirect, xnnpack=xnnpack)
            for t in range(1, max(1, cores or 1) + 1) for indirect in (False, True) for xnnpack in (False, True)]


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
    scored = [(i, median_interval(r)) for i, r in enumerate(results) if r.get("ok") and r.get("valid")]
    scored = [(i, m) for i, m in scored if m is not None]
    if not scored:
        return {"index": None, "config": None, "median_ms": None, "ties": [], "rule": RULE}
    best, (median, low, high) = min(scored, key=lambda x: x[1][0])
    ties = [i for i, (_, lo, hi) in scored if lo <= high and hi >= low]

    def preference(i: int):
        c = results[i]["config"]
        return (c["threads"], c.get("indirect_bgemm", False), c.get("xnnpack", False), results[i]["latency"].get(
            "median_ms", results[i]["latency"].get("mean_ms")))

    chosen = min(ties, key=preference)
    return {"index": chosen, "config": results[chosen]["config"], "median_ms": median_interval(results[chosen])[0],
            "fastest_index": best, "ties": ties, "rule": RULE}
