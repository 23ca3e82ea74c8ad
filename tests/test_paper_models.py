"""The paper models: registration, save and load, parameter counts, and LCE deployability.

Conversions are expensive on a small machine: the one-layer rewrite tests are fast, the
whole-model conversions (one per family, shared through a session fixture) are marked slow.
"""

import numpy as np
import pytest

import edgebnn.models  # noqa: F401  (registers the families)
from edgebnn.registry import create_model, get_card, list_models

PAPER_FAMILIES = ("sabnn", "bnext", "equalbits", "tang2017")
PAPER_MODELS = [c for c in list_models() if c.family in PAPER_FAMILIES]
RECIPES = {
    "sabnn-r18": "sabnn-r18", "sabnn-r34": "sabnn-r34", "sabnn-r50": "sabnn-r50",
    "bnext-tiny": "bnext", "bnext-small": "bnext", "bnext-middle": "bnext", "bnext-large": "bnext-large",
    "bnext-18": "bnext", "equalbits-r18": "equalbits-imagenet", "equalbits-r34": "equalbits-imagenet",
    "equalbits-r20": "equalbits-cifar10", "tang2017-compact": "tang2017",
}


def test_every_paper_model_is_registered_with_its_recipe():
    assert {c.name: c.recipe for c in PAPER_MODELS} == RECIPES
    assert get_card("sabnn_resnet18").name == "sabnn-r18"
    assert get_card("sabnn-r50").published == {"imagenet_top1": 68.7}
    assert get_card("bnext-large").published == {"imagenet_top1": 80.6}
    for card in PAPER_MODELS:
        doc = __import__(card.entrypoint.__module__, fromlist=["_"]).__doc__
        assert "Interpretation" in doc and "Paper's" in doc, card.name


def _randomize(model, seed=0):
    """Random SA-BNN scales and BN statistics, so that rewrites and parity are exercised."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        q = getattr(layer, "kernel_quantizer", None)
        if hasattr(q, "a_plus"):
            q.a_plus.assign(rng.uniform(0.5, 1.5, q.a_plus.shape).astype("float32"))
            q.a_minus.assign(rng.uniform(0.5, 1.5, q.a_minus.shape).astype("float32"))
        if type(layer).__name__ == "QuantConv2D" and layer.use_bias:  # Equal Bits' biases
            layer.bias.assign(rng.normal(0, 0.5, layer.bias.shape).astype("float32"))
        if type(layer).__name__ == "BatchNormalization":
            gamma, beta, mean, var = layer.get_weights()
            layer.set_weights([rng.uniform(0.5, 1.5, gamma.shape), rng.normal(0, 0.1, beta.shape),
                               rng.normal(0, 0.1, mean.shape), rng.uniform(0.5, 2, var.shape)])
    return model


def _logits(model):
    """The model without its final softmax: parity on saturated probabilities proves nothing."""
    import tf_keras as keras

    return keras.Model(model.input, model.layers[-1].input)


def _small(name, seed=0, **options):
    """``name`` at width 0.25 and a small input, with weights drawn from ``seed``."""
    import tf_keras as keras

    size = max(32, get_card(name).min_input_size)
    options = {"input_shape": (size, size, 3), "num_classes": 10, "width": 0.25, **options}
    keras.utils.set_random_seed(seed)
    return create_model(name, **options)


# Deep models take more than 20 s to build on a small machine: slow.
FAST_TO_BUILD = {"sabnn-r18", "equalbits-r18", "equalbits-r20", "tang2017-compact"}


@pytest.mark.parametrize(
    "card",
    [pytest.param(c, marks=() if c.name in FAST_TO_BUILD else pytest.mark.slow) for c in PAPER_MODELS],
    ids=lambda c: c.name,
)
def test_save_and_load_with_custom_objects(card, tmp_path):
    import tf_keras as keras

    model = _randomize(_small(card.name))
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.models.load_model(path, compile=False)
    x = np.random.default_rng(1).uniform(-1, 1, (2, *model.input_shape[1:])).astype("float32")
    # eager calls: tracing predict() costs more than the whole test on a small machine
    expected = _logits(model)(x, training=False).numpy()
    np.testing.assert_allclose(_logits(loaded)(x, training=False).numpy(), expected, rtol=1e-5, atol=1e-5)
    keras.backend.clear_session()


def _trainable(model) -> int:
    return int(sum(np.prod(w.shape) for w in model.trainable_weights))


# The authors' code at 1000 classes (papers.md): parameters their forward pass uses, and the ones
# it defines and never calls (the stem's PReLU, the input PReLU of every plain unit).
BNEXT_PARAMS = {"bnext-tiny": (30_853_276, 8_960, 30.86e6), "bnext-small": (68_581_174, 13_440, 68.59e6),
                "bnext-middle": (134_479_894, 22_080, 134.50e6), "bnext-large": (326_504_912, 41_728, 326.55e6)}


def test_bnext_tiny_parameters_and_binary_macs_match_the_paper():
    from edgebnn.models.stats import model_stats

    model = create_model("bnext-tiny")
    used, unused, authors = BNEXT_PARAMS["bnext-tiny"]
    assert _trainable(model) == used and round(used + unused, -4) == authors
    assert model_stats(model)["binary_macs"] == pytest.approx(4.82e9, rel=0.02)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["bnext-small", "bnext-middle", "bnext-large"])
def test_bnext_parameters_match_the_authors_code(name):
    import tf_keras as keras

    used, unused, authors = BNEXT_PARAMS[name]
    assert _trainable(create_model(name, input_shape=(32, 32, 3))) == used and round(used + unused, -4) == authors
    keras.backend.clear_session()


def test_bnext_elm_units_sit_on_the_odd_blocks():
    """The authors' placement: block 0 plain, then alternating, every stride-2 block an ELM unit
    (its shortcut PReLU is the ELM's mark)."""
    import tf_keras as keras

    model = create_model("bnext-tiny", input_shape=(64, 64, 3), width=0.25)
    elm = sorted(int(l.name[5:].split("_")[0]) for l in model.layers if l.name.endswith("_shortcut_prelu"))
    strided = sorted(int(l.name[5:].split("_")[0]) for l in model.layers
                     if l.name.endswith("_3x3_conv") and l.strides == (2, 2))
    assert elm == [1, 3, 5, 7, 9, 11] and strided == [1, 3, 5, 11]
    keras.backend.clear_session()


def test_bnext_18_is_the_authors_birealnet_layout():
    """Per block an ELM 3x3 unit and a plain 3x3 unit, a 1x1-conv shortcut where the stage
    changes, no 1x1 binary convs and no concatenation; 16 binary convs."""
    import tf_keras as keras

    model = create_model("bnext-18")
    binary = [l for l in model.layers if type(l).__name__ == "QuantConv2D"]
    assert len(binary) == 16 and all(l.kernel_size == (3, 3) for l in binary)
    assert not any(type(l).__name__ == "Concatenate" for l in model.layers)
    assert sum(l.name.endswith("_downsample_conv") for l in model.layers) == 3
    assert sum(l.name.endswith("shortcut_prelu") for l in model.layers) == 8  # one ELM unit per block
    keras.backend.clear_session()


def test_equalbits_authors_structure_options():
    """All five options together: the authors' 11,695,336 trainable parameters (papers.md)."""
    import tf_keras as keras

    authors = {"stem_prelu": True, "head_relu": False, "padding": "zero", "conv_bias": True, "shared_prelu": True}
    model = create_model("equalbits-r18", **authors)
    assert _trainable(model) == 11_695_336
    assert sum(type(l).__name__ == "PReLU" for l in model.layers) == 1 + 8  # the stem's and one per block
    assert not any(getattr(l, "activation", None) is keras.activations.relu for l in model.layers
                   if type(l).__name__ == "Activation")
    # Bi-Real's default: no bias (3,840) and no stem PReLU (64), but two PReLUs per block (+1,920).
    assert _trainable(create_model("equalbits-r18")) == 11_695_336 - 3_840 - 64 + 2 * (64 + 128 + 256 + 512)
    assert "no ResNet-20 in the Equal Bits repository" in get_card("equalbits-r20").notes
    keras.backend.clear_session()


def _one_layer_model(quantizer, *, channels=32, size=8):
    import larq as lq
    import tf_keras as keras

    inputs = keras.Input((size, size, channels))
    x = keras.layers.BatchNormalization()(inputs)
    x = lq.layers.QuantConv2D(channels, 3, padding="same", pad_values=1.0, input_quantizer="ste_sign",
                              kernel_quantizer=quantizer, kernel_constraint="weight_clip", use_bias=False)(x)
    x = keras.layers.BatchNormalization()(x)
    return _randomize(keras.Model(inputs, x))


def _convert_and_check(model, *, bconv):
    from edgebnn.converters.lce import convert
    from edgebnn.converters.report import conversion_report
    from edgebnn.data.samples import random_inputs

    flatbuffer = convert(model)
    report = conversion_report(model, flatbuffer, parity_inputs=random_inputs(model.input_shape[1:], n=2))
    assert report["bconv"] == bconv, report["op_counts"]
    assert report["parity"]["max_rel_error"] < 1e-3, report["parity"]
    assert not {"TOPK_V2", "ARG_MIN", "ARG_MAX", "FlexArgSort"} & set(report["op_counts"])
    return report


@pytest.mark.parametrize("form", ["float", "conv", "ones8"])
def test_state_aware_kernel_is_split_into_a_binary_conv_and_a_box_sum(form):
    import larq_compute_engine as lce

    from edgebnn.converters.flatbuffer import op_counts
    from edgebnn.converters.parity import parity
    from edgebnn.converters.rewrites import bake_kernels
    from edgebnn.data.samples import random_inputs
    from edgebnn.models.quantizers import StateAwareSign

    model = _one_layer_model(StateAwareSign())
    flatbuffer = lce.convert_keras_model(bake_kernels(model, box_sum=form))
    assert op_counts(flatbuffer)["LceBconv2d"] == (1 if form == "float" else 2)
    assert parity(model, flatbuffer, random_inputs(model.input_shape[1:], n=2))["max_rel_error"] < 1e-3


def test_bi_half_kernel_is_baked_without_a_sort():
    from edgebnn.models.quantizers import BiHalf

    _convert_and_check(_one_layer_model(BiHalf()), bconv=1)


def test_state_aware_with_equal_scales_needs_no_box_sum():
    from edgebnn.converters.rewrites import bake_kernels
    from edgebnn.models.quantizers import StateAwareSign

    model = _one_layer_model(StateAwareSign())
    q = model.layers[2].kernel_quantizer
    q.a_minus.assign(q.a_plus.numpy())
    baked = bake_kernels(model)
    assert type(baked.layers[2]).__name__ == "QuantConv2D" and baked.layers[2].kernel_quantizer is None


def test_models_without_paper_quantizers_are_not_rewritten():
    from edgebnn.converters.rewrites import bake_kernels

    assert bake_kernels(create_model("bireal-tiny")) is None


# Whole registered models, one per family (and BNext's zero padding), at small width and input.
FAMILY_CASES = {
    "sabnn-r18": ("sabnn-r18", {}),
    "sabnn-r50": ("sabnn-r50", {}),
    "bnext-18-one": ("bnext-18", {}),
    # Zero padding down to 2x2 maps (64 -> 2x2), where LCE 0.16.0's own zero-padded bconv is
    # wrong and edgebnn's rewrite stands in (converters/rewrites.py).
    "bnext-18-zero": ("bnext-18", {"padding": "zero", "input_shape": (64, 64, 3)}),
    "equalbits-r20": ("equalbits-r20", {}),
    # The authors' structure: biases on binary convs, zero padding on 2x2 and 1x1 maps at 32x32.
    "equalbits-r18-authors": ("equalbits-r18", {"stem_prelu": True, "head_relu": False, "padding": "zero",
                                                "conv_bias": True, "shared_prelu": True}),
    "tang2017-k2": ("tang2017-compact", {"terms": 2}),
}


@pytest.fixture(scope="session")
def family_conversions():
    """Converted logits models, made on first use and shared by the session."""
    from edgebnn.converters.lce import convert
    from edgebnn.converters.report import conversion_report
    from edgebnn.data.samples import random_inputs

    cache = {}

    def get(case):
        if case not in cache:
            name, options = FAMILY_CASES[case]
            model = _logits(_randomize(_small(name, **options)))
            flatbuffer = convert(model)
            cache[case] = (model, conversion_report(model, flatbuffer, parity_inputs=random_inputs(model.input_shape[1:], n=2)))
        return cache[case]

    return get


# One case per family runs in CI (30 to 70 s each); the deeper ones are slow.
SLOW_CASES = {"sabnn-r50", "bnext-18-zero"}


@pytest.mark.parametrize(
    "case", [pytest.param(c, marks=pytest.mark.slow if c in SLOW_CASES else ()) for c in FAMILY_CASES]
)
def test_every_binary_conv_of_a_paper_model_becomes_lce_bconv2d(case, family_conversions):
    model, report = family_conversions(case)
    terms = FAMILY_CASES[case][1].get("terms", 1)
    assert report["binary_layers"] > 0
    assert report["bconv"] == terms * report["binary_layers"], report["op_counts"]
    assert report["explain"]["float_binary_layers"] == [] and report["bconv_coverage"] == 1.0
    assert report["parity"]["max_rel_error"] < 1e-3, report["parity"]
    assert report["op_counts"]["LceQuantize"] >= 1
