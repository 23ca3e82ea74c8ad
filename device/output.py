"""Parse what ``lce_benchmark_model`` (TFLite's ``benchmark_model``) and edgebnn's runner print."""

from __future__ import annotations

import re

from edgebnn.device.runner import PER_RUN_PREFIX

_SUMMARY = re.compile(
    r"count=(?P<count>\d+)(?: first=(?P<first>[\d.]+))?(?: curr=(?P<curr>[\d.]+))?"
    r" min=(?P<min>[\d.]+) max=(?P<max>[\d.]+) avg=(?P<avg>[\d.e+-]+) std=(?P<std>[\d.]+)"
)
_TIMINGS = re.compile(r"Inference timings in us: (?P<body>.*)")
_MEMORY_DELTA = re.compile(r"Memory footprint delta.*?init=(?P<init>[\d.]+) overall=(?P<overall>[\d.]+)")
_PEAK = re.compile(r"[Pp]eak memory footprint \(MB\)[^:]*: (?P<peak>[\d.]+)")


class OutputError(ValueError):
    """The output has no timed-run summary: the runtime failed or printed something else."""


def parse_benchmark_output(text: str) -> dict:
    """Every figure the tool printed.

    Returns:
        ``warmup`` and ``timed`` (count/first/curr/min/max/avg/std in us; ``timed`` is the
        last summary line), ``timings`` (init, first, warmup_avg, inference_avg in us),
        ``memory`` (MB: init and overall deltas, peak), and ``per_run_us`` when the runner
        printed per-run times.

    Raises:
        OutputError: no summary line.
    """
    summaries = [
        {k: float(v) for k, v in m.groupdict().items() if v is not None} for m in _SUMMARY.finditer(text)
    ]
    if not summaries:
        raise OutputError("no 'count= ... avg= std=' line in the benchmark output")
    result: dict = {"timed": summaries[-1], "warmup": summaries[0] if len(summaries) > 1 else None}
    if m := _TIMINGS.search(text):
        keys = {"Init": "init", "First inference": "first", "Warmup (avg)": "warmup_avg", "Inference (avg)": "inference_avg"}
        result["timings"] = {
            keys.get(k.strip(), k.strip()): float(v)
            for k, v in re.findall(r"([A-Za-z() ]+): ([\d.e+-]+)", m.group("body"))
        }
    memory = {}
    if m := _MEMORY_DELTA.search(text):
        memory.update(init_mb=float(m.group("init")), overall_mb=float(m.group("overall")))
    if m := _PEAK.search(text):
        memory["peak_mb"] = float(m.group("peak"))
    result["memory"] = memory
    for line in text.splitlines():
        if line.startswith(PER_RUN_PREFIX):
            result["per_run_us"] = [float(t) for t in line[len(PER_RUN_PREFIX):].split()]
    return result
