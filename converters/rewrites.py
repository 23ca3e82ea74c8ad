"""Rewrites applied before conversion so that paper quantizers reach LCE's binary kernels.

LCE turns a convolution into ``LceBconv2d`` only when its activations come from a sign-like
quantizer and every output channel of its kernel is +-s. Quantizers that train differently
(sort-based, asymmetric scales) are rewritten here into equivalent forms LCE accepts.
"""

from __future__ import annotations

# Per-family rewrites register here: fn(model) -> model or None (None: nothing to rewrite).
REWRITES: list = []


def prepare_for_lce(model):
    """Return ``model`` with every registered rewrite applied (the input is not modified)."""
    for rewrite in REWRITES:
        model = rewrite(model) or model
    return model


def _register_defaults() -> None:
    from edgebnn.converters.bake import bake_kernels

    REWRITES.append(bake_kernels)


_register_defaults()
