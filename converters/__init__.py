"""Keras -> Larq Compute Engine flatbuffers, and the evidence that the conversion worked.

The entry points of ``edgebnn convert``: :func:`convert_source` (with :class:`ConvertOptions`),
:func:`convert_run` for a run directory, and :func:`converted_run` (a source's run with its
flatbuffer, as ``bench`` needs). They load on first use.
"""

import importlib

import edgebnn  # noqa: F401  (selects Keras 2 before TensorFlow is imported)

EXPORTS = {"ConvertOptions": "convert", "convert_source": "convert", "convert_run": "convert",
           "converted_run": "convert"}
__all__ = list(EXPORTS)


def __getattr__(name: str):
    if name in EXPORTS:
        return getattr(importlib.import_module(f"{__name__}.{EXPORTS[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
