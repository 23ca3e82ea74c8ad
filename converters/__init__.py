"""Keras -> Larq Compute Engine flatbuffers, and the evidence that the conversion worked."""

import edgebnn  # noqa: F401  (selects Keras 2 before TensorFlow is imported)
