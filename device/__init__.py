"""Devices: profiles, transports, runtimes and the benchmark protocol.

The entry points of ``edgebnn bench``: :func:`bench_run` (with :func:`bench_configs`), and
:func:`tune_summary` and :func:`describe` to say what a ``--tune`` chose. They load on first use,
so importing one device module never pays for the whole stage.
"""

import edgebnn

EXPORTS = {"bench_run": "bench", "bench_configs": "bench", "tune_summary": "bench",
           "describe": "bench"}
__all__ = list(EXPORTS)
__getattr__ = edgebnn.lazy_exports(__name__, EXPORTS)
