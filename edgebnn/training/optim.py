"""What a training step is made of: the strategy, the learning-rate schedule, the optimizer
(with a second weight-decay group for binary latent kernels), the loss, the regularizers."""

from __future__ import annotations

import functools
import os
from collections.abc import Sequence
from typing import Any

import tensorflow as tf
import tf_keras as keras

from edgebnn.errors import UsageError
from edgebnn.models.introspection import flat_layers


def make_strategy(kind: str = "auto"):
    """The ``tf.distribute`` strategy for ``kind``.

    ``auto`` mirrors over the local GPUs when there are several, else the default strategy;
    ``mirrored`` forces MirroredStrategy; ``multiworker`` reads the cluster from ``TF_CONFIG``.
    """
    if kind == "multiworker":
        if "TF_CONFIG" not in os.environ:
            raise UsageError("--strategy multiworker needs TF_CONFIG (cluster and task): see README, Training")
        return tf.distribute.MultiWorkerMirroredStrategy()
    if kind == "mirrored" or (kind == "auto" and len(tf.config.list_logical_devices("GPU")) > 1):
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()


def learning_rate(recipe, steps_per_epoch: int):
    """The recipe's schedule as a Keras LearningRateSchedule (per step), or a float.

    A ``plateau`` schedule is a float that :class:`edgebnn.callbacks.PlateauLR` lowers.
    """
    total = recipe.epochs * steps_per_epoch
    warmup = min(recipe.warmup_epochs, recipe.epochs - 1) * steps_per_epoch
    if recipe.schedule == "step":
        boundaries = [m * steps_per_epoch for m in recipe.milestones]
        values = [recipe.lr * recipe.gamma**i for i in range(len(boundaries) + 1)]
        return keras.optimizers.schedules.PiecewiseConstantDecay(boundaries, values)
    if recipe.schedule == "cosine":
        return keras.optimizers.schedules.CosineDecay(
            recipe.lr if not warmup else 0.0,
            decay_steps=max(1, total - warmup),
            warmup_target=recipe.lr if warmup else None,
            warmup_steps=warmup,
        )
    return recipe.lr


def _grouped(cls):
    """``cls`` with a second weight-decay value for the binary layers' latent kernels."""

    class Grouped(cls):
        def __init__(self, *args, binary_weight_decay=None, binary_names=(), **kwargs):
            super().__init__(*args, **kwargs)
            self.binary_weight_decay = binary_weight_decay
            self.binary_names = frozenset(binary_names)

        def _apply_weight_decay(self, variables):
            if self.binary_weight_decay is None:
                return super()._apply_weight_decay(variables)
            binary = [v for v in variables if v.name in self.binary_names]
            super()._apply_weight_decay([v for v in variables if v.name not in self.binary_names])
            decay, self.weight_decay = self.weight_decay, self.binary_weight_decay
            try:  # during tracing: the value is captured as a constant
                super()._apply_weight_decay(binary)
            finally:
                self.weight_decay = decay

    Grouped.__name__ = f"Grouped{cls.__name__}"
    return Grouped


def make_optimizer(recipe, steps_per_epoch: int, *, binary_kernels: Sequence = ()):
    """The recipe's optimizer; weight decay is decoupled, in two groups when the recipe says so."""
    lr = learning_rate(recipe, steps_per_epoch)
    common = dict(weight_decay=recipe.weight_decay or None, global_clipnorm=recipe.clip_norm)
    if recipe.weight_decay_binary is not None:
        common.update(binary_weight_decay=recipe.weight_decay_binary, binary_names=[v.name for v in binary_kernels])
    if recipe.optimizer == "sgd":
        cls, args = keras.optimizers.SGD, dict(momentum=recipe.momentum, nesterov=recipe.nesterov)
    elif recipe.optimizer == "adamw":
        cls, args = keras.optimizers.AdamW, dict(beta_1=recipe.momentum)
        common["weight_decay"] = recipe.weight_decay  # AdamW needs a number
    else:
        cls, args = keras.optimizers.Adam, dict(beta_1=recipe.momentum)
    if recipe.weight_decay_binary is not None:
        if not common["weight_decay"]:
            common["weight_decay"] = 0.0
        cls = _grouped(cls)
    return cls(lr, **args, **common)


@functools.cache
def _smoothed_crossentropy():
    """The loss class (defined on first use: TensorFlow is imported lazily)."""
    @keras.saving.register_keras_serializable(package="edgebnn")
    class SmoothedSparseCrossentropy(keras.losses.Loss):
        """Cross-entropy with integer labels and label smoothing (Keras' sparse loss has none)."""

        def __init__(self, label_smoothing: float = 0.0, name: str = "smoothed_sparse_crossentropy", **kwargs):
            super().__init__(name=name, **kwargs)
            self.label_smoothing = float(label_smoothing)

        def call(self, y_true, y_pred):
            classes = tf.shape(y_pred)[-1]
            labels = tf.one_hot(tf.cast(tf.reshape(y_true, [-1]), tf.int32), classes, dtype=y_pred.dtype)
            return keras.losses.categorical_crossentropy(labels, y_pred, label_smoothing=self.label_smoothing)

        def get_config(self):
            return {**super().get_config(), "label_smoothing": self.label_smoothing}

    return SmoothedSparseCrossentropy


def make_loss(label_smoothing: float = 0.0):
    """Cross-entropy of the model's probabilities with the integer labels, smoothed as the recipe says."""
    if not label_smoothing:
        return keras.losses.SparseCategoricalCrossentropy()
    return _smoothed_crossentropy()(label_smoothing)


def compile_model(model, recipe, optimizer, *, num_classes: int) -> None:
    """Compile ``model`` (the student or the distiller) with the recipe's loss and the run's metrics."""
    metrics = [keras.metrics.SparseCategoricalAccuracy(name="accuracy")]
    if num_classes > 5:
        metrics.append(keras.metrics.SparseTopKCategoricalAccuracy(5, name="top5"))
    model.compile(optimizer=optimizer, loss=make_loss(recipe.label_smoothing), metrics=metrics)


def add_bipolar(model, kernels: dict[str, Any], lam: float) -> None:
    """Tang et al.'s regularizer lambda * sum(1 - w^2), for kernels that carry no regularizer.

    A layer with ``recipe_bipolar = False`` (Tang's ``regularizer=False`` ablation) opts out.
    """
    layers = {layer.name: layer for layer in flat_layers(model)}
    for name, kernel in kernels.items():
        layer = layers[name]
        if getattr(layer, "kernel_regularizer", None) is None and getattr(layer, "recipe_bipolar", True):
            model.add_loss(lambda k=kernel: lam * tf.reduce_sum(1.0 - tf.square(k)))
