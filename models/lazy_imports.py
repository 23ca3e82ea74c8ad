"""Modules imported on first use, so that registering models needs no TensorFlow.

The family modules register their models when ``edgebnn.models`` is imported, and every
command that only needs names (``edgebnn train no-such-model``, ``--help``) must answer at
once: they take larq, tf_keras and larq_zoo through :func:`lazy_module`, which executes the
real module at its first attribute access.
"""

from __future__ import annotations

import importlib.util
import sys


def lazy_module(name: str):
    """``name`` as a module object that imports itself when first used."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.find_spec(name)
    if spec is None:  # not installed: let the first use raise the ordinary error
        return importlib.import_module(name)
    loader = importlib.util.LazyLoader(spec.loader)
    spec.loader = loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    loader.exec_module(module)
    return module
