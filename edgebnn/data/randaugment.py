"""RandAugment (Cubuk et al., 2020) on one image, with stateless random ops.

BNext trains with "RandAugment(7, 0.5)", which we read as timm's ``rand-m7-mstd0.5``: ``ops``
(2) operations drawn uniformly per image, each applied with probability 0.5, at a magnitude
drawn from N(7, 0.5) clipped to [0, 10] (10 = the strongest setting below). The operation set
is timm's minus Equalize; every operation works on float pixels in 0..255 and keeps the shape.
"""

from __future__ import annotations

import math

import tensorflow as tf

MAX_MAGNITUDE = 10.0


def _transform(image, matrix):
    """Apply a 3x3 projective ``matrix`` (output -> input coordinates), filling with gray."""
    flat = tf.reshape(matrix, [9])[:8][None, :]
    out = tf.raw_ops.ImageProjectiveTransformV3(
        images=image[None], transforms=tf.cast(flat, tf.float32), output_shape=tf.shape(image)[:2],
        fill_value=128.0, interpolation="BILINEAR", fill_mode="CONSTANT",
    )
    return out[0]


def _about_center(image, matrix):
    h, w = tf.cast(tf.shape(image)[0], tf.float32), tf.cast(tf.shape(image)[1], tf.float32)
    to = tf.convert_to_tensor([[1.0, 0.0, w / 2], [0.0, 1.0, h / 2], [0.0, 0.0, 1.0]])
    back = tf.convert_to_tensor([[1.0, 0.0, -w / 2], [0.0, 1.0, -h / 2], [0.0, 0.0, 1.0]])
    return _transform(image, to @ matrix @ back)


def _blend(a, b, factor):
    return tf.clip_by_value(b + factor * (a - b), 0.0, 255.0)


def _ops(image, level, sign):
    """The operation list: each a thunk on ``image`` at ``level`` in [0, 1] with ``sign`` +-1."""
    gray = tf.image.rgb_to_grayscale(image)
    enhance = 1.0 + sign * 0.9 * level  # timm: factor 1 +- 0.9 at full magnitude
    shear = sign * 0.3 * level
    angle = sign * 30.0 * level * math.pi / 180.0
    h, w = tf.cast(tf.shape(image)[0], tf.float32), tf.cast(tf.shape(image)[1], tf.float32)
    dx, dy = sign * 0.45 * level * w, sign * 0.45 * level * h

    def autocontrast():
        lo = tf.reduce_min(image, axis=[0, 1], keepdims=True)
        hi = tf.reduce_max(image, axis=[0, 1], keepdims=True)
        return tf.where(hi > lo, (image - lo) * 255.0 / tf.maximum(hi - lo, 1e-3), image)

    def sharpness():
        kernel = tf.constant([[1, 1, 1], [1, 5, 1], [1, 1, 1]], tf.float32) / 13.0
        kernel = tf.tile(kernel[:, :, None, None], [1, 1, 3, 1])
        blurred = tf.nn.depthwise_conv2d(image[None], kernel, [1, 1, 1, 1], "SAME")[0]
        return _blend(image, blurred, enhance)

    def posterize():
        bits = tf.cast(tf.round(8.0 - 4.0 * level), tf.int32)  # 8 -> 4 bits
        shift = tf.cast(8 - bits, tf.uint8)
        pixels = tf.cast(tf.clip_by_value(image, 0, 255), tf.uint8)
        return tf.cast(tf.bitwise.left_shift(tf.bitwise.right_shift(pixels, shift), shift), tf.float32)

    return [
        lambda: image,
        autocontrast,
        lambda: _about_center(image, [[tf.cos(angle), -tf.sin(angle), 0.0], [tf.sin(angle), tf.cos(angle), 0.0], [0.0, 0.0, 1.0]]),
        lambda: tf.where(image < 256.0 - 256.0 * level, image, 255.0 - image),  # solarize
        lambda: _blend(image, tf.tile(gray, [1, 1, 3]), enhance),  # color
        posterize,
        lambda: _blend(image, tf.reduce_mean(gray), enhance),  # contrast
        lambda: _blend(image, tf.zeros_like(image), enhance),  # brightness
        sharpness,
        lambda: _transform(image, [[1.0, shear, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]),  # shear x
        lambda: _transform(image, [[1.0, 0.0, 0.0], [shear, 1.0, 0.0], [0.0, 0.0, 1.0]]),  # shear y
        lambda: _transform(image, [[1.0, 0.0, dx], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]),  # translate x
        lambda: _transform(image, [[1.0, 0.0, 0.0], [0.0, 1.0, dy], [0.0, 0.0, 1.0]]),  # translate y
    ]


NUM_OPS = 13


def randaugment(image, seed, *, ops: int = 2, magnitude: float = 9.0, magnitude_std: float = 0.0,
                prob: float = 0.5):
    """Apply ``ops`` random operations to ``image`` (H, W, 3 float pixels 0..255).

    Args:
        image: one image.
        seed: a stateless seed, shape [2].
        ops: how many operations per image.
        magnitude: mean magnitude, 0..10.
        magnitude_std: standard deviation of the per-operation magnitude.
        prob: probability of applying each drawn operation.
    """
    image = tf.cast(image, tf.float32)
    seeds = tf.random.experimental.stateless_split(seed, num=4 * ops)
    for i in range(ops):
        s = seeds[4 * i: 4 * i + 4]
        which = tf.random.stateless_uniform([], s[0], 0, NUM_OPS, dtype=tf.int32)
        level = magnitude + magnitude_std * tf.random.stateless_normal([], s[1])
        level = tf.clip_by_value(level, 0.0, MAX_MAGNITUDE) / MAX_MAGNITUDE
        sign = tf.where(tf.random.stateless_uniform([], s[2]) < 0.5, -1.0, 1.0)
        apply = tf.random.stateless_uniform([], s[3]) < prob
        shape = image.shape
        out = tf.switch_case(which, _ops(image, level, sign))
        image = tf.where(apply, out, image)
        image.set_shape(shape)
    return image
