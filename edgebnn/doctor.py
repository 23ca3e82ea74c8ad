"""``edgebnn doctor``: is the stack installed and working, and if not, what fixes it."""

from __future__ import annotations

import os
from dataclasses import dataclass

from edgebnn.run.rundir import versions

PINNED = {"tensorflow": "2.16.2", "tf-keras": "2.16.0", "larq": "0.14.0", "larq-compute-engine": "0.16.0", "larq-zoo": "2.4.0"}


@dataclass
class Check:
    name: str
    ok: bool
    detail: str
    fix: str = ""


def run_checks() -> list[Check]:
    found = versions()
    checks = [Check("python", found["python"].startswith("3.11"), found["python"], "use Python 3.11")]
    for name, want in PINNED.items():
        have = found.get(name, "not installed")
        checks.append(Check(name, have == want, have, f"pip install '{name}=={want}'"))
    checks.append(
        Check("numpy", found["numpy"].split(".")[0] == "1", found["numpy"], "pip install 'numpy<2'")
    )
    legacy = os.environ.get("TF_USE_LEGACY_KERAS") == "1"
    checks.append(Check("legacy Keras", legacy, f"TF_USE_LEGACY_KERAS={os.environ.get('TF_USE_LEGACY_KERAS')}",
                        "import edgebnn before tensorflow, or export TF_USE_LEGACY_KERAS=1"))
    try:
        import tensorflow as tf

        keras_module = tf.keras.layers.Dense.__module__.split(".")[0]
        checks.append(Check("tf.keras is Keras 2", keras_module == "tf_keras", f"tf.keras comes from {keras_module}",
                            "TensorFlow was imported before edgebnn: import edgebnn first"))
    except Exception as e:  # a broken install raises anything
        checks.append(Check("tensorflow import", False, str(e)[:200], "pip install 'tensorflow==2.16.2'"))
        return checks
    checks.append(_conversion_check())
    return checks


def _conversion_check() -> Check:
    try:
        import larq as lq
        import numpy as np
        import tf_keras as keras

        from edgebnn.converters.flatbuffer import op_counts
        from edgebnn.converters.lce import convert
        from edgebnn.converters.parity import parity

        x = keras.Input((8, 8, 32))
        y = lq.layers.QuantConv2D(32, 3, padding="same", pad_values=1.0, input_quantizer="ste_sign",
                                  kernel_quantizer="ste_sign", kernel_constraint="weight_clip", use_bias=False)(x)
        model = keras.Model(x, y)
        flatbuffer = convert(model)
        ops = op_counts(flatbuffer)
        error = parity(model, flatbuffer, np.random.default_rng(0).uniform(-1, 1, (2, 8, 8, 32)).astype("float32"))
        ok = ops.get("LceBconv2d") == 1 and error["max_abs_error"] < 1e-3
        return Check("LCE converter + interpreter", ok,
                     f"tiny binary conv -> {ops}, max |err| {error['max_abs_error']:.1e}",
                     "pip install --force-reinstall 'larq-compute-engine==0.16.0'")
    except Exception as e:
        return Check("LCE converter + interpreter", False, f"{type(e).__name__}: {str(e)[:200]}",
                     "pip install --force-reinstall 'larq-compute-engine==0.16.0'")
