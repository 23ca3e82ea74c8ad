"""edgebnn: binary neural networks from a paper to a latency figure on an ARM board.

Importing any part of edgebnn (the CLI, ``edgebnn.models``, the tests) runs this module first,
so this is the one place that selects Keras 2: larq 0.14 fails to import under Keras 3, and
TensorFlow reads ``TF_USE_LEGACY_KERAS`` only when it is first imported.
"""

import importlib
import logging
import os

os.environ["TF_USE_LEGACY_KERAS"] = "1"
# TensorFlow's C++ start-up chatter (CUDA probes logged as errors on CPU-only machines, oneDNN
# notices) hides our own output; Python exceptions are unaffected.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

# TensorFlow's Python logger repeats Keras notices (e.g. about compiled metrics of a model the
# LCE converter reloads) that are not the user's concern.
logging.getLogger("tensorflow").setLevel(logging.ERROR)

# Third-party warnings nobody can act on, and larq's repeated starved-weights notice (see noise).
from edgebnn import noise  # noqa: E402 (after the environment above)

noise.hide()

__version__ = "0.1.0"


def lazy_exports(package: str, exports: dict[str, str]):
    """A package's ``__getattr__``: an exported name imports its module (``exports[name]``) on first
    use, so importing the package costs nothing a command does not need."""

    def attribute(name: str):
        if name in exports:
            return getattr(importlib.import_module(f"{package}.{exports[name]}"), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return attribute
