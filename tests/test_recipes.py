"""Paper recipes, overrides, schedules and the two weight-decay groups."""

import json

import numpy as np
import pytest

from edgebnn.cli import cli
from edgebnn.errors import UsageError
from edgebnn.training.optim import learning_rate, make_optimizer
from edgebnn.training.recipes import RECIPES, Recipe, get_recipe

PAPER = ("sabnn-r18", "sabnn-r34", "sabnn-r50", "bnext", "bnext-large", "bnext-cifar", "equalbits-imagenet",
         "equalbits-cifar10", "equalbits-cifar100", "tang2017")


def test_paper_recipes_follow_papers_md():
    assert set(PAPER) | {"bireal-tiny", "larq-zoo", "default"} <= set(RECIPES)
    r18, r34, r50 = (get_recipe(f"sabnn-r{d}") for d in (18, 34, 50))
    assert (r18.epochs, r18.batch_size, r18.lr, r18.milestones) == (95, 256, 1e-3, (75, 85))
    assert (r34.epochs, r34.milestones) == (90, (60, 80))
    assert (r50.epochs, r50.batch_size, r50.lr, r50.milestones) == (70, 64, 5e-4, (40, 60))
    assert all(r.optimizer == "adam" and r.weight_decay == 0 for r in (r18, r34, r50))
    bnext = get_recipe("bnext")
    assert (bnext.optimizer, bnext.lr, bnext.weight_decay, bnext.weight_decay_binary) == ("adamw", 1e-3, 1e-3, 1e-8)
    assert (bnext.warmup_epochs, bnext.schedule, bnext.epochs, bnext.batch_size, bnext.clip_norm) == (5, "cosine", 512, 512, 5.0)
    assert (bnext.randaugment_magnitude, bnext.randaugment_std) == (7.0, 0.5)
    eb = get_recipe("equalbits-cifar100")
    assert (eb.optimizer, eb.epochs, eb.weight_decay, eb.milestones) == ("sgd", 350, 5e-4, (150, 250, 320))
    assert get_recipe("equalbits-imagenet").milestones == (30, 60, 90)
    assert get_recipe("equalbits-cifar10").schedule == "cosine"
    tang = get_recipe("tang2017")
    assert (tang.lr, tang.schedule, tang.gamma, tang.extra) == (1e-4, "plateau", 0.5, {"bipolar_lambda": 5e-7})


def test_bnext_recipes_per_dataset_and_size():
    bnext, large, cifar = (get_recipe(n) for n in ("bnext", "bnext-large", "bnext-cifar"))
    assert (large.epochs, large.batch_size, large.randaugment_ops) == (512, 128, 2)  # BNext-Large: batch 128
    assert (cifar.epochs, cifar.batch_size, cifar.randaugment_ops) == (256, 128, 0)  # crop + flip only
    same = ("optimizer", "lr", "schedule", "warmup_epochs", "weight_decay", "weight_decay_binary", "clip_norm")
    assert all(getattr(r, f) == getattr(bnext, f) for r in (large, cifar) for f in same)


def test_unknown_recipe_suggests_the_nearest(cli_runner, tmp_path):
    with pytest.raises(UsageError, match=r"unknown recipe 'equalbits-cifar': did you mean equalbits-cifar10, "
                                         r"equalbits-cifar100\b"):
        get_recipe("equalbits-cifar")
    out = tmp_path / "run"
    result = cli_runner.invoke(cli, ["train", "equalbits-r20", "--recipe", "bnext-cifr", "--out", str(out)])
    assert result.exit_code == 2 and "did you mean bnext-cifar?" in result.output and not out.exists()
    result = cli_runner.invoke(cli, ["train", "--resume", str(out), "--recipe", "bnext-cifar"])
    assert result.exit_code == 2 and "drop --recipe (" in result.output

def test_set_parses_by_field_type():
    r = get_recipe("bnext").with_settings(
        ["epochs=3", "weight_decay=1e-4", "milestones=2,3", "nesterov=true", "clip_norm=none",
         "schedule=step", "extra.bipolar_lambda=1e-6", "extra.note=hello"]
    )
    assert (r.epochs, r.weight_decay, r.milestones, r.nesterov, r.clip_norm, r.schedule) == (3, 1e-4, (2, 3), True, None, "step")
    assert r.extra == {"bipolar_lambda": 1e-6, "note": "hello"}
    assert get_recipe("bnext").extra == {}  # the registered recipe is untouched


@pytest.mark.parametrize("setting, message", [
    ("colour=red", r"unknown recipe field 'colour'.*choose from .*weight_decay"),
    ("epochs=many", r"bad value 'many' for recipe field 'epochs': expected int"),
    ("nesterov=maybe", r"expected bool"),
    ("epochs", r"write key=value"),
    ("optimizer=lamb", r"unknown optimizer 'lamb'"),
    ("lr=-1", r"learning rate must be positive"),
    ("label_smoothing=1.5", r"label_smoothing must be in \[0, 1\) \(got 1.5\)"),
])
def test_bad_settings(setting, message):
    with pytest.raises(UsageError, match=message):
        get_recipe("default").with_settings([setting])


def test_round_trip_through_the_manifest():
    r = get_recipe("tang2017").with_settings(["epochs=7"])
    assert Recipe.from_dict(json.loads(json.dumps(r.to_dict()))) == r


def test_schedules():
    step = learning_rate(get_recipe("sabnn-r18"), steps_per_epoch=10)
    assert np.isclose(float(step(749)), 1e-3) and np.isclose(float(step(751)), 1e-4) and np.isclose(float(step(851)), 1e-5)
    cos = learning_rate(get_recipe("bnext").override(epochs=20), steps_per_epoch=10)
    assert float(cos(0)) == 0.0 and np.isclose(float(cos(50)), 1e-3)  # warm-up for 5 epochs, then the peak
    assert float(cos(120)) < 1e-3 and float(cos(199)) < 1e-5
    assert learning_rate(get_recipe("tang2017"), steps_per_epoch=10) == 1e-4  # ReduceLROnPlateau lowers it
    short = learning_rate(get_recipe("bnext").override(epochs=2), steps_per_epoch=10)  # warm-up clipped
    assert np.isclose(float(short(10)), 1e-3)


def test_two_weight_decay_groups():
    import tensorflow as tf

    binary = tf.Variable(np.ones(4, "float32"), name="binary_kernel")
    other = tf.Variable(np.ones(4, "float32"), name="float_kernel")
    recipe = get_recipe("bnext").with_settings(["schedule=constant", "weight_decay_binary=0.5", "weight_decay=0.1",
                                                "clip_norm=none"])
    opt = make_optimizer(recipe, 10, binary_kernels=[binary])
    opt.apply_gradients([(tf.zeros(4), binary), (tf.zeros(4), other)])
    # Decoupled decay: w -= lr * wd * w, with each group's own wd (the gradient is zero).
    assert np.allclose(binary.numpy(), 1 - 1e-3 * 0.5) and np.allclose(other.numpy(), 1 - 1e-3 * 0.1)


def test_recipes_command(cli_runner):
    result = cli_runner.invoke(cli, ["recipes", "bireal-tiny", "--json", "--set", "epochs=4"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["name"] == "bireal-tiny" and data["epochs"] == 4
    result = cli_runner.invoke(cli, ["recipes", "bnext"])
    assert result.exit_code == 0 and "weight_decay_binary" in result.stdout and "1e-08" in result.stdout
    listing = cli_runner.invoke(cli, ["recipes"])
    assert all(name in listing.stdout for name in PAPER)
    bad = cli_runner.invoke(cli, ["recipes", "bnext", "--set", "colour=red"])
    assert bad.exit_code == 2 and "unknown recipe field 'colour'" in bad.output


def test_bipolar_regularizer_from_the_recipe_extra():
    from edgebnn.models.introspection import binary_kernel_layers
    from edgebnn.registry import create_model
    from edgebnn.training.optim import add_bipolar

    model = create_model("bireal-tiny")
    kernels = {name: layer.kernel for name, layer in binary_kernel_layers(model).items()}
    add_bipolar(model, kernels, 5e-7)
    expected = 5e-7 * sum(float(np.sum(1 - v.numpy() ** 2)) for v in kernels.values())
    assert len(model.losses) == len(kernels) and float(sum(model.losses)) == pytest.approx(expected, rel=1e-5)
