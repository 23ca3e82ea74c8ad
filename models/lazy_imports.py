"""Modules imported on first use, so that registering models needs no TensorFlow.

The family modules register their models when ``edgebnn.models`` is imported, and every
command that only needs names (``edgebnn train no-such-model``, ``--help``) must answer at
once: they take larq, tf_keras, larq_zoo and edgebnn's own layers through :func:`lazy_module`,
a stand-in that imports the real module (the ordinary way) at its first attribute access.
"""

from __future__ import annotations

import importlib


class LazyModule:
    """Stands for the module ``name`` and imports it when an attribute is first asked for."""

    def __init__(self, name: str):
        self._name = name

    def __getattr__(self, attribute: str):
        return getattr(importlib.import_module(self._name), attribute)

    def __repr__(self) -> str:
        return f"<lazy module {self._name!r}>"


def lazy_module(name: str) -> LazyModule:
    """``name`` as a stand-in that imports it when first used (nothing is put in ``sys.modules``)."""
    return LazyModule(name)
