import csv
import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tf_keras as keras

from edgebnn.cli import cli
from edgebnn.data.pipelines import digits_arrays, load_dataset
from edgebnn.errors import EdgebnnError
from edgebnn.models.introspection import binary_layer_names
from edgebnn.run.rundir import RunDir
from edgebnn.training.launch import resume
from edgebnn.training.recipes import get_recipe
from edgebnn.training.train import train

RECIPE = get_recipe("bireal-tiny").override(epochs=2)


def _train(path, **kwargs):
    run = RunDir.create(path, {"model": "bireal-tiny", "data": "digits"})
    return run, train(run, model_name="bireal-tiny", recipe=kwargs.pop("recipe", RECIPE), data_spec="digits",
                      verbose=0, **kwargs)


@pytest.fixture(scope="session")
def digits_run(tmp_path_factory):
    """bireal-tiny trained for two epochs on the digits, uninterrupted (seed 0)."""
    run, _ = _train(tmp_path_factory.mktemp("runs") / "digits")
    return run


def test_digits_split_is_stratified_and_fixed():
    x_train, y_train, x_val, y_val = digits_arrays((32, 32, 1))
    assert x_train.shape[1:] == (32, 32, 1) and len(x_val) == 360
    assert set(np.bincount(y_val)) <= {35, 36, 37}  # stratified: ~36 per class
    assert -1.0 <= x_train.min() and x_train.max() <= 1.0
    again = digits_arrays((32, 32, 1))
    assert np.array_equal(again[3], y_val)


def test_digits_as_three_channels():
    data = load_dataset("digits", input_shape=(16, 16, 3), batch_size=8)
    x, y = next(iter(data.train))
    assert tuple(x.shape) == (8, 16, 16, 3)


@pytest.mark.slow
def test_run_records_flips_best_and_logs(digits_run):
    manifest = digits_run.manifest
    assert manifest["status"] == "finished" and manifest["recipe"]["epochs"] == 2 and manifest["seed"] == 0
    binary = manifest["flips"]["layers"]
    assert set(binary) == set(binary_layer_names(digits_run.load_model())) and all(0 <= v["max"] <= 1 for v in binary.values())
    first, last = manifest["flips"]["per_epoch"]
    assert 0 < last < first < 0.5  # weights settle: fewer flips in the second epoch
    rows = list(csv.DictReader(open(digits_run.path / "logs" / "metrics.csv")))
    assert [r["epoch"] for r in rows] == ["0", "1"] and float(rows[1]["flip_ratio"]) == pytest.approx(last, rel=1e-4)
    assert manifest["best"]["val_accuracy"] == max(float(r["val_accuracy"]) for r in rows)
    assert (digits_run.path / "best.keras").exists() and manifest["files"]["best.keras"]["bytes"] > 0
    assert list((digits_run.path / "logs" / "tensorboard").rglob("events.out.tfevents.*"))


@pytest.mark.slow
def test_evaluate_reports_top1_top5(digits_run, cli_runner):
    result = cli_runner.invoke(cli, ["evaluate", str(digits_run.path), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["images"] == 360 and report["top1"] <= report["top5"]
    # The same model on the same validation split as the last epoch's val_accuracy.
    assert report["top1"] == pytest.approx(digits_run.manifest["metrics"]["val_accuracy"], abs=1e-6)
    assert digits_run.manifest["evaluation"]["top1"] == report["top1"]


class _Interrupt(keras.callbacks.Callback):
    """Send SIGINT to this process in the middle of ``epoch``'s training or validation (the real signal path)."""

    def __init__(self, epoch, batch, validation=False):
        super().__init__()
        self.epoch, self.batch, self.validation, self.current = epoch, batch, validation, 0

    def on_epoch_begin(self, epoch, logs=None):
        self.current = epoch

    def _batch_end(self, batch, validation):
        if (self.current, batch, validation) == (self.epoch, self.batch, self.validation):
            os.kill(os.getpid(), signal.SIGINT)

    def on_train_batch_end(self, batch, logs=None):
        self._batch_end(batch, False)

    def on_test_batch_end(self, batch, logs=None):
        self._batch_end(batch, True)


@pytest.mark.slow
def test_interrupted_run_resumes_to_the_same_weights(digits_run, tmp_path):
    path = tmp_path / "interrupted"
    with pytest.raises(EdgebnnError, match=r"interrupted by SIGINT at epoch 2.*--resume"):
        _train(path, callbacks=[_Interrupt(epoch=1, batch=5)])
    state = json.loads((path / "checkpoints" / "state.json").read_text())
    assert (state["epoch"], state["finished"]) == (1, False) and state["step"] >= 6
    assert RunDir(path).manifest["status"] == "interrupted"
    run, metrics = resume(path, verbose=0)
    assert run.manifest["status"] == "finished" and metrics["epochs"] == 2
    expected, got = digits_run.load_model().get_weights(), run.load_model().get_weights()
    assert all(np.array_equal(a, b) for a, b in zip(expected, got))
    rows = list(csv.DictReader(open(path / "logs" / "metrics.csv")))
    assert [r["epoch"] for r in rows] == ["0", "1"]
    assert float(rows[0]["val_accuracy"]) == float(next(csv.DictReader(open(digits_run.path / "logs" / "metrics.csv")))["val_accuracy"])


@pytest.mark.slow
def test_plateau_run_interrupted_twice_matches_an_uninterrupted_one(tmp_path):
    """Tang's plateau schedule, stopped in epoch 1's training, then in epoch 2's validation."""
    recipe = get_recipe("tang2017").override(epochs=2, batch_size=256, lr=1e-3, plateau_patience=1)
    small = {"model_options": {"blocks_per_stage": 1}, "recipe": recipe}
    _train(tmp_path / "straight", **small)
    path = tmp_path / "interrupted"
    with pytest.raises(EdgebnnError, match="interrupted by SIGINT at epoch 1, batch 3"):
        _train(path, callbacks=[_Interrupt(epoch=0, batch=2)], **small)
    with pytest.raises(EdgebnnError, match="interrupted by SIGINT at epoch 2, batch 6"):  # all 6 batches done
        resume(path, verbose=0, callbacks=[_Interrupt(epoch=1, batch=0, validation=True)])
    assert json.loads((path / "checkpoints" / "state.json").read_text())["step"] == 6
    resume(path, verbose=0)  # validates epoch 2 again, then ends it

    def logged(run):  # flips count from a resume point: the rest must be equal
        rows = list(csv.DictReader(open(run / "logs" / "metrics.csv")))
        return [{k: v for k, v in r.items() if k != "flip_ratio"} for r in rows]

    straight, got = logged(tmp_path / "straight"), logged(path)
    assert [r["epoch"] for r in got] == ["0", "1"] and "lr" in got[0]
    assert got == straight  # the loss the plateau watches covers every batch of epoch 1
    state = {run: json.loads((run / "checkpoints" / "state.json").read_text()) for run in (tmp_path / "straight", path)}
    assert state[path]["plateau"] == state[tmp_path / "straight"]["plateau"]
    assert state[path]["best_model"] == state[tmp_path / "straight"]["best_model"]
    expected, weights = RunDir(tmp_path / "straight").load_model().get_weights(), RunDir(path).load_model().get_weights()
    assert all(np.array_equal(a, b) for a, b in zip(expected, weights))


class _Poison(keras.callbacks.Callback):
    """Turn the classifier's weights into NaN at the third batch of the second epoch."""

    epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        if self.epoch == 1 and batch == 2:
            dense = [layer for layer in self.model.layers if hasattr(layer, "kernel")][-1]
            dense.kernel.assign(dense.kernel * np.nan)


@pytest.mark.slow
def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path, cli_runner):
    path = tmp_path / "nan"
    with pytest.raises(EdgebnnError, match=r"loss became NaN at epoch 2.*after epoch 1.*--lr"):
        _train(path, callbacks=[_Poison()])
    state = json.loads((path / "checkpoints" / "state.json").read_text())
    assert state["epoch"] == 1 and RunDir(path).manifest["status"] == "nan"
    # A fresh run over the unfinished one is refused; resuming is suggested.
    result = cli_runner.invoke(cli, ["train", "bireal-tiny", "--out", str(path)])
    assert result.exit_code == 2 and "unfinished run" in result.output and "--resume" in result.output


def test_resume_without_checkpoint_is_a_clear_error(tmp_path, cli_runner):
    result = cli_runner.invoke(cli, ["train", "--resume", str(tmp_path / "nothing")])
    assert result.exit_code == 2 and "no run directory" in result.output
    result = cli_runner.invoke(cli, ["train", "bireal-tiny", "--set", "colour=red", "--out", str(tmp_path / "x")])
    assert result.exit_code == 2 and "unknown recipe field 'colour'" in result.output


DIGITS_NOTE = ("note: data: the bundled digits (scikit-learn's 1,797 8x8 grayscale images; --data chooses another "
               "dataset)")


# A small user model whose default input is ImageNet's (as a paper model's), trained in seconds.
WIDE = '''
import larq as lq
import tf_keras as keras

from edgebnn.registry import register_model


@register_model("wide-tiny", family="user", paper="-", input_shape=(224, 224, 1), num_classes=10)
def build(*, input_shape, num_classes):
    inputs = keras.Input(input_shape)
    x = keras.layers.Conv2D(16, 3, strides=2, padding="same")(inputs)
    x = lq.layers.QuantConv2D(32, 3, padding="same", pad_values=1.0, input_quantizer="ste_sign",
                              kernel_quantizer="ste_sign", kernel_constraint="weight_clip", use_bias=False)(x)
    x = keras.layers.GlobalAveragePooling2D()(keras.layers.BatchNormalization()(x))
    return keras.Model(inputs, keras.layers.Activation("softmax")(keras.layers.Dense(num_classes)(x)))
'''


def _train_wide(tmp_path, cli_runner, *args):
    (tmp_path / "wide.py").write_text(WIDE)
    out = tmp_path / "wide"
    result = cli_runner.invoke(cli, ["train", "wide-tiny", "--model-file", str(tmp_path / "wide.py"), "--epochs", "1",
                                     "--out", str(out), *args])
    assert result.exit_code == 0, result.output
    return result, RunDir(out)


def test_train_without_data_says_what_it_trains_on_at_the_digits_size(tmp_path, cli_runner):
    """As `edgebnn train sabnn-r18`: not 8x8 digits blown up to 224x224 (11 GB for it) in silence."""
    result, run = _train_wide(tmp_path, cli_runner)
    assert result.stderr.splitlines()[:2] == [
        DIGITS_NOTE,
        "note: input: 32x32x1, not wide-tiny's default 224x224x1: the digits' 8x8 images are far smaller "
        "(--input-size 224 builds it at its default)",
    ]
    assert result.output.index("note: input") < result.output.index("loss:")  # said before training
    assert run.manifest["input_shape"] == [32, 32, 1] and run.manifest["data"] == "digits"
    assert run.load_model().input_shape == (None, 32, 32, 1)


def test_an_explicit_input_size_wins_over_the_data_size(tmp_path, cli_runner):
    result, run = _train_wide(tmp_path, cli_runner, "--input-size", "40", "--quiet")
    assert result.stderr.splitlines()[:2] == [DIGITS_NOTE, "note: input: 40x40x1 (--input-size)"]
    assert run.manifest["input_shape"] == [40, 40, 1]


@pytest.mark.slow
def test_the_product_card_command_trains_sabnn_r18_at_32(tmp_path, cli_runner):
    out = tmp_path / "r18"
    result = cli_runner.invoke(cli, ["train", "sabnn-r18", "--width", "0.25", "--epochs", "1", "--batch-size", "64",
                                     "--quiet", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert result.stderr.splitlines()[:2] == [
        DIGITS_NOTE,
        "note: input: 32x32x3, not sabnn-r18's default 224x224x3: the digits' 8x8 images are far smaller "
        "(--input-size 224 builds it at its default)",
    ]
    assert RunDir(out).manifest["input_shape"] == [32, 32, 3]


@pytest.mark.parametrize("model, data, size, shape, said", [
    ("sabnn-r18", "cifar10:/c", None, (32, 32, 3), ["note: input: 32x32x3, not sabnn-r18's default 224x224x3: "
                                                     "cifar10's 32x32 images are far smaller"]),
    ("bireal-tiny", None, None, None, [DIGITS_NOTE, "note: input: 32x32x1, bireal-tiny's default"]),
    ("sabnn-r18", "digits", (64, 64, 3), (64, 64, 3), []),  # given data and size: nothing to say
    ("sabnn-r18", "imagenet:/i", None, None, []),  # ImageNet's images are the model's size
    ("sabnn-r18", "synthetic", None, None, []),  # made at the model's input
    ("equalbits-r20", "cifar100:/c", None, None, []),  # a CIFAR model already at 32x32
])
def test_the_input_size_a_dataset_chooses(model, data, size, shape, said):
    from edgebnn.registry import get_card
    from edgebnn.training.launch import choose_input

    chosen_data, chosen, lines = choose_input(get_card(model), data, size)
    assert (str(chosen_data), chosen) == (data or "digits", shape)  # the DataSpec, parsed once
    assert len(lines) == len(said) and all(line.startswith(s) for line, s in zip(lines, said)), lines


def _fake_finished_run(path):
    """A finished run's files (contents do not matter: only that nothing changes them)."""
    run = RunDir.create(path, {"model": "bireal-tiny", "data": "digits"})
    run.update(status="finished", metrics={"val_accuracy": 0.9}, recipe=RECIPE.to_dict())
    files = {"model.keras": b"last", "best.keras": b"best", "logs/metrics.csv": b"epoch,loss\n0,1.0\n",
             "logs/flips.csv": b"epoch,layer\n", "checkpoints/ckpt-e0002-s000000.index": b"ckpt",
             "checkpoints/state.json": json.dumps({"epoch": 2, "step": 0, "finished": True,
                                                   "prefix": "ckpt-e0002-s000000"}).encode()}
    for name, data in files.items():
        (path / name).parent.mkdir(parents=True, exist_ok=True)
        (path / name).write_bytes(data)
    return {str(f.relative_to(path)): f.read_bytes() for f in sorted(path.rglob("*")) if f.is_file()}


@pytest.mark.parametrize("args, code, message", [
    (["--data", "imagenet:/nonexistent"], 1, "no ImageNet folder at /nonexistent"),
    (["--teacher", "/nonexistent/teacher.keras"], 2, "no teacher at '/nonexistent/teacher.keras'"),
])
def test_bad_data_or_teacher_leaves_a_finished_run_intact(tmp_path, cli_runner, args, code, message):
    path = tmp_path / "finished"
    before = _fake_finished_run(path)
    result = cli_runner.invoke(cli, ["train", "bireal-tiny", "--quiet", "--out", str(path), *args])
    assert result.exit_code == code and message in result.output, result.output
    after = {str(f.relative_to(path)): f.read_bytes() for f in sorted(path.rglob("*")) if f.is_file()}
    assert after == before


@pytest.mark.parametrize("schedule", ["constant", "plateau", "cosine"])
def test_explicit_lr_wins_over_the_restored_one(tmp_path, schedule):
    import tensorflow as tf

    from edgebnn.training.optim import make_optimizer
    from edgebnn.training.train import restore

    def checkpointed(recipe):
        weights = tf.Variable(np.ones(3, "float32"))
        optimizer = make_optimizer(recipe, 10)
        optimizer.build([weights])
        return optimizer, tf.train.Checkpoint(weights=weights, optimizer=optimizer)

    recipe = get_recipe("tang2017").override(schedule=schedule, epochs=4)
    optimizer, checkpoint = checkpointed(recipe)
    if schedule != "cosine":
        optimizer.learning_rate = 2.5e-5  # lowered by the plateau before the checkpoint
    prefix = checkpoint.write(str(tmp_path / "ckpt"))
    faster = recipe.override(lr=1e-2)  # `edgebnn train --resume DIR --lr 1e-2`
    for override, expected in ((False, 2.5e-5), (True, 1e-2)):
        optimizer, checkpoint = checkpointed(faster)
        restore(checkpoint, prefix, optimizer=optimizer, recipe=faster, override_lr=override)
        if schedule == "cosine":  # a schedule is rebuilt from the recipe: --lr is in it already
            assert float(optimizer._learning_rate.initial_learning_rate) == 1e-2
        else:
            assert float(optimizer.learning_rate) == pytest.approx(expected)


class _LearningRate(keras.callbacks.Callback):
    """The optimizer's learning rate when fit begins (after any checkpoint was restored)."""

    def on_train_begin(self, logs=None):
        self.value = float(self.model.optimizer.learning_rate)


@pytest.mark.slow
def test_recipe_option_and_resume_with_a_new_lr(tmp_path, cli_runner):
    out = tmp_path / "tang"
    result = cli_runner.invoke(cli, ["train", "bireal-tiny", "--recipe", "tang2017", "--data", "synthetic",
                                     "--epochs", "1", "--batch-size", "128", "--quiet", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert RunDir.open(out).manifest["recipe"]["name"] == "tang2017"  # plateau schedule, lr 1e-4
    probe = _LearningRate()
    run, metrics = resume(out, overrides={"epochs": 2, "lr": 3e-3}, verbose=0, callbacks=[probe])
    assert probe.value == pytest.approx(3e-3) and metrics["epochs"] == 2
    assert run.manifest["recipe"]["lr"] == 3e-3 and run.manifest["status"] == "finished"

def test_label_smoothing_reaches_the_loss():
    from edgebnn.training.optim import compile_model

    x = np.eye(4, dtype="float32")[:, :2] + 0.5
    y = np.array([0, 1, 2, 0])
    losses = {}
    for smoothing in (0.0, 0.2):
        kernel = keras.initializers.Constant([[1.0, 0.0, -1.0], [0.0, 2.0, 0.0]])
        model = keras.Sequential([keras.layers.Dense(3, activation="softmax", input_shape=(2,),
                                                     kernel_initializer=kernel)])
        compile_model(model, RECIPE.override(label_smoothing=smoothing), "sgd", num_classes=3)
        losses[smoothing] = model.evaluate(x, y, verbose=0)[0]
        probs = model.predict(x, verbose=0)
    targets = np.eye(3)[y] * 0.8 + 0.2 / 3  # Keras' smoothing: y * (1 - s) + s / classes
    assert losses[0.0] == pytest.approx(float(np.mean(-np.log(probs[np.arange(4), y]))), rel=1e-4)
    assert losses[0.2] == pytest.approx(float(np.mean(-np.sum(targets * np.log(probs), axis=1))), rel=1e-4)
    assert losses[0.2] != pytest.approx(losses[0.0], rel=1e-3)


def test_distillation_keeps_regularization_in_full():
    from edgebnn.training.distill import Distiller

    def tiny():
        return keras.Sequential([keras.layers.Dense(3, activation="softmax", input_shape=(2,),
                                                    kernel_regularizer=keras.regularizers.L2(0.5))])

    student, teacher = tiny(), tiny()
    teacher.set_weights(student.get_weights())  # the teacher agrees: the KL term has no gradient
    kernel = student.get_weights()[0]
    d = Distiller(student, [teacher], alpha=1.0)
    d.compile(optimizer=keras.optimizers.SGD(0.1), loss=keras.losses.SparseCategoricalCrossentropy())
    d.train_on_batch(np.ones((4, 2), "float32"), np.zeros(4, "int32"))
    # alpha=1 leaves no label loss, but L2 still pulls: w -= lr * 2 * 0.5 * w.
    assert np.allclose(student.get_weights()[0], kernel * 0.9, atol=1e-6)


def test_distillation_weights_teachers_by_agreement():
    import tensorflow as tf

    from edgebnn.training.distill import Distiller

    def tiny():
        return keras.Sequential([keras.layers.Dense(3, activation="softmax", input_shape=(2,))])

    d = Distiller(tiny(), [tiny(), tiny()], alpha=1.0)
    student = tf.constant([[0.8, 0.1, 0.1]])
    near, far = tf.math.log([[0.7, 0.2, 0.1]]), tf.math.log([[0.1, 0.1, 0.8]])
    loss_near = float(d.distill_loss([near, near], student))
    loss_far = float(d.distill_loss([far, far], student))
    mixed = float(d.distill_loss([near, far], student))
    # The agreeing teacher dominates the per-sample weighting: the mix is close to "near".
    assert loss_near < mixed < (loss_near + loss_far) / 2
    assert (d.rounds, d.round_of(0, 10), d.round_of(9, 10)) == (1, 0, 0)
    three = Distiller(tiny(), [tiny(), tiny(), tiny()])
    assert [three.round_of(e, 4) for e in range(4)] == [0, 0, 1, 1]


@pytest.mark.slow
def test_distillation_from_run_and_model_file(digits_run, tmp_path, cli_runner):
    out = tmp_path / "student"
    result = cli_runner.invoke(cli, [
        "train", "bireal-tiny", "--data", "digits", "--epochs", "1", "--quiet", "--out", str(out),
        "--teacher", str(digits_run.path / "best.keras"), "--teacher", str(digits_run.path),
    ])
    assert result.exit_code == 0, result.output
    manifest = RunDir.open(out).manifest
    assert len(manifest["teachers"]) == 2 and manifest["status"] == "finished"
    row = next(csv.DictReader(open(out / "logs" / "metrics.csv")))
    assert np.isfinite(float(row["distill_loss"])) and float(row["val_accuracy"]) > 0.1
    # The saved model is the student alone.
    assert RunDir(out).load_model().count_params() == digits_run.manifest["stats"]["params"]
    # Extending it loads the teachers again: only when named again (or trusted), checked by hash.
    teachers = [t["path"] for t in manifest["teachers"]]
    assert all(len(t["sha256"]) == 64 for t in manifest["teachers"])
    extend = ["train", "--resume", str(out), "--epochs", "2", "--quiet"]
    refused = cli_runner.invoke(cli, extend)
    assert refused.exit_code == 2 and "--trust-code" in refused.output, refused.output
    result = cli_runner.invoke(cli, [*extend, *(a for t in teachers for a in ("--teacher", t))])
    assert result.exit_code == 0, result.output
    assert RunDir(out).manifest["metrics"]["epochs"] == 2


def _free_ports(n):
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def test_multiworker_training_on_two_local_workers(tmp_path):
    ports = _free_ports(2)
    cluster = {"worker": [f"127.0.0.1:{p}" for p in ports]}
    procs = []
    for index in range(2):
        env = {**os.environ, "TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}}),
               "CUDA_VISIBLE_DEVICES": ""}
        cmd = [str(Path(sys.executable).parent / "edgebnn"), "train", "bireal-tiny", "--data", "digits", "--epochs", "1",
               "--batch-size", "128", "--strategy", "multiworker", "--quiet", "--out", str(tmp_path / f"w{index}")]
        procs.append(subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    outputs = [p.communicate(timeout=600)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], "\n".join(o[-2000:] for o in outputs)
    manifest = RunDir.open(tmp_path / "w0").manifest  # the chief writes the run
    assert manifest["status"] == "finished" and manifest["strategy"] == "multiworker"
    assert 0 < manifest["metrics"]["val_accuracy"] <= 1
    assert not (tmp_path / "w1").exists()  # other workers write to scratch only, not even a manifest


def test_quickstart_end_to_end(cli_runner, tmp_path):
    out = tmp_path / "qs"
    result = cli_runner.invoke(cli, ["quickstart", "--out", str(out), "--epochs", "2", "--quiet"])
    assert result.exit_code == 0, result.output
    assert "validation accuracy" in result.stdout and "LceBconv2d" in result.stdout
    assert "latency median / p90 (host)" in result.stdout  # the kind of figure the bench recorded
    manifest = RunDir.open(out).manifest
    assert manifest["metrics"]["val_accuracy"] > 0.5  # two epochs already learn the digits
    assert manifest["recipe"]["epochs"] == 2
    assert manifest["conversion"]["bconv_coverage"] == 1.0
    assert manifest["benchmarks"][0]["ok"] and manifest["benchmarks"][0]["figure_kind"] == "host"
    assert (out / "logs" / "metrics.csv").exists()
    # The saved model loads again and agrees with the flatbuffer.
    model = RunDir(out).load_model()
    assert model.count_params() == manifest["stats"]["params"]
    assert json.loads((out / "manifest.json").read_text())["files"]["model.keras"]["bytes"] > 0


def test_quickstart_refuses_an_unfinished_run_as_train_does(cli_runner, tmp_path):
    out = tmp_path / "qs"
    (out / "checkpoints").mkdir(parents=True)
    (out / "checkpoints" / "state.json").write_text(json.dumps({"epoch": 3, "step": 0, "finished": False}))
    result = cli_runner.invoke(cli, ["quickstart", "--out", str(out), "--quiet"])
    assert result.exit_code == 2 and "holds an unfinished run" in result.output, result.output
    assert "edgebnn train --resume" in result.output and not (out / "manifest.json").exists()


@pytest.mark.parametrize("split", ["train", "val"])
def test_a_corrupt_image_met_inside_fit_is_named(cli_runner, tmp_path, split):
    """The path `edgebnn train` takes: the failure surfaces inside model.fit's graph, whose
    message ends in the function's name, not the file's."""
    from formats import imagenet_folder

    root = imagenet_folder(tmp_path / "imagenet")
    name = "n02/n02_1.JPEG" if split == "train" else "n03/val_n03_1.JPEG"
    bad = root / split / name
    bad.write_bytes(bad.read_bytes()[: bad.stat().st_size // 2])
    result = cli_runner.invoke(cli, ["train", "bireal-tiny", "--data", f"imagenet:{root}", "--epochs", "1",
                                     "--batch-size", "4", "--out", str(tmp_path / "run"), "--quiet"])
    assert result.exit_code == 1, result.output
    assert f"corrupt or unsupported image {bad}: remove or replace it" in result.output, result.output
    assert "__inference" not in result.output
