"""Keras -> Larq Compute Engine flatbuffers, and the evidence that the conversion worked.

The entry points of ``edgebnn convert``: :func:`convert_source` (with :class:`ConvertOptions`),
:func:`convert_run` for a run directory, and :func:`converted_run` (a source's run with its
flatbuffer, as ``bench`` needs). They load on first use.
"""

import edgebnn  # (importing it first selects Keras 2 before TensorFlow is imported)

EXPORTS = {"ConvertOptions": "convert", "convert_source": "convert", "convert_run": "convert",
           "converted_run": "convert"}
__all__ = list(EXPORTS)
__getattr__ = edgebnn.lazy_exports(__name__, EXPORTS)
