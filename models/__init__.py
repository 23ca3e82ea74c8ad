"""Model families. Importing this package registers every model with ``edgebnn.registry``.

One module per family; custom quantizers live in ``quantizers`` and are registered with larq
so that saved models load again.
"""

import edgebnn  # noqa: F401  (selects Keras 2 before TensorFlow is imported)

from edgebnn.models import bireal_tiny, bnext, equalbits, quantizers, sabnn, tang2017, zoo  # noqa: F401,E402

from edgebnn.registry import create_model, get_card, list_models  # noqa: E402

__all__ = ["create_model", "get_card", "list_models"]
