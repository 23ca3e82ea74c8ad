"""Training: train / resume / evaluate, callbacks, distillation and the papers' recipes.

The entry points of ``edgebnn train`` and ``edgebnn evaluate`` (loaded on first use: they
import TensorFlow, which ``edgebnn --help`` must not pay for).
"""

import edgebnn

EXPORTS = {"start": "launch", "evaluate_source": "evaluate"}
__all__ = list(EXPORTS)
__getattr__ = edgebnn.lazy_exports(__name__, EXPORTS)
