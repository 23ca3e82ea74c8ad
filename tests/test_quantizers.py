"""The paper quantizers against hand-computed values: forward, gradient, serialization."""

import numpy as np
import pytest
import tensorflow as tf

import edgebnn.models  # noqa: F401  (registers the custom objects)
from edgebnn.models.quantizers import (
    BiHalf,
    BipolarRegularizer,
    BNextSign,
    MultiBinaryConv2D,
    StateAwareSign,
    bi_half,
    residual_binarizations,
    state_aware_sign,
)


def _grads(fn, *tensors, upstream):
    variables = [tf.Variable(t, dtype=tf.float32) for t in tensors]
    with tf.GradientTape() as tape:
        out = fn(*variables)
    return out.numpy(), [g.numpy() for g in tape.gradient(out, variables, output_gradients=upstream)]


# SA-BNN: two output channels (the last axis); a+ = (2, 3), a- = (0.5, 1).
W = np.array([[0.5, -0.3], [-2.0, 1.5], [0.0, -0.9]], "float32")
A_PLUS, A_MINUS = np.array([2.0, 3.0], "float32"), np.array([0.5, 1.0], "float32")
DY = np.array([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]], "float32")


def test_state_aware_forward_uses_the_scale_of_each_state():
    q = state_aware_sign(W, A_PLUS, A_MINUS).numpy()
    np.testing.assert_allclose(q, [[2.0, -1.0], [-0.5, 3.0], [2.0, -1.0]])  # w = 0 is the + state


def test_state_aware_gradient_per_state():
    _, (dw, da_plus, da_minus) = _grads(state_aware_sign, W, A_PLUS, A_MINUS, upstream=DY)
    # + state: a+ * dy; - state: a- * dy; zero outside |w| <= 1 (w = -2.0 and 1.5)
    np.testing.assert_allclose(dw, [[2.0 * 1, 1.0 * 2], [0.0, 0.0], [2.0 * 5, 1.0 * 6]])
    np.testing.assert_allclose(da_plus, [1.0 + 5.0, 4.0])  # dy summed over w >= 0, per channel
    np.testing.assert_allclose(da_minus, [-3.0, -(2.0 + 6.0)])  # minus dy summed over w < 0


def test_state_aware_quantizer_builds_one_pair_of_scales_per_channel():
    q = StateAwareSign(initial_scale=0.7)
    out = q(tf.constant(W)).numpy()
    assert q.precision == 1
    assert q.a_plus.shape == (2,) and q.a_minus.shape == (2,)
    np.testing.assert_allclose(np.abs(out), 0.7)


def test_bi_half_hand_computed_filter():
    w = np.array([[3.0], [-1.0], [2.0], [0.5]], "float32")  # one filter, n = 4
    s = np.sqrt(2 / 4)
    np.testing.assert_allclose(bi_half(w).numpy()[:, 0], [s, -s, s, -s], rtol=1e-6)


@pytest.mark.parametrize("shape", [(3, 3, 5, 4), (2, 2, 2, 3), (1, 1, 7, 2)], ids=["odd-45", "even-8", "odd-7"])
def test_bi_half_exactly_half_minus_one_per_filter(shape):
    w = np.random.default_rng(0).normal(size=shape).astype("float32")
    n = int(np.prod(shape[:-1]))
    q = bi_half(w).numpy().reshape(n, shape[-1])
    s = np.sqrt(2 / n)
    np.testing.assert_allclose(np.abs(q), s, rtol=1e-6)
    assert ((q < 0).sum(axis=0) == n // 2).all()
    assert ((q > 0).sum(axis=0) == n - n // 2).all()


def test_bi_half_breaks_ties_by_rank():
    q = bi_half(np.zeros((3, 3, 5, 2), "float32")).numpy().reshape(45, 2)
    assert ((q < 0).sum(axis=0) == 22).all()


def test_bi_half_gradient_is_identity_without_window():
    w = np.array([[-3.0, 0.1], [2.0, -0.2], [0.5, 5.0]], "float32")
    _, (dw,) = _grads(BiHalf(), w, upstream=DY)
    np.testing.assert_allclose(dw, DY)


def test_bi_half_ratio_variant_is_ternary():
    w = np.arange(10, dtype="float32").reshape(10, 1)
    quantizer = BiHalf(ratio=0.5)
    q = quantizer(w).numpy()[:, 0] / np.sqrt(2 / 10)
    np.testing.assert_allclose(q, [-1, -1, 0, 0, 0, 0, 0, 0, 1, 1], atol=1e-6)
    assert quantizer.precision == 2 and BiHalf().precision == 1


def test_bnext_sign_clips_the_straight_through_gradient_at_1_5():
    x = np.array([-2.0, -1.4, 0.0, 1.2, 1.6], "float32")
    out, (dx,) = _grads(BNextSign(), x, upstream=np.ones(5, "float32"))
    np.testing.assert_array_equal(out, [-1, -1, 1, 1, 1])
    np.testing.assert_array_equal(dx, [0, 1, 1, 1, 0])


def test_bipolar_regularizer_value_and_gradient():
    w = np.array([0.5, -1.0, 0.2], "float32")
    value, (dw,) = _grads(BipolarRegularizer(0.1), w, upstream=tf.constant(1.0))
    assert value == pytest.approx(0.1 * (0.75 + 0.0 + 0.96))
    np.testing.assert_allclose(dw, [-0.1, 0.2, -0.04], rtol=1e-6)  # -2 * lambda * w


def test_residual_binarizations_hand_computed():
    x = np.array([[1.0, -3.0, 0.5, 1.5]], "float32")
    pairs = residual_binarizations(x, 3)
    np.testing.assert_allclose([float(a.numpy().squeeze()) for a, _ in pairs], [1.5, 0.75, 0.5])
    np.testing.assert_allclose(pairs[1][1].numpy(), [[-0.5, -1.5, -1.0, 0.0]])
    np.testing.assert_allclose(pairs[2][1].numpy(), [[0.25, -0.75, -0.25, -0.75]])


def test_multi_binary_conv_sums_the_terms():
    x = np.array([1.0, -3.0, 0.5, 1.5], "float32").reshape(1, 1, 4, 1)
    conv = MultiBinaryConv2D(1, 1, terms=2, input_quantizer="ste_sign", kernel_quantizer="ste_sign",
                             kernel_initializer="ones", kernel_constraint="weight_clip", use_bias=False)
    # identity kernel: the output is the two-term approximation 1.5*sign(x) + 0.75*sign(r2)
    np.testing.assert_allclose(conv(x).numpy().ravel(), [0.75, -2.25, 0.75, 2.25])


@pytest.mark.parametrize(
    "quantizer", [StateAwareSign(clip_value=1.2), BiHalf(ratio=0.3), BNextSign(), BipolarRegularizer(2e-7)],
    ids=lambda q: type(q).__name__,
)
def test_custom_objects_round_trip_through_keras_serialization(quantizer):
    import tf_keras as keras

    restored = keras.utils.deserialize_keras_object(keras.utils.serialize_keras_object(quantizer))
    assert type(restored) is type(quantizer)
    assert restored.get_config() == quantizer.get_config()
