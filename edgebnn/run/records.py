"""The records edgebnn saves, as types: the bench record, its results, a ``--tune`` choice, the conversion report.

Each type writes itself (``to_dict``, the JSON on disk) and reads itself (``from_dict``). The
JSON keeps the keys older edgebnn wrote, plus ``schema``: :data:`SCHEMA` now, and a file without
one is schema 1. ``from_dict`` is the one reader of older files: it takes any shape an older
edgebnn wrote (absent runtime switches, no interval, no ``complete`` in a choice, no sha256, a
board record from an x86 machine) and never raises on a hand-edited or partial file; a figure
that is not a finite number reads as None.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

SCHEMA = 2
ARM = ("aarch64", "arm64", "armv8l")


def number(x: Any) -> float | int | None:
    """A figure, or None: never a bool, a NaN or an infinity (a JSON file may hold them)."""
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        return None
    return x if math.isfinite(x) else None


def _dict(x: Any) -> dict:
    return x if isinstance(x, dict) else {}


def _list(x: Any) -> list:
    return x if isinstance(x, list) else []


def _schema(d: dict) -> int:
    """The schema a file was written in: a file without one is schema 1 (edgebnn before records had types)."""
    schema = d.get("schema")
    return schema if isinstance(schema, int) and not isinstance(schema, bool) else 1


def held_kind(kind: Any, arch: Any) -> str:
    """A figure kind held to the architecture the preflight saw: never ``board`` off ARM, ``unknown`` if untold.

    Records written before the bench stage followed the architecture (a profile called
    ``bananapi`` that reached an x86 machine said ``board``) are read as what they measured.
    """
    if kind not in ("host", "board"):  # never call a figure a board figure without being told
        return "unknown"
    arch = str(arch or "").strip().lower()
    if kind == "board" and arch and not (arch in ARM or arch.startswith("arm")):
        return "host"
    return kind


@dataclass
class Result:
    """One configuration's outcome and its roofline, as saved (``config``: a BenchConfig's fields).

    :class:`edgebnn.device.protocol.BenchResult` is this type while the configuration is
    measured, with its ``config`` a ``BenchConfig``.
    """

    device: str = ""
    config: dict = field(default_factory=dict)  # a BenchConfig's fields
    ok: bool = False
    error_kind: str = ""
    error: str = ""
    valid: bool = False
    latency: dict = field(default_factory=dict)
    figures: dict = field(default_factory=dict)
    raw: str = ""
    seconds: float = 0.0
    temps_c: list | None = None
    median_interval_ms: list | None = None
    cores_available: int | None = None
    roofline: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_dict(cls, d: Any) -> Result:
        d = _dict(d)
        return cls(device=str(d.get("device") or ""), config=_dict(d.get("config")), ok=bool(d.get("ok")),
                   error_kind=d.get("error_kind") or "", error=d.get("error") or "", valid=bool(d.get("valid")),
                   latency=_dict(d.get("latency")), figures=_dict(d.get("figures")), raw=d.get("raw") or "",
                   seconds=d.get("seconds") or 0.0, temps_c=d.get("temps_c"),
                   median_interval_ms=d.get("median_interval_ms"), cores_available=d.get("cores_available"),
                   roofline=_dict(d.get("roofline")))

    # the configuration: older records have threads only, the rest are the runtime's defaults
    @property
    def settings(self) -> dict:
        """The configuration's fields (a saved dict, or a ``BenchConfig`` while measuring)."""
        return self.config if isinstance(self.config, dict) else asdict(self.config)

    @property
    def threads(self) -> int | None:
        threads = self.settings.get("threads")
        return threads if isinstance(threads, int) and not isinstance(threads, bool) else None

    @property
    def indirect_bgemm(self) -> bool:
        return bool(self.settings.get("indirect_bgemm"))

    @property
    def xnnpack(self) -> bool:
        return bool(self.settings.get("xnnpack"))

    @property
    def affinity(self) -> str:
        return str(self.settings.get("affinity") or "")

    def figure(self, name: str) -> float | None:
        """A latency figure (``median_ms``, ``p90_ms``, ``mean_ms``, ``peak_memory_mb``), None if absent or not finite."""
        return number(self.latency.get(name))

    def limit(self, name: str) -> float | None:
        """A roofline figure (``achieved_gbmacs``, ``share_of_lce``, ``lce_gbmacs``...), None if absent or not finite."""
        return number(self.roofline.get(name))

    @property
    def finite(self) -> bool:
        """False when a latency figure is NaN or infinite (hand-edited, or an older edgebnn)."""
        return all(not isinstance(v, float) or math.isfinite(v) for v in self.latency.values())

    @property
    def latency_ms(self) -> float | None:
        """The median, else the mean (a runtime that printed aggregates only)."""
        median = self.figure("median_ms")
        return median if median is not None else self.figure("mean_ms")

    @property
    def interval(self) -> tuple[float | None, float | None, float | None] | None:
        """``(median, low, high)`` in ms, or None without a latency.

        The interval ``bench --tune`` chose by (``median_interval_ms``); a record from before it has
        the median only (no interval: None, None).
        """
        written = self.median_interval_ms
        if isinstance(written, list) and len(written) == 3 and all(number(x) is not None for x in written):
            return tuple(written)
        centre = number(self.latency.get("median_ms", self.latency.get("mean_ms")))
        return None if centre is None else (centre, None, None)


@dataclass
class TuneChoice:
    """What ``bench --tune`` chose (``edgebnn.device.tune.choose``), or why nothing: none valid, or incomplete."""

    index: int | None = None
    config: dict | None = None
    median_ms: float | None = None
    fastest_index: int | None = None
    ties: list = field(default_factory=list)
    rule: str = ""
    complete: bool = True  # older records: a choice was only ever made of a complete sweep
    planned: int | None = None
    ran: int | None = None

    def to_dict(self) -> dict:
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        if self.fastest_index is None:  # written only beside a choice
            del data["fastest_index"]
        return data

    @classmethod
    def from_dict(cls, d: Any) -> TuneChoice:
        d = _dict(d)
        index = d.get("index")
        return cls(index=index if isinstance(index, int) and not isinstance(index, bool) else None,
                   config=d["config"] if isinstance(d.get("config"), dict) else None,
                   median_ms=number(d.get("median_ms")), fastest_index=d.get("fastest_index"),
                   ties=[t for t in _list(d.get("ties")) if isinstance(t, int)], rule=str(d.get("rule") or ""),
                   complete=d.get("complete") is not False, planned=number(d.get("planned")),
                   ran=number(d.get("ran")))

    @property
    def chosen(self) -> bool:
        return self.complete and self.index is not None and self.config is not None


@dataclass
class BenchRecord:
    """One device's ``bench/<device>-<utc>-<id>.json``: everything a bench produced, failures included."""

    device: str = ""
    profile: dict = field(default_factory=dict)
    figure_kind: str = "unknown"
    fingerprint: dict = field(default_factory=dict)
    runtime: dict = field(default_factory=dict)
    model: str = ""
    model_file: dict = field(default_factory=dict)
    started: str = ""
    edgebnn: str = ""
    ok: bool = False
    error_kind: str = ""
    error: str = ""
    warnings: list = field(default_factory=list)
    complete: bool = False
    configurations: dict = field(default_factory=dict)  # {"planned", "ran"}
    temps_c: dict = field(default_factory=dict)
    steps_s: dict = field(default_factory=dict)
    uploads: dict = field(default_factory=dict)
    connections: int = 0
    binary_macs: int | None = None
    results: list[Result] = field(default_factory=list)
    tuned_from: dict | None = None  # the saved `--tune --save-tuned` choice this bench ran
    tune: TuneChoice | None = None
    saved_tuned: dict | None = None  # where `--save-tuned` saved the choice
    schema: int = SCHEMA

    def to_dict(self) -> dict:
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        data["results"] = [r.to_dict() for r in self.results]
        data["tune"] = self.tune.to_dict() if self.tune else None
        return {k: v for k, v in data.items() if v is not None or k not in ("tuned_from", "tune", "saved_tuned")}

    @classmethod
    def from_dict(cls, d: Any) -> BenchRecord:
        d = _dict(d)
        fingerprint = _dict(d.get("fingerprint"))
        text = {k: str(d.get(k) or "") for k in ("device", "model", "started", "edgebnn", "error_kind", "error")}
        objects = {k: _dict(d.get(k)) for k in ("profile", "runtime", "model_file", "configurations", "temps_c",
                                                "steps_s", "uploads")}
        optional = {k: d[k] if isinstance(d.get(k), dict) else None for k in ("tuned_from", "saved_tuned")}
        tune = TuneChoice.from_dict(d["tune"]) if isinstance(d.get("tune"), dict) else None
        return cls(**text, **objects, **optional, tune=tune, fingerprint=fingerprint,
                   figure_kind=held_kind(d.get("figure_kind"), fingerprint.get("arch")), ok=bool(d.get("ok")),
                   warnings=_list(d.get("warnings")), complete=bool(d.get("complete")),
                   connections=d.get("connections") or 0, binary_macs=number(d.get("binary_macs")),
                   results=[Result.from_dict(r) for r in _list(d.get("results")) if isinstance(r, dict)],
                   schema=_schema(d))

    @property
    def sha256(self) -> str | None:
        """The sha256 of the flatbuffer the record measured, or None (an older record)."""
        digest = self.model_file.get("sha256")
        return digest if isinstance(digest, str) and digest else None

    @property
    def planned(self) -> int:
        return self.configurations.get("planned") or 0

    @property
    def ran(self) -> int:
        return self.configurations.get("ran") or 0


# The conversion report's fields, in the order `edgebnn convert` writes them; any other key is kept as it is.
CONVERSION_FIELDS = ("op_counts", "binary_layers", "bconv", "binary_ops", "bconv_coverage", "tflite_bytes", "parity",
                     "size", "explain", "coverage_from", "target", "int8", "int8_io", "convert_seconds", "keras_bytes",
                     "converted", "data", "file")


@dataclass
class ConversionReport:
    """``manifest["conversion"]``: what ``edgebnn convert`` (or a brought flatbuffer's op inventory) recorded.

    Every field is optional: each target writes its own (a float twin has no binary coverage).
    A field absent from the report stays absent when written; ``other`` holds any key not typed here
    (another target's report, under its name).
    """

    op_counts: dict | None = None
    binary_layers: int | None = None
    bconv: int | None = None
    binary_ops: int | None = None
    bconv_coverage: float | None = None
    tflite_bytes: int | None = None
    parity: dict | None = None
    size: dict | None = None
    explain: dict | None = None
    coverage_from: str | None = None
    target: str | None = None
    int8: bool | None = None
    int8_io: bool | None = None
    convert_seconds: float | None = None
    keras_bytes: int | None = None
    converted: str | None = None
    data: str | None = None
    file: str | None = None
    other: dict = field(default_factory=dict)
    given: frozenset = frozenset()  # the typed fields the report holds (a None among them is written as null)
    schema: int = SCHEMA

    def to_dict(self) -> dict:
        typed = {k: getattr(self, k) for k in CONVERSION_FIELDS if k in self.given or getattr(self, k) is not None}
        return {**typed, **self.other, "schema": self.schema}

    @classmethod
    def from_dict(cls, d: Any) -> ConversionReport:
        d = _dict(d)
        typed = {k: d[k] for k in CONVERSION_FIELDS if k in d}
        other = {k: v for k, v in d.items() if k not in CONVERSION_FIELDS and k != "schema"}
        return cls(**typed, other=other, given=frozenset(typed), schema=_schema(d))

    @classmethod
    def made(cls, report: dict) -> ConversionReport:
        """A report this edgebnn just made (of :data:`SCHEMA`), from the converter's fields."""
        return replace(cls.from_dict(report), schema=SCHEMA)

    def figure(self, name: str) -> float | int | None:
        """A numeric field (``bconv``, ``tflite_bytes``...), None where absent or not a finite number."""
        return number(getattr(self, name))
