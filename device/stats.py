"""Latency statistics over per-run times."""

from __future__ import annotations

import numpy as np


def latency_stats(times_us) -> dict:
    """Mean, std, min, max, median, p90 and p99 in milliseconds over per-run times in us."""
    t = np.asarray(times_us, dtype="float64") / 1e3
    return {
        "runs": int(t.size),
        "mean_ms": float(t.mean()),
        "std_ms": float(t.std()),
        "min_ms": float(t.min()),
        "max_ms": float(t.max()),
        "median_ms": float(np.median(t)),
        "p90_ms": float(np.percentile(t, 90)),
        "p99_ms": float(np.percentile(t, 99)),
    }
