"""Parse what ``lce_benchmark_model`` (TFLite's ``benchmark_model``) and edgebnn's runner print.

The tool's format, as it appears in LCE's and TensorFlow's issue reports: optional
``INFO: `` prefixes (TFLite >= 2.13 logs through its logger), one ``count= first= curr= min=
max= avg= std=`` line for the warm-up and one for the timed runs (just ``count=N curr=T``, plus
``(all same)`` when N > 1, if every run took the same time), ``Inference timings in us:``,
memory lines, and with ``--enable_op_profiling=true`` tab-separated tables ("Run Order",
"Top by Computation Time", "Summary by node type") for initialization and for the runs.
"""

from __future__ import annotations

import math
import re

from edgebnn.device.runner import PER_RUN_PREFIX

_PREFIX = re.compile(r"^\s*(?:INFO|WARNING|ERROR|VERBOSE): ")
# TFLite's Stat::OutputToStream (tensorflow/core/util/stats_calculator.h): the full line, or,
# when every run took the same time, only "count=N curr=T" with "(all same)" glued on for N > 1.
_SUMMARY = re.compile(
    r"^count=(?P<count>\d+)(?: first=(?P<first>[\d.]+))?(?: curr=(?P<curr>[\d.]+))?(?P<same>\(all same\))?"
    r"(?: min=(?P<min>[\d.]+) max=(?P<max>[\d.]+) avg=(?P<avg>[\d.e+-]+) std=(?P<std>[\d.]+))?"
)
_TIMINGS = re.compile(r"^Inference timings in us: (?P<body>.*)")
_MEMORY = re.compile(
    r"^(?:Memory footprint delta from the start of the tool|Peak memory footprint) \(MB\): "
    r"init=(?P<init>[\d.]+) overall=(?P<overall>[\d.]+)"
)
_PEAK = re.compile(r"^Overall peak memory footprint \(MB\)[^:]*: (?P<peak>[\d.]+)")
_SECTION = re.compile(r"^(?:Operator-wise )?Profiling Info for (?P<what>.+):$")
_TABLE = re.compile(r"^=+ (?P<title>[A-Za-z ]+?) =+$")
_LCE_VERSION = re.compile(r"^LCE version: \[(?P<version>[^\]]+)\]")
_NODES = re.compile(r"^Number of nodes executed: (?P<n>\d+)")
_COLUMNS = {"%": "pct", "cdf%": "cdf_pct", "avg %": "avg_pct", "cdf %": "cdf_pct", "avg ms": "avg_ms",
            "mem KB": "mem_kb", "times called": "times_called", "node type": "node_type", "Node type": "node_type",
            "Name": "name"}


class OutputError(ValueError):
    """The output has no timed-run summary: the runtime failed or printed something else."""


def _key(text: str) -> str:
    return _COLUMNS.get(text, re.sub(r"\W+", "_", text.strip().lower()).strip("_"))


def _number(text: str):
    try:
        return float(text.rstrip("%"))
    except ValueError:
        return text


def _summary(m: re.Match) -> tuple[dict, bool]:
    """One summary line's figures, and whether it was the short "all runs the same" form."""
    figures = {k: float(v) for k, v in m.groupdict().items() if v is not None and k != "same"}
    short = "avg" not in figures and "curr" in figures and (figures["count"] == 1 or m["same"] is not None)
    if short:  # every run took curr: spell the figures out so a result reads the same either way
        t = figures["curr"]
        figures.update(first=t, min=t, max=t, avg=t, std=0.0)
    return figures, short


def _op_profile(lines: list[str]) -> dict:
    """The op-profiling tables: ``{section: {table: [rows], "nodes_executed": n}}``.

    Sections are ``init`` (Benchmark Initialization) and ``runs`` (Regular Benchmark Runs).
    """
    profile: dict = {}
    section, table, columns = None, None, []
    for line in lines:
        stripped = line.strip()
        if m := _SECTION.match(stripped):
            section = profile.setdefault("init" if "Initialization" in m["what"] else "runs", {})
            table = None
        elif m := _TABLE.match(stripped):
            section = section if section is not None else profile.setdefault("runs", {})
            table = section.setdefault(_key(m["title"]), [])
            columns = []
        elif m := _NODES.match(stripped):
            if section is not None:
                section["nodes_executed"] = int(m["n"])
        elif table is not None and stripped.startswith("["):
            columns = [_key(c) for c in re.findall(r"\[([^\]]+)\]", stripped)]
        elif table is not None and columns and stripped:
            cells = stripped.split("\t") if "\t" in stripped else stripped.split(None, len(columns) - 1)
            cells = [c.strip() for c in cells if c.strip()]
            if len(cells) == len(columns):
                table.append({c: (v if c in ("node_type", "name") else _number(v)) for c, v in zip(columns, cells)})
            else:
                table = None  # the table ended ("Timings (microseconds): ..." and the like)
        elif not stripped:
            continue
    return profile


def parse_benchmark_output(text: str) -> dict:
    """Every figure the tool printed.

    Returns:
        ``warmup`` and ``timed`` (count/first/curr/min/max/avg/std in us; ``timed`` is the
        last summary line), ``timings`` (init, first, warmup_avg, inference_avg in us),
        ``memory`` (MB: init and overall deltas, peak), ``op_profile`` when the tool
        profiled ops, and ``per_run_us`` when edgebnn's runner printed per-run times.

    Raises:
        OutputError: no complete summary line for the timed runs.
    """
    lines = [_PREFIX.sub("", line) for line in text.splitlines()]
    summaries, short, memory, result = [], [], {}, {}
    for number, line in enumerate(lines, start=1):
        try:
            _read_line(line, summaries, short, memory, result)
        except ValueError:  # a figure that is no number ("init=." matches the pattern, float() refuses it)
            raise OutputError(f"line {number} of the benchmark output has a figure that is not a number: "
                              f"{line.strip()[:120]!r}") from None
    # The tool prints a warm-up summary, then the timed one: a lone short line is a warm-up
    # whose timed runs never came (the full form is taken alone, as old tools print it).
    if not summaries or "avg" not in summaries[-1] or (len(summaries) == 1 and short[0]):
        raise OutputError("no 'count= ... avg= std=' (or 'count=N curr=T') line for the timed runs in the "
                          "benchmark output")
    result.update(timed=summaries[-1], warmup=summaries[0] if len(summaries) > 1 else None, memory=memory)
    bad = _non_finite(result)
    if bad:  # a NaN or an infinity is no latency: the configuration failed, whatever else it printed
        raise OutputError(f"the runtime printed a figure that is not finite ({bad}): not a measurement")
    if any(_SECTION.match(line.strip()) or _TABLE.match(line.strip()) for line in lines):
        result["op_profile"] = _op_profile(lines)
    return result


def _non_finite(figures: dict) -> str:
    """The first figure among the summaries, timings, memory and per-run times that is NaN or infinite."""
    for section in ("timed", "warmup", "timings", "memory"):
        for key, value in (figures.get(section) or {}).items():
            if isinstance(value, float) and not math.isfinite(value):
                return f"{section} {key}={value}"
    for i, value in enumerate(figures.get("per_run_us") or []):
        if not math.isfinite(value):
            return f"per-run time #{i + 1} = {value}"
    return ""


def _read_line(line: str, summaries: list, short: list, memory: dict, result: dict) -> None:
    """Add what one output line says to the figures being gathered.

    Raises:
        ValueError: a figure on the line is not a number.
    """
    if m := _SUMMARY.match(line):
        figures, was_short = _summary(m)
        summaries.append(figures)
        short.append(was_short)
    elif m := _TIMINGS.match(line):
        keys = {"Init": "init", "First inference": "first", "Warmup (avg)": "warmup_avg",
                "Inference (avg)": "inference_avg"}
        result["timings"] = {
            keys.get(k.strip(), _key(k)): float(v)
            for k, v in re.findall(r"([A-Za-z() ]+): ([\d.e+-]+)", m["body"])
        }
    elif m := _MEMORY.match(line):
        memory.update(init_mb=float(m["init"]), overall_mb=float(m["overall"]))
    elif m := _PEAK.match(line):
        memory["peak_mb"] = float(m["peak"])
    elif m := _LCE_VERSION.match(line):
        result["lce_version"] = m["version"]
    elif line.startswith(PER_RUN_PREFIX):
        result["per_run_us"] = [float(t) for t in line[len(PER_RUN_PREFIX):].split()]
