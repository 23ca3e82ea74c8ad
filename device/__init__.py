"""Devices: profiles, transports, runtimes and the benchmark protocol.

The entry points of ``edgebnn bench``: :func:`bench_run` (with :func:`bench_configs`), and
:func:`tune_summary` and :func:`describe` to say what a ``--tune`` chose. They load on first use,
so importing one device module never pays for the whole stage.
"""

import importlib

import edgebnn  # noqa: F401

EXPORTS = {"bench_run": "bench", "bench_configs": "bench", "tune_summary": "bench",
           "describe": "bench"}
__all__ = list(EXPORTS)


def __getattr__(name: str):
    if name in EXPORTS:
        return getattr(importlib.import_module(f"{__name__}.{EXPORTS[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
