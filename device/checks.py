"""What a setting may hold, checked the same way wherever it came from.

A check takes a value (with ``from_text``: as the environment or an ``ssh://`` URL spells it,
parsed first) and returns it typed, or raises ValueError saying what is allowed ("a whole number
of at least 1"). The caller names the setting and where the value came from, as its user would
look for it: a field of the devices file (:mod:`edgebnn.device.profiles`), a saved tuned entry of
the setup record (:mod:`edgebnn.device.setup_record`), a command-line flag
(:class:`edgebnn.device.protocol.BenchConfig`).
"""

from __future__ import annotations

import math
import re

TRUE, FALSE = ("1", "true", "yes"), ("0", "false", "no")


def text(value, *, from_text: bool = False) -> str:
    """A string."""
    if not isinstance(value, str):
        raise ValueError("a string")
    return value


def switch(value, *, from_text: bool = False) -> bool:
    """True or false (from text: 1/true/yes, 0/false/no)."""
    if isinstance(value, bool):
        return value
    if from_text and str(value).lower() in TRUE + FALSE:
        return str(value).lower() in TRUE
    raise ValueError("true or false")


def whole(low: int | None = None):
    """The check of a whole number (never a bool), of at least ``low`` when given."""
    allowed = "a whole number" + (f" of at least {low}" if low is not None else "")

    def check(value, *, from_text: bool = False) -> int:
        if from_text and str(value).strip().isdigit():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int) or (low is not None and value < low):
            raise ValueError(allowed)
        return value

    return check


def number(low: float | None = None, *, above: bool = False, unit: str = ""):
    """The check of a finite number (an int or a float, never a bool), of at least ``low`` when given
    (``above``: more than ``low``); ``unit`` names what it counts in messages (``seconds``)."""
    allowed = "a finite number" + (f" of {unit}" if unit else "")
    if low is not None:
        allowed += f" {'above' if above else 'of at least'} {low:g}"

    def check(value, *, from_text: bool = False) -> float:
        if from_text:
            try:
                value = float(value)
            except ValueError:
                raise ValueError(allowed) from None
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or (
                low is not None and (value < low or above and value == low)):
            raise ValueError(allowed)
        return float(value)

    return check


def thread_counts(value, *, from_text: bool = False) -> tuple[int, ...]:
    """A non-empty list of thread counts of at least 1 (from text: ``1,4``)."""
    items = str(value).split(",") if from_text else value
    if not isinstance(items, list) or not items:
        raise ValueError("a list of thread counts, e.g. [1, 4]")
    counts = []
    for item in items:
        if from_text and isinstance(item, str) and item.strip().isdigit():
            item = int(item)
        if isinstance(item, bool) or not isinstance(item, int) or item < 1:
            raise ValueError("a list of whole thread counts of at least 1, e.g. [1, 4]")
        counts.append(item)
    return tuple(counts)


def taskset_cpus(value, *, from_text: bool = False) -> str:
    """A CPU list ``taskset -c`` takes (``4-7``, ``0,2``, ranges low-high; ``""``: none)."""
    if not isinstance(value, str) or value and not (
            re.fullmatch(r"[0-9]+(-[0-9]+)?(,[0-9]+(-[0-9]+)?)*", value) and all(
                int(r[0]) <= int(r[-1]) for r in (part.split("-") for part in value.split(",")))):
        raise ValueError("a CPU list such as 4-7 or 0,2 (ranges low-high)")
    return value
