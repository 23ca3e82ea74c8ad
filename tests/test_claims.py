"""The ablation switches of the paper models (issue 14): each changes what it claims to change.

- SA-BNN ``state_aware`` (the latent gradient) and ``tied`` (one scale for both states);
- Equal Bits ``quantizer`` (``bi-half`` vs the ``sign`` baseline: the weight histogram);
- Tang 2017 ``regularizer`` (the bipolar loss term, also the recipe's);

and the ablated models save, load and convert like the defaults.
"""

import numpy as np
import pytest
import tensorflow as tf

import edgebnn.models  # noqa: F401  (registers the families and the custom objects)
from edgebnn.cli import cli
from edgebnn.errors import UsageError
from edgebnn.models.quantizers import BiHalf, ScaledSign, StateAwareSign, scaled_sign
from edgebnn.registry import create_model, get_card, model_options

# two output channels (the last axis); |w| > 1 at (1, 0) and (1, 1): outside the STE window
W = np.array([[0.5, -0.3], [-2.0, 1.5], [0.0, -0.9]], "float32")
DY = np.array([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]], "float32")
A_PLUS, A_MINUS = np.array([2.0, 3.0], "float32"), np.array([0.5, 1.0], "float32")
WINDOW = (np.abs(W) <= 1).astype("float32")


def _quantizer_grads(quantizer):
    """Output and the gradients to the latent kernel and a+ of ``quantizer`` with a+ = A_PLUS, a- = A_MINUS."""
    w = tf.Variable(W)
    quantizer(w)  # builds the scales
    quantizer.a_plus.assign(A_PLUS)
    if not quantizer.tied:
        quantizer.a_minus.assign(A_MINUS)
    with tf.GradientTape() as tape:
        out = quantizer(w)
    dw, da_plus = tape.gradient(out, [w, quantizer.a_plus], output_gradients=tf.constant(DY))
    return out.numpy(), dw.numpy(), da_plus.numpy()


def _small(name, **options):
    import tf_keras as keras

    keras.utils.set_random_seed(0)
    return create_model(name, input_shape=(32, 32, 3), num_classes=10, width=0.25, **options)


def _kernel_quantizers(model):
    return [layer.kernel_quantizer for layer in model.layers if getattr(layer, "kernel_quantizer", None) is not None]


# --- (a) SA-BNN: the gradient to the latent weights, and the tied scales -------------------


def test_state_aware_latent_gradient_is_the_scale_of_each_state():
    out, dw, _ = _quantizer_grads(StateAwareSign())
    np.testing.assert_allclose(out, np.where(W >= 0, A_PLUS, -A_MINUS))
    np.testing.assert_allclose(dw, np.where(W >= 0, A_PLUS, A_MINUS) * DY * WINDOW)


def test_state_aware_false_is_a_plain_clipped_ste_with_the_same_forward():
    out, dw, da_plus = _quantizer_grads(StateAwareSign(state_aware=False))
    np.testing.assert_allclose(out, np.where(W >= 0, A_PLUS, -A_MINUS))  # same learnable scales forward
    np.testing.assert_allclose(dw, DY * WINDOW)  # g * 1{|w| <= 1}, no per-state coefficient
    np.testing.assert_allclose(da_plus, [1.0 + 5.0, 4.0])  # the scales still learn


def test_tied_has_one_scale_variable_for_both_states():
    quantizer = StateAwareSign(tied=True)
    out, dw, da = _quantizer_grads(quantizer)
    assert quantizer.a_minus is quantizer.a_plus and len(quantizer.weights) == 1
    np.testing.assert_allclose(out, np.where(W >= 0, A_PLUS, -A_PLUS))  # a * sign(w)
    np.testing.assert_allclose(dw, A_PLUS * DY * WINDOW)
    np.testing.assert_allclose(da, (np.where(W >= 0, 1.0, -1.0) * DY).sum(axis=0))  # sum of dy * sign(w)
    quantizer.a_minus.assign([0.1, 0.2])  # assigning either assigns both
    np.testing.assert_array_equal(quantizer.a_plus.numpy(), quantizer.a_minus.numpy())


def test_sabnn_builder_passes_the_switches_to_every_binary_conv():
    card = get_card("sabnn-r18")
    assert {"state_aware": True, "tied": False}.items() <= card.options().items()
    assert model_options(card, model_args=["state_aware=false", "tied=yes"]) == {"state_aware": False, "tied": True}
    quantizers = _kernel_quantizers(_small("sabnn-r18", state_aware=False, tied=True))
    assert quantizers and all(not q.state_aware and q.tied and q.a_minus is q.a_plus for q in quantizers)
    assert all(q.state_aware and not q.tied for q in _kernel_quantizers(_small("sabnn-r18")))


# --- (b) Equal Bits: the weight histogram -------------------------------------------------


def test_bi_half_splits_every_filter_but_sign_follows_a_skewed_latent():
    rng = np.random.default_rng(0)
    latent = (rng.normal(size=(3, 3, 8, 4)) + 0.8).astype("float32")  # about 80 % positive
    n = 3 * 3 * 8
    s = np.sqrt(2 / n)
    half = BiHalf()(latent).numpy().reshape(n, 4)
    sign = ScaledSign()(latent).numpy().reshape(n, 4)
    assert ((half < 0).sum(axis=0) == n // 2).all()
    np.testing.assert_array_equal((sign < 0).sum(axis=0), (latent.reshape(n, 4) < 0).sum(axis=0))
    assert ((sign < 0).mean(axis=0) < 0.35).all()  # skewed, as the latent is
    np.testing.assert_allclose(np.abs(sign), s, rtol=1e-6)  # the same fixed Kaiming scale
    np.testing.assert_allclose(np.abs(half), s, rtol=1e-6)


def test_sign_ablation_has_the_same_identity_ste():
    w = tf.Variable(W)
    with tf.GradientTape() as tape:
        out = ScaledSign()(w)
    np.testing.assert_allclose(tape.gradient(out, w, output_gradients=tf.constant(DY)).numpy(), DY)
    np.testing.assert_allclose(out.numpy(), scaled_sign(W).numpy())
    assert ScaledSign.precision == 1


def test_equalbits_quantizer_option_and_its_unknown_values():
    card = get_card("equalbits-r20")
    assert card.options()["quantizer"] == "bi-half"
    kinds = {type(q).__name__ for q in _kernel_quantizers(_small("equalbits-r20", quantizer="sign"))}
    assert kinds == {"ScaledSign"}
    assert {type(q).__name__ for q in _kernel_quantizers(_small("equalbits-r20"))} == {"BiHalf"}
    with pytest.raises(UsageError, match="bi-half, sign"):
        create_model("equalbits-r18", input_shape=(32, 32, 3), num_classes=10, width=0.25, quantizer="xnor")
    with pytest.raises(UsageError, match="ratio"):
        create_model("equalbits-r20", width=0.25, quantizer="sign", ratio=0.5)


# --- (c) Tang 2017: the bipolar loss term, with and without the recipe's ------------------


def _bipolar(model, lam):
    return sum(lam * float(tf.reduce_sum(1.0 - tf.square(layer.kernel)))
               for layer in model.layers if type(layer).__name__ == "MultiBinaryConv2D")


def _fit_loss(model, x, y):
    """The loss one fit() step reports, and its cross-entropy part (lr 0: the weights do not move)."""
    import tf_keras as keras

    model.compile(optimizer=keras.optimizers.SGD(0.0), loss=keras.losses.SparseCategoricalCrossentropy())
    crossentropy = float(keras.losses.SparseCategoricalCrossentropy()(y, model(x, training=True)))
    loss = model.fit(x, y, batch_size=len(x), epochs=1, verbose=0, shuffle=False).history["loss"][0]
    return loss, crossentropy


@pytest.fixture(scope="module")
def batch():
    rng = np.random.default_rng(0)
    return rng.uniform(-1, 1, (4, 32, 32, 3)).astype("float32"), rng.integers(0, 10, 4)


def test_tang_regularizer_is_the_bipolar_term_in_the_fit_loss(batch):
    model = _small("tang2017-compact", lam=1e-3)
    assert len(model.losses) == 7  # one per binary layer
    expected = _bipolar(model, 1e-3)
    assert float(tf.add_n(model.losses)) == pytest.approx(expected, rel=1e-5)
    loss, crossentropy = _fit_loss(model, *batch)
    assert expected > 0.01 and loss == pytest.approx(crossentropy + expected, rel=1e-4)


def _add_recipe_bipolar(model, recipe="tang2017", lam=None):
    """What ``edgebnn train`` does with the recipe's ``bipolar_lambda`` (see ``training.steps.build``)."""
    from edgebnn.models.introspection import binary_kernel_layers
    from edgebnn.training.optim import add_bipolar
    from edgebnn.training.recipes import get_recipe

    lam = lam or get_recipe(recipe).extra["bipolar_lambda"]
    add_bipolar(model, {name: layer.kernel for name, layer in binary_kernel_layers(model).items()}, lam)


def test_tang_without_regularizer_has_no_bipolar_term_even_with_the_recipe_lambda(batch):
    model = _small("tang2017-compact", regularizer=False)
    convs = [layer for layer in model.layers if type(layer).__name__ == "MultiBinaryConv2D"]
    assert len(convs) == 7 and all(c.kernel_regularizer is None and not c.recipe_bipolar for c in convs)
    assert model.losses == []
    _add_recipe_bipolar(model)  # the recipe's 5e-7
    _add_recipe_bipolar(model, lam=1e-3)  # and a lambda large enough to show in the loss
    assert model.losses == []
    loss, crossentropy = _fit_loss(model, *batch)
    assert loss == pytest.approx(crossentropy, rel=1e-5)


def test_recipe_bipolar_still_reaches_kernels_without_a_regularizer_that_did_not_opt_out():
    import tf_keras as keras

    model = _small("tang2017-compact", regularizer=False)
    for layer in model.layers:
        if type(layer).__name__ == "MultiBinaryConv2D":
            layer.recipe_bipolar = True  # what a model without the ablation's mark looks like
    _add_recipe_bipolar(model, lam=1e-3)
    assert len(model.losses) == 7
    assert float(tf.add_n(model.losses)) == pytest.approx(_bipolar(model, 1e-3), rel=1e-5)
    keras.backend.clear_session()


# --- (d) the ablated models save, load and convert like the defaults ----------------------


ABLATIONS = {
    "sabnn-ste-tied": ("sabnn-r18", {"state_aware": False, "tied": True}),
    "sabnn-ste": ("sabnn-r18", {"state_aware": False}),
    "equalbits-sign": ("equalbits-r20", {"quantizer": "sign"}),
    "tang-noreg": ("tang2017-compact", {"regularizer": False}),
}


def _randomize_scales(model, seed=0):
    rng = np.random.default_rng(seed)
    for q in _kernel_quantizers(model):
        if hasattr(q, "a_plus"):
            q.a_plus.assign(rng.uniform(0.5, 1.5, q.a_plus.shape).astype("float32"))
            if q.a_minus is not q.a_plus:
                q.a_minus.assign(rng.uniform(0.5, 1.5, q.a_minus.shape).astype("float32"))
    return model


@pytest.mark.parametrize("case", list(ABLATIONS))
def test_ablated_models_save_and_load_with_their_switches(case, tmp_path):
    import tf_keras as keras

    name, options = ABLATIONS[case]
    model = _randomize_scales(_small(name, **options))
    model.save(tmp_path / "model.keras")
    edgebnn.models.register_custom_objects()
    loaded = keras.models.load_model(tmp_path / "model.keras", compile=False)
    x = np.random.default_rng(1).uniform(-1, 1, (2, 32, 32, 3)).astype("float32")
    np.testing.assert_allclose(loaded(x, training=False).numpy(), model(x, training=False).numpy(), rtol=1e-5, atol=1e-6)
    before = [q.get_config() for q in _kernel_quantizers(model)]
    assert [q.get_config() for q in _kernel_quantizers(loaded)] == before
    if name == "sabnn-r18" and options.get("tied"):
        assert all(q.a_minus is q.a_plus for q in _kernel_quantizers(loaded))
    if name == "tang2017-compact":
        convs = [layer for layer in loaded.layers if type(layer).__name__ == "MultiBinaryConv2D"]
        assert loaded.losses == [] and convs and not any(c.recipe_bipolar for c in convs)
    keras.backend.clear_session()


def _convert(model):
    import tf_keras as keras

    from edgebnn.converters.lce import convert
    from edgebnn.converters.report import conversion_report
    from edgebnn.data.samples import random_inputs

    logits = keras.Model(model.input, model.layers[-1].input)  # parity on logits, not saturated softmax
    return conversion_report(logits, convert(logits), parity_inputs=random_inputs((32, 32, 3), n=2))


@pytest.mark.parametrize("case", [
    "sabnn-ste-tied",
    pytest.param("sabnn-ste", marks=pytest.mark.slow),
    "equalbits-sign",
])
def test_ablated_models_convert_with_every_binary_conv_as_lce_bconv2d(case):
    import tf_keras as keras

    name, options = ABLATIONS[case]
    report = _convert(_randomize_scales(_small(name, **options)))
    assert report["binary_layers"] > 0 and report["bconv"] == report["binary_layers"], report["op_counts"]
    assert report["explain"]["float_binary_layers"] == [] and report["bconv_coverage"] == 1.0
    assert report["parity"]["max_rel_error"] < 1e-3, report["parity"]
    keras.backend.clear_session()


def test_cli_converts_the_ablated_sabnn(tmp_path, cli_runner):
    from edgebnn.run.rundir import RunDir

    out = tmp_path / "ste"
    result = cli_runner.invoke(cli, ["convert", "sabnn-r18", "--input-size", "32", "--width", "0.25",
                                     "--model-arg", "state_aware=false", "--out", str(out)])
    assert result.exit_code == 0, result.output
    manifest = RunDir(out).manifest
    assert manifest["model_options"] == {"width": 0.25, "state_aware": False}
    conversion = manifest["conversion"]
    assert conversion["binary_layers"] > 0 and conversion["bconv"] == conversion["binary_layers"]
