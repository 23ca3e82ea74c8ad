"""The papers' ablation claims on the digits: each method against its ablation, over seeds.

For every claim both sides train with the same recipe, data, input (32x32) and width (0.25) and
the same seeds; only the model switch (``--model-arg``) or the learning rate differs:

- ``sabnn-state-aware``: SA-BNN ``state_aware=true`` vs ``false`` (paper: fewer weight flips,
  higher accuracy);
- ``equalbits-bi-half``: Equal Bits ``quantizer=bi-half`` vs ``sign`` (paper: higher accuracy);
- ``tang-regularizer``: Tang 2017 ``regularizer=true`` vs ``false`` at the recipe's lr (1e-4)
  (paper: higher accuracy), and ``tang-regularizer-10x-lr`` the same at 10x that lr;
- ``tang-low-lr``: Tang 2017 at the recipe's lr (1e-4) vs 10x higher (paper: fewer sign changes).

Per method and seed: the flip ratio per epoch (the manifest's ``flips.per_epoch``), final and
best validation accuracy. Per claim: the difference (method - ablation) of final accuracy and
of the mean flip ratio, mean and spread (population std) over the seeds, and whether the
paper's direction held in the mean and in every seed. Digits at this size is a smoke-scale
check of the direction, not a reproduction of the papers' ImageNet numbers.
Prints one JSON line, with ``reading`` (one sentence per claim) and ``caveat`` (what digits at
this size cannot tell). ``--quick``: 2 seeds and 3 epochs (full: 3 seeds, 15 epochs).
``--out DIR`` (or ``$EDGEBNN_CLAIMS_OUT``, for ``run_all``) keeps the run directories, so that
``edgebnn report DIR`` plots their flips per epoch.

    python benchmarks/paper_claims.py [--quick] [--claims sabnn-state-aware,tang-low-lr] [--epochs N] [--seeds N]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import edgebnn  # noqa: F401  (legacy Keras before TensorFlow)

# claim -> (model, paper's direction, method side, ablation side); a side is (label, model_args, overrides)
CLAIMS = {
    "sabnn-state-aware": ("sabnn-r18", {"accuracy": "higher", "flips": "lower"},
                          ("state_aware=true", ["state_aware=true"], {}),
                          ("state_aware=false", ["state_aware=false"], {})),
    "equalbits-bi-half": ("equalbits-r20", {"accuracy": "higher"},
                          ("quantizer=bi-half", ["quantizer=bi-half"], {}),
                          ("quantizer=sign", ["quantizer=sign"], {})),
    "tang-regularizer": ("tang2017-compact", {"accuracy": "higher"},
                         ("regularizer=true", ["regularizer=true"], {}),
                         ("regularizer=false", ["regularizer=false"], {})),
    "tang-regularizer-10x-lr": ("tang2017-compact", {"accuracy": "higher"},
                                ("regularizer=true", ["regularizer=true"], {"lr": 1e-3}),
                                ("regularizer=false", ["regularizer=false"], {"lr": 1e-3})),
    "tang-low-lr": ("tang2017-compact", {"flips": "lower"},
                    ("lr=1e-4", [], {"lr": 1e-4}),
                    ("lr=1e-3", [], {"lr": 1e-3})),
}


def _val_accuracy(run_path: Path) -> list[float]:
    rows = list(csv.DictReader(open(run_path / "logs" / "metrics.csv")))
    return [float(r["val_accuracy"]) for r in rows]


def _train(model: str, model_args, overrides, *, epochs: int, seed: int, out: Path) -> dict:
    from edgebnn.training.launch import train_new

    start = time.perf_counter()
    run, _ = train_new(model, data="digits", input_size="32", width=0.25, model_args=list(model_args),
                       overrides={"epochs": epochs, **overrides}, seed=seed, out=out, verbose=0)
    accuracy = _val_accuracy(run.path)
    flips = run.manifest["flips"]["per_epoch"]
    return {"seed": seed, "flips_per_epoch": flips, "mean_flip_ratio": round(statistics.fmean(flips), 6),
            "final_val_accuracy": round(accuracy[-1], 4), "best_val_accuracy": round(max(accuracy), 4),
            "seconds": round(time.perf_counter() - start, 1)}


def _spread(values: list[float]) -> dict:
    return {"mean": round(statistics.fmean(values), 6), "std": round(statistics.pstdev(values), 6),
            "per_seed": [round(v, 6) for v in values]}


def _held(direction: str, diffs: list[float]) -> dict:
    sign = 1 if direction == "higher" else -1
    return {"paper": direction, "mean": statistics.fmean(diffs) * sign > 0, "every_seed": all(d * sign > 0 for d in diffs)}


CAVEAT = ("Digits (1,797 8x8 images, upscaled to 32x32x3), width 0.25, {epochs} epochs, {seeds} seeds: this checks "
          "the direction of each optimization claim on a small problem and short training, not the papers' "
          "ImageNet results. The backbones are narrow, the data nearly separable and the runs short, so a claim "
          "that does not hold here is not refuted, and one that holds is not confirmed at ImageNet scale.")


def reading(claim: str, result: dict) -> str:
    """One sentence: what was measured for ``claim`` and whether the paper's direction held."""
    acc, flips = result["final_val_accuracy_diff"], result["mean_flip_ratio_diff"]
    held = "; ".join(
        f"paper: {what} {h['paper']}, " + ("held in every seed" if h["every_seed"] else "held in the mean only"
                                           if h["mean"] else "not held")
        for what, h in result["direction_held"].items())
    return (f"{claim} ({result['model']}, {result['method']} vs {result['ablation']}): final val accuracy "
            f"{acc['mean'] * 100:+.1f} +- {acc['std'] * 100:.1f} pts, mean flip ratio {flips['mean']:+.5f} +- "
            f"{flips['std']:.5f} ({held})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2 seeds, 3 epochs")
    parser.add_argument("--claims", help=f"comma-separated subset of {', '.join(CLAIMS)} [all]")
    parser.add_argument("--epochs", type=int, help="epochs per run [15; 3 with --quick]")
    parser.add_argument("--seeds", type=int, help="seeds per side [3; 2 with --quick]")
    parser.add_argument("--out", default=os.environ.get("EDGEBNN_CLAIMS_OUT"),
                        help="keep the run directories here [$EDGEBNN_CLAIMS_OUT, else a temporary directory]")
    args = parser.parse_args()
    epochs = args.epochs or (3 if args.quick else 15)
    seeds = list(range(args.seeds or (2 if args.quick else 3)))
    names = args.claims.split(",") if args.claims else list(CLAIMS)
    unknown = [n for n in names if n not in CLAIMS]
    if unknown:
        parser.error(f"unknown claim(s) {', '.join(unknown)}: choose from {', '.join(CLAIMS)}")

    start = time.perf_counter()
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(args.out or tmp)
        for claim in names:
            model, directions, method, ablation = CLAIMS[claim]
            sides = {}
            for label, model_args, overrides in (method, ablation):
                sides[label] = [_train(model, model_args, overrides, epochs=epochs, seed=s,
                                       out=root / claim / label.replace("=", "-") / f"seed{s}") for s in seeds]
            m, a = (sides[method[0]], sides[ablation[0]])
            acc = [x["final_val_accuracy"] - y["final_val_accuracy"] for x, y in zip(m, a)]
            flips = [x["mean_flip_ratio"] - y["mean_flip_ratio"] for x, y in zip(m, a)]
            held = {}
            if "accuracy" in directions:
                held["accuracy"] = _held(directions["accuracy"], acc)
            if "flips" in directions:
                held["flips"] = _held(directions["flips"], flips)
            results[claim] = {
                "model": model, "method": method[0], "ablation": ablation[0], "runs": sides,
                "final_val_accuracy_diff": _spread(acc), "mean_flip_ratio_diff": _spread(flips),
                "direction_held": held,
            }
    print(json.dumps({
        "benchmark": "paper_claims",
        "quick": args.quick,
        "data": "digits",
        "input": [32, 32, 3],
        "width": 0.25,
        "epochs": epochs,
        "seeds": seeds,
        "claims": results,
        "reading": [reading(claim, r) for claim, r in results.items()],
        "caveat": CAVEAT.format(epochs=epochs, seeds=len(seeds)),
        "seconds": round(time.perf_counter() - start, 1),
    }))


if __name__ == "__main__":
    main()
