"""The paper quantizers, registered with larq and Keras so that saved models load again.

Every formula of a paper quantizer lives here once, so that an interpretation marked
**unconfirmed** in ``papers.md`` can be corrected in one place:

- :class:`StateAwareSign` -- SA-BNN (Liu et al., AAAI 2021): {+a+, -a-} per output channel
  with the state-aware gradient.
- :class:`BiHalf` -- Equal Bits (Li et al., AAAI 2022): exactly half of each output filter at
  -1, identity straight-through, fixed Kaiming scale; ``ratio`` gives the ternary variant;
  :class:`ScaledSign` is its sign ablation (same scale and STE, no 50/50 split).
- :class:`BNextSign` -- BNext (Guo et al., TMLR 2023): sign with an STE clipped at 1.5.
- :class:`BipolarRegularizer` -- Tang et al. (AAAI 2017): lambda * sum(1 - w^2).
- :func:`residual_binarizations` and :class:`MultiBinaryConv2D` -- Tang et al.'s multiple
  binarizations of the activations, x ~ sum_k a_k * sign(r_k).

Every 1-bit quantizer has ``precision = 1``, so larq's profiler and edgebnn's conversion
report count its layers as binary. The kernels of :class:`StateAwareSign` and
:class:`BiHalf` are not LCE's +-s per channel as trained; ``edgebnn.converters.rewrites``
rewrites them before conversion.
"""

from __future__ import annotations

import larq as lq
import tensorflow as tf
import tf_keras as keras

from edgebnn.errors import UsageError

register = lq.utils.register_keras_custom_object


def _filters_last(w):
    """``w`` as a (fan_in, filters) matrix: one column per output filter (Keras kernels)."""
    return tf.reshape(w, (-1, tf.shape(w)[-1]))


@register
class StateAwareSign(lq.quantizers.Quantizer):
    r"""SA-BNN's state-aware weight quantizer, one pair of learnable scales per output channel.

    Forward: q(w) = +a+ where w >= 0, -a- where w < 0 (a+ and a- per output channel, >= 0).
    Backward to the latent weight (the state-aware gradient): dL/dw = a+ * dL/dq where
    w >= 0 and a- * dL/dq where w < 0, times the window 1{|w| <= clip_value};
    dL/da+ = sum over w >= 0 of dL/dq, dL/da- = -sum over w < 0 of dL/dq.
    With a+ = a- this is an ordinary scaled sign with a clipped STE.

    Interpretation (papers.md §1, the exact equation is unconfirmed): the two states' gradient
    coefficients are the learned scales themselves.

    Ablations (SA-BNN's claim is about the backward pass and the two states):

    - ``state_aware=False``: the same forward with the same learnable a+ and a-, but the latent
      gradient is an ordinary clipped STE, dL/dw = dL/dq * 1{|w| <= clip_value} (no per-state
      coefficient); dL/da+ and dL/da- are unchanged.
    - ``tied=True``: one scale a per output channel, a+ = a- = a (``a_minus`` *is* ``a_plus``,
      one variable), so the kernel is an ordinary scaled sign, a * sign(w); with
      ``state_aware=True`` its latent gradient is a * dL/dq inside the window.

    Args:
        clip_value: the STE window on the latent weights.
        initial_scale: the starting value of a+ and a-.
        state_aware: the state-aware latent gradient (False: plain clipped STE).
        tied: one shared scale for both states.
    """

    precision = 1

    def __init__(self, clip_value: float = 1.0, initial_scale: float = 1.0, state_aware: bool = True,
                 tied: bool = False, **kwargs):
        self.clip_value = clip_value
        self.initial_scale = initial_scale
        self.state_aware = bool(state_aware)
        self.tied = bool(tied)
        super().__init__(**kwargs)

    def build(self, input_shape):
        channels = int(input_shape[-1])
        init = keras.initializers.Constant(self.initial_scale)
        nonneg = keras.constraints.NonNeg()
        self.a_plus = self.add_weight("a_plus", (channels,), initializer=init, constraint=nonneg)
        if self.tied:  # one variable for both states: the rewrite sees a+ - a- = 0
            self.a_minus = self.a_plus
        else:
            self.a_minus = self.add_weight("a_minus", (channels,), initializer=init, constraint=nonneg)
        super().build(input_shape)

    def call(self, inputs):
        return state_aware_sign(inputs, self.a_plus, self.a_minus, clip_value=self.clip_value,
                                state_aware=self.state_aware)

    def get_config(self):
        return {**super().get_config(), "clip_value": self.clip_value, "initial_scale": self.initial_scale,
                "state_aware": self.state_aware, "tied": self.tied}


def state_aware_sign(w, a_plus, a_minus, *, clip_value: float = 1.0, state_aware: bool = True):
    """The forward and state-aware backward of :class:`StateAwareSign` (see there).

    ``state_aware=False``: the same forward, the latent gradient is dL/dq * 1{|w| <= clip_value}.
    """
    w = tf.convert_to_tensor(w)
    positive = w >= 0
    q = tf.where(positive, a_plus, -a_minus)  # gradients to a+ and a- follow from tf.where
    window = tf.cast(tf.abs(w) <= clip_value, w.dtype)
    if state_aware:
        coefficient = tf.stop_gradient(tf.where(positive, a_plus, a_minus) * window)
    else:
        coefficient = window
    # Adds exactly zero forward; backward it gives dL/dw = coefficient * dL/dq.
    return q + (coefficient * w - tf.stop_gradient(coefficient * w))


def asymmetric_parts(a_plus, a_minus):
    """The kernel {+a+, -a-} as m * sign(w) + b: returns (m, b) per output channel."""
    return (a_plus + a_minus) / 2, (a_plus - a_minus) / 2


@register
class BiHalf(lq.quantizers.Quantizer):
    """Equal Bits' bi-half quantizer: exactly floor(n/2) of each output filter's n weights at -1.

    Per output filter (the last kernel axis) the n = c_in*k*k latent weights are ranked; the
    lowest floor(n/2) become -1 and the rest +1 (sign(w - median), ties broken by rank), times
    the fixed per-layer Kaiming scale sqrt(2 / n). Backward: identity straight-through.

    With ``ratio=k`` (the pruning variant) the lowest and highest floor(n*(1-k)/2) become -1 and
    +1 and the middle becomes 0: a ternary kernel, ``precision`` 2, which LCE keeps in float.

    Args:
        ratio: None for bi-half, or the fraction of zeros k in (0, 1) for the ternary variant.
    """

    def __init__(self, ratio: float | None = None, **kwargs):
        if ratio is not None and not 0.0 < ratio < 1.0:
            raise UsageError(f"BiHalf ratio must be in (0, 1), got {ratio!r}")
        self.ratio = ratio
        self.precision = 1 if ratio is None else 2
        super().__init__(**kwargs)

    def call(self, inputs):
        return inputs + tf.stop_gradient(bi_half(inputs, ratio=self.ratio) - inputs)

    def get_config(self):
        return {**super().get_config(), "ratio": self.ratio}


def bi_half(w, *, ratio: float | None = None):
    """The forward of :class:`BiHalf`: {-s, +s} (or {-s, 0, +s}) per output filter, s = sqrt(2/n)."""
    w = tf.convert_to_tensor(w)
    matrix = _filters_last(w)
    n = tf.shape(matrix)[0]
    # rank of each weight inside its filter; a stable sort breaks ties by position
    rank = tf.argsort(tf.argsort(matrix, axis=0, stable=True), axis=0, stable=True)
    if ratio is None:
        low, high = n // 2, n // 2
    else:
        low = tf.cast(tf.math.floor(tf.cast(n, tf.float32) * (1.0 - ratio) / 2), tf.int32)
        high = n - low
    ones = tf.ones_like(matrix)
    codes = tf.where(rank < low, -ones, tf.where(rank >= high, ones, tf.zeros_like(matrix)))
    scale = tf.sqrt(2.0 / tf.cast(n, w.dtype))
    return tf.reshape(codes * scale, tf.shape(w))


def scaled_sign(w):
    """Equal Bits' ``sign`` ablation: sign(w) (w = 0 -> +1) per weight, times the same fixed
    per-layer Kaiming scale sqrt(2 / n) as :func:`bi_half`, n = c_in*k*k (no 50/50 split)."""
    w = tf.convert_to_tensor(w)
    n = tf.shape(_filters_last(w))[0]
    scale = tf.sqrt(2.0 / tf.cast(n, w.dtype))
    return tf.where(w >= 0, scale, -scale)


@register
class ScaledSign(lq.quantizers.Quantizer):
    """Equal Bits' sign baseline: sign(w) * sqrt(2 / fan_in), identity straight-through.

    The ablation of :class:`BiHalf` (``quantizer="sign"`` of the ``equalbits-*`` builders): the
    same fixed scale and the same identity STE (no window), but the codes follow the latent
    signs instead of the 50/50 split, so the bit ratio of a filter is whatever training makes it.
    Already +-s per filter, so LCE takes it as it is once baked.
    """

    precision = 1

    def call(self, inputs):
        return inputs + tf.stop_gradient(scaled_sign(inputs) - inputs)


@register
class BNextSign(lq.quantizers.SteSign):
    """BNext's binarizer: sign forward, straight-through gradient inside [-1.5, 1.5].

    Used for activations and, with a 1.5 weight clip, for the (unscaled) weights.
    """

    def __init__(self, clip_value: float = 1.5, **kwargs):
        super().__init__(clip_value=clip_value, **kwargs)


@register
class BipolarRegularizer(keras.regularizers.Regularizer):
    """Tang et al.'s regularizer: lambda * sum(1 - w^2), pushing latent weights towards +-1.

    Meant for latent weights clipped to [-1, 1] (where it is non-negative); its gradient is
    -2 * lambda * w. Interpretation (papers.md §2): the form comes from secondary sources and
    is unconfirmed; lambda = 5e-7 is the paper's.
    """

    def __init__(self, lam: float = 5e-7):
        self.lam = float(lam)

    def __call__(self, w):
        return self.lam * tf.reduce_sum(1.0 - tf.square(w))

    def get_config(self):
        return {"lam": self.lam}


def residual_binarizations(x, terms: int):
    """Tang et al.'s multiple binarizations: x ~ sum_k a_k * sign(r_k).

    r_1 = x, a_k = mean|r_k| over each example's whole tensor, r_{k+1} = r_k - a_k*sign(r_k).

    Interpretation (papers.md §2, unconfirmed): one scale per activation tensor and example.

    Returns:
        A list of ``terms`` pairs (a_k, r_k); a_k has shape (batch, 1, ..., 1) and sign(r_k) is
        the k-th binary tensor (the binary conv applies the sign itself).
    """
    pairs = []
    r = tf.convert_to_tensor(x)
    axes = list(range(1, len(r.shape)))
    for _ in range(terms):
        a = tf.reduce_mean(tf.abs(r), axis=axes, keepdims=True)
        pairs.append((a, r))
        r = r - a * lq.math.sign(r)
    return pairs


@register
class MultiBinaryConv2D(lq.layers.QuantConv2D):
    """A binary convolution of ``terms`` binarizations of its input, summed: sum_k a_k*conv(sign(r_k)).

    The kernel is shared by the terms; in LCE each term becomes one LceQuantize + LceBconv2d
    branch, and the sum a few float adds. ``terms=1`` is a binary conv scaled by mean|x|.
    Use a sign ``input_quantizer`` (``ste_sign``).

    ``recipe_bipolar=False`` opts the kernel out of the recipe's bipolar term (the
    ``bipolar_lambda`` that ``edgebnn.training.optim.add_bipolar`` adds to kernels without a
    regularizer): Tang et al.'s ``regularizer=False`` ablation.
    """

    def __init__(self, *args, terms: int = 1, recipe_bipolar: bool = True, **kwargs):
        if terms < 1:
            raise UsageError(f"terms must be at least 1, got {terms!r}")
        self.terms = terms
        self.recipe_bipolar = bool(recipe_bipolar)
        super().__init__(*args, **kwargs)

    def call(self, inputs):
        outputs = None
        for a, r in residual_binarizations(inputs, self.terms):
            y = a * super().call(r)
            outputs = y if outputs is None else outputs + y
        return outputs

    def get_config(self):
        return {**super().get_config(), "terms": self.terms, "recipe_bipolar": self.recipe_bipolar}
