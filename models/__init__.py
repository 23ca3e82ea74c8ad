"""Model families. Importing this package registers every model with ``edgebnn.registry``.

One module per family, each importing TensorFlow and larq only when a model is built (so that
names resolve at once); custom quantizers and layers live in ``quantizers`` and ``layers``,
registered with larq by :func:`register_custom_objects` so that saved models load again.
"""

import edgebnn  # noqa: F401  (selects Keras 2 before TensorFlow is imported)
from edgebnn.models import bireal_tiny, bnext, equalbits, sabnn, tang2017, zoo  # noqa: F401
from edgebnn.registry import create_model, get_card, list_models


def register_custom_objects() -> None:
    """Register edgebnn's quantizers and layers with Keras (before loading a saved model)."""
    from edgebnn.models import layers, quantizers  # noqa: F401  (importing them registers them)


__all__ = ["create_model", "get_card", "list_models", "register_custom_objects"]
