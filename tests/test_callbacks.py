"""The run's callbacks on small real Keras fits (a Dense layer on random data: seconds each)."""

import contextlib
import csv
import os
import signal

import larq as lq
import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from edgebnn.models.quantizers import BiHalf
from edgebnn.training.callbacks import Checkpointer, FlipRatio, Interrupted, PlateauLR, read_state

RNG = np.random.default_rng(0)
X, Y = RNG.normal(size=(85, 4)).astype("float32"), RNG.integers(0, 3, 85)
STEPS = 11  # batches of 8, the last one of 5: a mean over batches is not the mean over samples


def _data(skip=0):
    return tf.data.Dataset.from_tensor_slices((X, Y)).batch(8).skip(skip)


def _model():
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.layers.Dense(3, activation="softmax", input_shape=(4,))])
    model.compile(keras.optimizers.SGD(0.1), "sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


class _Signal(keras.callbacks.Callback):
    """Send SIGINT to this process at ``hook`` ("train" or "test" batch end, "epoch") of ``epoch``."""

    def __init__(self, hook, epoch=0, batch=0):
        super().__init__()
        self.hook, self.epoch, self.batch, self.current = hook, epoch, batch, None

    def _fire(self, hook, batch=0):
        if (hook, self.current, batch) == (self.hook, self.epoch, self.batch):
            os.kill(os.getpid(), signal.SIGINT)

    def on_epoch_begin(self, epoch, logs=None):
        self.current = epoch

    def on_train_batch_end(self, batch, logs=None):
        self._fire("train", batch)

    def on_test_batch_end(self, batch, logs=None):
        self._fire("test", batch)

    def on_epoch_end(self, epoch, logs=None):
        self._fire("epoch")


@contextlib.contextmanager
def _handlers(saver):
    saver.install_signal_handlers()
    try:
        yield
    finally:
        saver.restore_signal_handlers()


def test_a_resumed_epoch_means_cover_the_batches_before_the_interruption(tmp_path):
    expected = _model().fit(_data(), verbose=0).history
    model = _model()
    checkpoint = tf.train.Checkpoint(model=model, optimizer=model.optimizer)
    saver = Checkpointer(tmp_path, checkpoint)
    with _handlers(saver), pytest.raises(Interrupted):
        model.fit(_data(), callbacks=[_Signal("train", batch=3), saver], verbose=0)
    state = read_state(tmp_path)
    assert (state["epoch"], state["step"]) == (0, 4)

    model = _model()  # the resume, as edgebnn.training does it
    checkpoint = tf.train.Checkpoint(model=model, optimizer=model.optimizer)
    checkpoint.read(str(tmp_path / state["prefix"])).assert_existing_objects_matched()
    saver = Checkpointer(tmp_path, checkpoint, initial_step=4, partial=state["partial"])
    got = model.fit(_data(skip=4), callbacks=[saver], verbose=0).history
    # The loss the plateau schedule watches is the whole epoch's, not the last 7 batches'.
    assert got["loss"] == pytest.approx(expected["loss"], rel=1e-6)
    assert got["accuracy"] == pytest.approx(expected["accuracy"], rel=1e-6)


@pytest.mark.parametrize("hook, epoch, stops_at", [
    ("test", 1, (1, STEPS)),  # in the last epoch's validation: the resume validates again
    ("epoch", 0, (1, 0)),  # at an epoch's end: stop before the next epoch's first batch
    ("epoch", 1, None),  # at the last epoch's end: nothing is left to resume, the run finishes
])
def test_a_signal_after_the_training_batches_stops_the_run(tmp_path, hook, epoch, stops_at):
    expected = _model().fit(_data(), epochs=2, verbose=0).history
    model = _model()
    saver = Checkpointer(tmp_path, tf.train.Checkpoint(model=model), epochs=2)
    fit = [_Signal(hook, epoch), saver]
    with _handlers(saver):
        if stops_at is None:
            model.fit(_data(), validation_data=_data(), epochs=2, callbacks=fit, verbose=0)
        else:
            with pytest.raises(Interrupted, match=f"SIGINT at epoch {epoch + 1}, batch {STEPS}"):
                model.fit(_data(), validation_data=_data(), epochs=2, callbacks=fit, verbose=0)
    state = read_state(tmp_path)
    assert (state["epoch"], state["step"]) == (stops_at or (2, 0))
    if hook == "test":  # the epoch's training means, not the validation's
        assert state["partial"]["means"]["loss"] == pytest.approx(expected["loss"][1], rel=1e-6)


class _Scores(keras.callbacks.Callback):
    """Put a given score into the epoch logs (a callback before the plateau's)."""

    def __init__(self, scores):
        super().__init__()
        self.scores = scores

    def on_epoch_end(self, epoch, logs=None):
        logs["score"] = self.scores[epoch]


class _LR(keras.callbacks.Callback):
    """Record the learning rate after each epoch (a callback after the plateau's)."""

    def __init__(self, lrs):
        super().__init__()
        self.lrs = lrs

    def on_epoch_end(self, epoch, logs=None):
        self.lrs.append(float(self.model.optimizer.learning_rate))


def _plateau_run(fits, state=None):
    """Learning rates after each epoch and the plateau's state, with the epochs spread over fit() calls."""
    model, lrs = _model(), []
    plateau = PlateauLR(monitor="score", factor=0.5, patience=2, verbose=0)
    plateau.load_state(state)
    for start, stop in fits:
        model.fit(_data(), initial_epoch=start, epochs=stop, verbose=0,
                  callbacks=[_Scores([1.0, 2.0, 2.0, 2.0]), plateau, _LR(lrs)])
    return lrs, plateau.state()


def test_plateau_counters_run_on_across_fit_calls():
    lrs, state = _plateau_run([(0, 4)])
    assert lrs == pytest.approx([0.1, 0.1, 0.05, 0.05]) and state["wait"] == 1  # 2 epochs without gain
    # The same epochs in two fit() calls, as a resumed run makes them (the interrupted epoch, the rest).
    assert _plateau_run([(0, 2), (2, 4)]) == (lrs, state)
    # Resumed from the state after epoch 1: the restored counters are not restored again at the 2nd fit().
    _, after_first = _plateau_run([(0, 1)])
    resumed_lrs, resumed_state = _plateau_run([(1, 2), (2, 4)], state=after_first)
    assert resumed_lrs == lrs[1:] and resumed_state == state


def test_flips_are_counted_on_the_quantized_kernel(tmp_path):
    bihalf = lq.layers.QuantDense(2, kernel_quantizer=BiHalf(), input_shape=(4,))
    sign = lq.layers.QuantDense(2, kernel_quantizer="ste_sign")
    keras.Sequential([bihalf, sign])
    filter0 = np.array([0.1, 0.2, 0.3, 0.4], "float32")
    bihalf.kernel.assign(np.stack([filter0, -filter0], axis=1))  # bi-half: filter 0 is [-, -, +, +]
    flips = FlipRatio({"bihalf": bihalf, "sign": sign}, tmp_path / "flips.csv")
    flips.on_epoch_begin(0)
    # Every latent weight keeps its sign, yet filter 0's two halves swap: 4 of 8 binary weights flip.
    bihalf.kernel.assign(np.stack([filter0[::-1], -filter0], axis=1))
    sign.kernel.assign(-sign.kernel)  # every sign flips, latent and binary alike
    logs = {}
    flips.on_epoch_end(0, logs)
    rows = {r["layer"]: float(r["flip_ratio"]) for r in csv.DictReader(open(tmp_path / "flips.csv"))}
    assert rows == {"bihalf": 0.5, "sign": 1.0}
    assert logs["flip_ratio"] == pytest.approx((4 + 4) / (8 + 4))
