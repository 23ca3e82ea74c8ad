"""Training: train / resume / evaluate, callbacks, distillation and the papers' recipes.

The entry points of ``edgebnn train`` and ``edgebnn evaluate`` (loaded on first use: they
import TensorFlow, which ``edgebnn --help`` must not pay for).
"""

__all__ = ["evaluate_source", "start"]


def __getattr__(name: str):
    if name == "start":
        from edgebnn.training.launch import start

        return start
    if name == "evaluate_source":
        from edgebnn.training.evaluate import evaluate_source

        return evaluate_source
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
