"""Knowledge distillation as BNext trains (Guo et al., TMLR 2023, papers.md section 3).

Teachers are given in order: ``[assistant_1, ..., assistant_k, main]``. The epochs are split
into ``k`` equal rounds; in round ``r`` the student learns from ``[assistant_r, main]`` (one
teacher alone: every epoch from it). For each sample the teachers are weighted by how well they
agree with the student: ``w = softmax over teachers of (-CE(teacher, student))``, so the teacher
closest to the student counts most (interpretation of the paper's "confidence-aware" weighting;
the weights carry no gradient). The loss is
``(1 - alpha) * CE(labels, student) + alpha * T^2 * sum_t w_t * KL(teacher_t^T || student^T)``,
plus the student's own regularization losses (Tang et al.'s bipolar regularizer, say) in full,
whatever ``alpha``.

Teachers see the student's input (resized when their input size differs), so they should be
trained with the same normalization. Outputs may be probabilities or logits (detected).
"""

from __future__ import annotations

from pathlib import Path

import tensorflow as tf
import tf_keras as keras

from edgebnn.errors import UsageError
from edgebnn.models.files import load_keras_file
from edgebnn.run.rundir import RunDir
from edgebnn.run.trust import Trust

EPS = 1e-7


def load_teacher(source: str, *, trust_code: bool = False):
    """A frozen teacher from a saved Keras model (``.keras``/``.h5``/SavedModel) or a run directory.

    A file is checked before it loads (nothing in it runs unless ``trust_code``), a run
    directory's model against its recorded sha256.

    Raises:
        UsageError: ``source`` does not exist, or carries code without ``trust_code``.
        EdgebnnError: it cannot be loaded.
    """
    path = Path(source)
    if path.is_dir() and (path / "manifest.json").exists():
        model = RunDir.open(path).load_model(trust=Trust(code=trust_code))
    elif path.exists():
        model = load_keras_file(path, trust_code=trust_code)
    else:
        raise UsageError(f"no teacher at {source!r}: give a saved Keras model or an edgebnn run directory")
    model.trainable = False
    return model


def _log_probs(outputs, temperature: float):
    """Log-softmax at ``temperature`` of probabilities or logits."""
    is_probs = tf.logical_and(
        tf.reduce_min(outputs) >= 0.0, tf.reduce_max(tf.abs(tf.reduce_sum(outputs, -1) - 1.0)) < 1e-3
    )
    logits = tf.cond(is_probs, lambda: tf.math.log(outputs + EPS), lambda: outputs)
    return tf.nn.log_softmax(logits / temperature, axis=-1)


class Distiller(keras.Model):
    """Train ``student`` from ``teachers`` (and the labels); saves and checkpoints the student only."""

    def __init__(self, student, teachers, *, alpha: float = 1.0, temperature: float = 1.0):
        super().__init__()
        if not teachers:
            raise UsageError("distillation needs at least one teacher")
        classes = student.output_shape[-1]
        for t in teachers:
            if t.output_shape[-1] != classes:
                raise UsageError(
                    f"teacher {t.name} predicts {t.output_shape[-1]} classes, the student {classes}: "
                    "use teachers trained on the same dataset"
                )
        self.student = student
        self.main = teachers[-1]
        self.assistants = list(teachers[:-1])
        self.alpha, self.temperature = float(alpha), float(temperature)
        self.round = tf.Variable(0, trainable=False, dtype=tf.int32, name="distill_round")
        self.distill_tracker = keras.metrics.Mean(name="distill_loss")

    @property
    def rounds(self) -> int:
        return max(1, len(self.assistants))

    def round_of(self, epoch: int, epochs: int) -> int:
        return min(self.rounds - 1, epoch * self.rounds // max(1, epochs))

    def call(self, x, training=False):
        return self.student(x, training=training)

    def _teacher(self, model, x):
        size = model.input_shape[1:3]
        if None not in size and tuple(size) != tuple(x.shape[1:3]):
            x = tf.image.resize(x, size)
        return tf.stop_gradient(model(x, training=False))

    def _teacher_log_probs(self, x):
        outs = [_log_probs(self._teacher(self.main, x), self.temperature)]
        if self.assistants:
            branches = [lambda t=t: self._teacher(t, x) for t in self.assistants]
            outs.insert(0, _log_probs(tf.switch_case(tf.convert_to_tensor(self.round), branches), self.temperature))
        return outs

    def distill_loss(self, teacher_log_probs, student_outputs):
        """Per-sample confidence-weighted KL from the teachers to the student (mean over the batch)."""
        s_log = _log_probs(student_outputs, self.temperature)
        t_log = tf.stack(teacher_log_probs, axis=1)  # (batch, teachers, classes)
        t_prob = tf.exp(t_log)
        agreement = tf.reduce_sum(t_prob * s_log[:, None, :], axis=-1)  # -CE(teacher, student)
        weights = tf.stop_gradient(tf.nn.softmax(agreement, axis=1))
        kl = tf.reduce_sum(t_prob * (t_log - s_log[:, None, :]), axis=-1)
        return tf.reduce_mean(tf.reduce_sum(weights * kl, axis=1)) * self.temperature**2

    def train_step(self, data):
        x, y = data[0], data[1]
        teachers = self._teacher_log_probs(x)
        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        with tf.GradientTape() as tape:
            outputs = self.student(x, training=True)
            kd = self.distill_loss(teachers, outputs)
            # compiled_loss returns CE + regularization, both divided by the replica count (the
            # gradients are summed over replicas), and its "loss" metric shows that sum, as in a
            # run without teachers. Only the CE is traded against the teachers; regularization
            # always counts in full.
            reg = tf.add_n(self.student.losses) / replicas if self.student.losses else 0.0
            ce = self.compiled_loss(y, outputs, regularization_losses=self.student.losses) - reg
            loss = (1.0 - self.alpha) * ce + self.alpha * kd / replicas + reg
        self.optimizer.minimize(loss, self.student.trainable_variables, tape=tape)
        self.compiled_metrics.update_state(y, outputs)
        self.distill_tracker.update_state(kd)
        return self.get_metrics_result()

    def test_step(self, data):
        x, y = data[0], data[1]
        outputs = self.student(x, training=False)
        self.compiled_loss(y, outputs, regularization_losses=self.student.losses)
        self.compiled_metrics.update_state(y, outputs)
        return self.get_metrics_result()
