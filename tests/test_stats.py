"""Model statistics: counted as larq's own profiler counts them, and never blocked by a quantizer
larq's profiler cannot take (a plain function)."""

from __future__ import annotations

import pytest
from peers import binary_depthwise, larq_mnist, lce_toy

from edgebnn.models.stats import model_stats


def _larq_profile(model) -> dict:
    import larq as lq

    profile = lq.models.ModelProfile(model)
    binary_macs = int(profile.op_count("mac", 1) or 0)
    return {"binary_params": int(profile.weight_count(bitwidth=1)), "binary_macs": binary_macs,
            "float_macs": int(profile.op_count("mac") or 0) - binary_macs,
            "memory_bytes": int(profile.memory / 8), "float_memory_bytes": int(profile.fp_equivalent_memory / 8)}


@pytest.mark.parametrize("build", [
    lambda: __import__("edgebnn.registry", fromlist=["create_model"]).create_model("bireal-tiny"),
    lambda: __import__("larq_zoo").sota.QuickNetSmall(input_shape=(32, 32, 3), weights=None, num_classes=10),
    larq_mnist,
    binary_depthwise,
    lce_toy,
], ids=["bireal-tiny", "quicknet-small", "larq-mnist", "binary-depthwise", "lce-toy"])
def test_counts_equal_larq_s_profiler(build):
    model = build()
    stats = model_stats(model)
    assert {k: stats[k] for k in _larq_profile(model)} == _larq_profile(model)
    assert stats["unknown_params"] == stats["unknown_macs"] == 0 and stats["unknown_layers"] == {}
    assert stats["binary_params"] + stats["float_params"] == stats["params"] == model.count_params()


def test_a_function_quantizer_counts_as_the_sign_it_is():
    """larq's profiler raises a TypeError on LCE's tf.where quantizer; edgebnn probes it: 1-bit,
    the same counts as ste_sign."""
    import larq as lq

    model = lce_toy("where_sign")
    with pytest.raises(TypeError):
        lq.models.ModelProfile(model)
    assert model_stats(model) == model_stats(lce_toy())


def test_the_statistics_module_loads_no_tensorflow():
    import subprocess
    import sys

    code = "import sys, edgebnn.models.stats; print(any(m in sys.modules for m in ('tensorflow', 'larq', 'tf_keras')))"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip() == "False"
