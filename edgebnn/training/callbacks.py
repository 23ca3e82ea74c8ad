"""Keras callbacks of a training run: checkpoints that survive, weight flips, best model, plateau.

The :class:`Checkpointer` owns the run's resumable state: ``checkpoints/state.json`` (epoch,
step within the epoch, learning-rate plateau counters, best validation accuracy) next to a
``tf.train.Checkpoint`` of the model and the optimizer. It writes one at the end of every epoch
and, on SIGINT/SIGTERM, one at the training or validation batch where the signal arrived (or at
the epoch's end) before stopping the run. A checkpoint inside an epoch also records the epoch's
metric state, so that the resumed epoch's loss (which the plateau schedule watches) and metrics
cover all its batches, and a checkpoint taken in the validation can have it run again.
"""

from __future__ import annotations

import csv
import json
import math
import os
import shutil
import signal
import tempfile
import threading
from pathlib import Path
from typing import Any

import numpy as np
import tf_keras as keras

from edgebnn import atomic
from edgebnn.models.introspection import kernel_quantizer

STATE = "state.json"


class Interrupted(Exception):
    """Training stopped by a signal after a checkpoint was written."""

    def __init__(self, signame: str, epoch: int, step: int):
        super().__init__(f"{signame} at epoch {epoch + 1}, batch {step}")
        self.signame, self.epoch, self.step = signame, epoch, step


class NanLoss(Exception):
    """The loss became NaN or infinite; the last good checkpoint is kept."""

    def __init__(self, epoch: int, step: int, last_epoch: int):
        super().__init__(f"the loss became NaN at epoch {epoch + 1}, batch {step}")
        self.epoch, self.step, self.last_epoch = epoch, step, last_epoch


def read_state(directory: Path) -> dict[str, Any] | None:
    """The checkpoint state of a run (None before the first checkpoint)."""
    path = Path(directory) / STATE
    if not path.exists():
        return None
    return json.loads(path.read_text())


class Checkpointer(keras.callbacks.Callback):
    """Checkpoint every epoch and on SIGINT/SIGTERM; stop on a NaN loss.

    Args:
        directory: ``RUN/checkpoints``.
        checkpoint: a ``tf.train.Checkpoint`` of the model (student) and the optimizer.
        initial_epoch, initial_step: where this (possibly resumed) run starts.
        partial: the ``partial`` entry of the state resumed from (the interrupted epoch's metrics).
        epochs: the run's epoch count: a signal noticed at the end of the last epoch lets the run
            finish (nothing is left to resume) instead of stopping it.
        stateful: callbacks with ``state()`` / ``load_state()`` saved with each checkpoint.
        is_chief: False on non-chief workers, which write to a temporary directory (every worker
            must take part in a save under MultiWorkerMirroredStrategy).
        keep: how many checkpoints to keep.
    """

    def __init__(self, directory: Path, checkpoint, *, initial_epoch: int = 0, initial_step: int = 0,
                 partial: dict[str, Any] | None = None, epochs: int | None = None,
                 stateful: dict[str, Any] | None = None, is_chief: bool = True, keep: int = 2):
        super().__init__()
        self.directory = Path(directory)
        self.checkpoint = checkpoint
        self.epoch, self.step = initial_epoch, initial_step
        self.initial_epoch, self.initial_step = initial_epoch, initial_step
        self.partial = partial or {}
        self.epochs = epochs
        self._carry: dict[str, list] | None = None  # metric sums still to add to the resumed epoch
        self._means: dict[str, float] = {}  # the epoch's training metrics so far
        self.stateful = stateful or {}
        self.is_chief = is_chief
        self.keep = keep
        self.signal: str | None = None
        self.last_logs: dict[str, float] = {}
        self.last_good_epoch = initial_epoch
        self._previous: dict[int, Any] = {}

    # -- signals -----------------------------------------------------------------------
    def install_signal_handlers(self) -> None:
        """Turn SIGINT/SIGTERM into a checkpoint at the next batch end (main thread only)."""
        if threading.current_thread() is not threading.main_thread():
            return
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._previous[sig] = signal.signal(sig, self._on_signal)

    def restore_signal_handlers(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()

    def _on_signal(self, signum, frame):
        if self.signal is not None:  # a second signal: give up at once
            self.restore_signal_handlers()
            raise KeyboardInterrupt
        self.signal = signal.Signals(signum).name

    # -- hooks -------------------------------------------------------------------------
    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch
        resumed = epoch == self.initial_epoch and self.initial_step > 0
        self.step = self.initial_step if resumed else 0
        self._carry = self.partial.get("sums") if resumed else None
        self._means = self.partial.get("means", {}) if resumed else {}

    def on_train_batch_end(self, batch, logs=None):
        self.step += 1
        if self._carry:
            # fit() reset the metrics at the epoch's start; Keras metrics are sums (total, count),
            # so adding the interrupted part's sums makes the means cover the whole epoch.
            for metric in self.model.metrics:
                for var, value in zip(metric.variables, self._carry.get(metric.name, ())):
                    var.assign(keras.backend.get_value(var) + np.asarray(value, var.dtype.as_numpy_dtype))
            self._carry = None
            logs = self.model.get_metrics_result()
        self._means = logs or {}
        loss = self._means.get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            raise NanLoss(self.epoch, self.step, self.last_good_epoch)
        if self.signal:
            sums = {m.name: [keras.backend.get_value(v).tolist() for v in m.variables] for m in self.model.metrics}
            self.save(self.epoch, self.step, partial={"sums": sums, "means": _floats(self._means)})
            raise Interrupted(self.signal, self.epoch, self.step)

    def on_test_batch_end(self, batch, logs=None):
        # All the epoch's batches are done; the resume runs the validation and the epoch's end.
        # The model's metrics hold the validation's now: the training means are kept apart.
        if self.signal:
            self.save(self.epoch, self.step, partial={"means": _floats(self._means)})
            raise Interrupted(self.signal, self.epoch, self.step)

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        if any(isinstance(v, float) and not math.isfinite(v) for k, v in logs.items() if k.endswith("loss")):
            raise NanLoss(epoch, self.step, self.last_good_epoch)
        self.last_logs = _floats(logs)
        self.save(epoch + 1, 0)
        self.last_good_epoch = epoch + 1
        if self.signal and (self.epochs is None or epoch + 1 < self.epochs):
            raise Interrupted(self.signal, epoch, self.step)

    # -- writing -----------------------------------------------------------------------
    def save(self, epoch: int, step: int, partial: dict[str, Any] | None = None) -> None:
        """Write the checkpoint for "``epoch`` epochs and ``step`` batches done" and its state.

        ``partial`` (inside an epoch): ``means``, the epoch's training metrics so far, and
        ``sums``, the state of the model's metrics to continue from.
        """
        if not self.is_chief:
            scratch = tempfile.mkdtemp(prefix="edgebnn-worker-ckpt-")
            try:
                self.checkpoint.write(os.path.join(scratch, "ckpt"))
            finally:
                shutil.rmtree(scratch, ignore_errors=True)
            return
        self.directory.mkdir(parents=True, exist_ok=True)
        prefix = self.checkpoint.write(str(self.directory / f"ckpt-e{epoch:04d}-s{step:06d}"))
        state = {"epoch": epoch, "step": step, "prefix": Path(prefix).name, "finished": False,
                 **({"partial": partial} if partial else {}),
                 **{name: cb.state() for name, cb in self.stateful.items()}}
        atomic.write_json(self.directory / STATE, state)
        self._prune(Path(prefix).name)

    def _prune(self, current: str) -> None:
        prefixes = sorted({p.name.split(".")[0] for p in self.directory.glob("ckpt-e*")})
        for old in prefixes[: max(0, len(prefixes) - self.keep)]:
            if old != current:
                for f in self.directory.glob(f"{old}.*"):
                    f.unlink(missing_ok=True)


def _floats(logs) -> dict[str, float]:
    return {k: float(v) for k, v in (logs or {}).items() if np.ndim(v) == 0}


class FlipRatio(keras.callbacks.Callback):
    """Per epoch, the share of each binary layer's binary weights whose sign changed.

    The binary weights are the kernel quantizer's output, what the forward pass uses: bi-half
    (Equal Bits) sets sign(w - median) per filter, which the latent weights' signs do not show.
    ``logs["flip_ratio"]`` gets the share over all binary kernels (so the CSV log has it);
    ``RUN/logs/flips.csv`` gets one row per epoch and layer.

    Args:
        layers: the binary layers (with a ``kernel``) by name.
    """

    def __init__(self, layers: dict[str, Any], path: Path, *, write: bool = True):
        super().__init__()
        self.layers = layers
        self.path = Path(path)
        self.write = write
        self._signs: dict[str, np.ndarray] = {}

    def _snapshot(self) -> dict[str, np.ndarray]:
        import tensorflow as tf

        signs = {}
        for name, layer in self.layers.items():
            # larq wraps the kernel in a QuantizedVariable: quantize its latent value explicitly
            latent = tf.convert_to_tensor(getattr(layer.kernel, "latent_variable", layer.kernel))
            quantizer = kernel_quantizer(layer)
            binary = quantizer(latent) if quantizer is not None else latent
            # signbit, not >= 0: SA-BNN's -a- is -0.0 when a- reaches 0, and still the negative state
            signs[name] = ~np.signbit(np.asarray(binary))
        return signs

    def on_epoch_begin(self, epoch, logs=None):
        self._signs = self._snapshot()

    def on_epoch_end(self, epoch, logs=None):
        if not self.layers:
            return
        now = self._snapshot()
        flipped = {name: int(np.count_nonzero(now[name] != self._signs[name])) for name in now}
        total = sum(a.size for a in now.values())
        if logs is not None:
            logs["flip_ratio"] = sum(flipped.values()) / max(1, total)
        if self.write:
            new = not self.path.exists()
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path, "a", newline="") as f:
                out = csv.writer(f)
                if new:
                    out.writerow(["epoch", "layer", "flip_ratio", "weights"])
                for name, count in flipped.items():
                    out.writerow([epoch, name, f"{count / now[name].size:.6g}", now[name].size])


def flip_summary(path: Path) -> dict[str, Any]:
    """The manifest's summary of ``flips.csv``: per layer first/last/mean/max, overall per epoch."""
    rows = list(csv.DictReader(open(path))) if Path(path).exists() else []
    layers: dict[str, list[float]] = {}
    epochs: dict[int, list[tuple[float, int]]] = {}
    for r in rows:
        layers.setdefault(r["layer"], []).append(float(r["flip_ratio"]))
        epochs.setdefault(int(r["epoch"]), []).append((float(r["flip_ratio"]), int(r["weights"])))
    overall = [sum(f * n for f, n in v) / max(1, sum(n for _, n in v)) for _, v in sorted(epochs.items())]
    return {
        "file": "logs/flips.csv",
        "per_epoch": [round(x, 6) for x in overall],
        "layers": {
            name: {"first": v[0], "last": v[-1], "mean": round(sum(v) / len(v), 6), "max": max(v)}
            for name, v in layers.items()
        },
    }


def truncate_csv(path: Path, epoch: int) -> None:
    """Drop the rows of epochs >= ``epoch`` (written after the checkpoint a run resumes from)."""
    path = Path(path)
    if not path.exists():
        return
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    if not rows:
        return
    header, body = rows[0], rows[1:]
    col = header.index("epoch") if "epoch" in header else 0
    kept = [r for r in body if r and int(float(r[col])) < epoch]
    with atomic.atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
        csv.writer(f).writerows([header, *kept])


class BestModel(keras.callbacks.Callback):
    """Save the model with the best validation accuracy so far as ``best.keras``."""

    def __init__(self, model, path: Path, *, monitor: str = "val_accuracy", is_chief: bool = True, on_save=None):
        super().__init__()
        self.student = model
        self.path = Path(path)
        self.on_save = on_save  # records the file's hash, so that `evaluate --best` may trust it
        self.monitor = monitor
        self.is_chief = is_chief
        self.best = -math.inf
        self.best_epoch: int | None = None

    def state(self) -> dict[str, Any]:
        return {"best": self.best if math.isfinite(self.best) else None, "best_epoch": self.best_epoch}

    def load_state(self, state: dict[str, Any]) -> None:
        self.best = state.get("best") if state.get("best") is not None else -math.inf
        self.best_epoch = state.get("best_epoch")

    def on_epoch_end(self, epoch, logs=None):
        value = (logs or {}).get(self.monitor)
        if value is None or not float(value) > self.best:
            return
        self.best, self.best_epoch = float(value), epoch + 1
        save_model(self.student, self.path, is_chief=self.is_chief)
        if self.is_chief and self.on_save:
            self.on_save(self.path)


def save_model(model, path: Path, *, is_chief: bool = True) -> None:
    """Save atomically (chief) or into a scratch directory (other workers must save too)."""
    if not is_chief:
        scratch = tempfile.mkdtemp(prefix="edgebnn-worker-model-")
        try:
            model.save(os.path.join(scratch, Path(path).name))
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        return
    with atomic.atomic_path(path) as tmp:
        model.save(tmp)


class PlateauLR(keras.callbacks.ReduceLROnPlateau):
    """ReduceLROnPlateau whose counters survive a resume and run on across ``fit()`` calls."""

    def state(self) -> dict[str, Any]:
        best = float(self.best)
        return {"wait": int(self.wait), "best": best if math.isfinite(best) else None,
                "cooldown_counter": int(self.cooldown_counter)}

    def load_state(self, state: dict[str, Any]) -> None:
        if state:
            self.wait, self.cooldown_counter = state["wait"], state["cooldown_counter"]
            if state["best"] is not None:
                self.best = state["best"]

    def on_train_begin(self, logs=None):
        # Keras resets the counters here (__init__ did already). One run may take several fit()
        # calls (a resumed epoch, then the rest): the counters must run on through them.
        pass


class DistillRound(keras.callbacks.Callback):
    """Set the distiller's round (which assistant teacher) at the start of each epoch."""

    def __init__(self, distiller, epochs: int):
        super().__init__()
        self.distiller, self.epochs = distiller, epochs

    def on_epoch_begin(self, epoch, logs=None):
        self.distiller.round.assign(self.distiller.round_of(epoch, self.epochs))
