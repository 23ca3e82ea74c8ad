"""Where a run comes from: an existing run directory, or a registered model with random weights.

``convert`` and ``bench`` take a bare model name (latency does not depend on the weights, and
that is how architectures are compared on a board before training them): the model is built
with weights drawn from a seed, so the same name always gives the same flatbuffer.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from edgebnn.errors import EdgebnnError, UsageError
from edgebnn.run.rundir import MANIFEST, RunDir


def resolve_source(src: str, *, out: str | None = None, seed: int = 0) -> RunDir:
    """A run directory for ``src``: an existing run directory, or a bare model name.

    A model name gets a run directory (``out``, or ``runs/<name>``) holding the model with
    random weights drawn with ``seed``. One that an interruption left half made (no manifest,
    or no ``model.keras`` with the recorded hash) is recognized and made again.

    Raises:
        EdgebnnError: ``src`` is neither a run directory nor a registered model, or ``out``
            holds something else.
    """
    from edgebnn.registry import get_card, is_model_name

    path = Path(src)
    if path.exists():
        return RunDir.open(path)
    if not is_model_name(src):
        if "/" in src or src.startswith("."):
            raise UsageError(f"no run directory at {src!r}: check the path, or give a model name")
        get_card(src)  # raises with the nearest names
    card = get_card(src)
    run_path = Path(out) if out else Path("runs") / card.name
    if run_path.exists():
        existing = RunDir(run_path)
        if _is_random_run_of(existing, card.name) and existing.is_complete():
            return existing
        if not _half_made(existing, card.name):
            raise EdgebnnError(
                f"{str(run_path)!r} already holds something other than a run of {card.name}: "
                "choose another --out"
            )
        shutil.rmtree(run_path)
    return random_weight_run(card, run_path, seed=seed)


def _is_random_run_of(run: RunDir, name: str) -> bool:
    try:
        manifest = run.manifest
    except EdgebnnError:
        return False
    return manifest.get("model") == name and manifest.get("weights") == "random"


def _half_made(run: RunDir, name: str) -> bool:
    """What an interrupted bare-name run could leave: a random run of ``name``, or only temp files."""
    if _is_random_run_of(run, name):
        return True
    if (run.path / MANIFEST).exists() or not run.path.is_dir():
        return False
    return all(p.name.startswith(".") for p in run.path.iterdir())


def random_weight_run(card, path: Path, *, seed: int = 0) -> RunDir:
    """Build ``card``'s model with weights drawn from ``seed`` into a new run directory at ``path``."""
    import tf_keras as keras

    from edgebnn.models.stats import model_stats
    from edgebnn.registry import create_model

    keras.utils.set_random_seed(seed)
    model = create_model(card.name)
    manifest = {
        "model": card.name,
        "card": card.to_dict(),
        "weights": "random",
        "seed": seed,
        "input_shape": list(card.input_shape),
        "num_classes": card.num_classes,
        "stats": model_stats(model),
    }
    return RunDir.build(path, manifest, lambda run: run.save_model(model))
