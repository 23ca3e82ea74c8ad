"""Devices: profiles, transports, runtimes and the benchmark protocol."""

import edgebnn  # noqa: F401
