"""``edgebnn quickstart``: the three stages on the built-in default, in one call.

A small Bi-Real-style BNN is trained on scikit-learn's bundled digits, converted with LCE and
benchmarked on this machine. This is the one module that composes the stages (each stage
package knows only the ones before it).
"""

from __future__ import annotations

import time
from pathlib import Path

from edgebnn.converters.convert import convert_run
from edgebnn.registry import get_card
from edgebnn.run.rundir import RunDir
from edgebnn.training.recipes import get_recipe

MODEL = "bireal-tiny"
DATA = "digits"


def quickstart(out: str | Path = "runs/quickstart", *, epochs: int | None = None, verbose: int = 2,
               progress=lambda message: None) -> dict:
    """Train, convert and benchmark the quickstart model into ``out``.

    Args:
        out: the run directory (refused when it holds an unfinished run, as ``train`` does).
        epochs: instead of the recipe's.
        verbose: Keras verbosity while training.
        progress: called with a line before each stage.

    Returns:
        ``{"run", "metrics", "stats", "conversion", "bench", "seconds"}``.
    """
    start = time.perf_counter()
    card = get_card(MODEL)
    recipe = get_recipe(card.recipe).override(epochs=epochs)  # a bad --epochs is refused before TensorFlow loads
    from edgebnn.device.bench import bench_configs, bench_run
    from edgebnn.training.train import check_fresh, train

    check_fresh(out)
    run = RunDir(out)
    progress(f"[1/3] training {card.name} on the digits for {recipe.epochs} epochs -> {run.path}")
    metrics = train(run, model_name=card.name, recipe=recipe, data_spec=DATA, verbose=verbose)
    progress("[2/3] converting with Larq Compute Engine")
    conversion = convert_run(run)
    progress("[3/3] benchmarking on the local device (LCE interpreter)")
    # a record that could not be saved (a full disk), or a failed bench, raises
    (record,) = bench_run(run, devices="local", configs=bench_configs("1", runs=50, warmup=5, min_secs=1.0))
    return {"run": run, "metrics": metrics, "stats": run.section("stats"), "conversion": conversion,
            "bench": record, "seconds": time.perf_counter() - start}
