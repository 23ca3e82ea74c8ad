"""Training throughput of a BNN against its float twin, measured side by side in one run.

The twin (``edgebnn.converters.twin.float_twin``) has the same architecture with every quantizer
removed. Both train on the synthetic source with the same optimizer; repetitions alternate
BNN / float so that load on the machine hits both alike. Prints one JSON line: median images/s
of each and the step-time ratio (target: the BNN step costs at most 1.3x the float step).
``--quick``: a 64x64 input and 2 steps per repetition, still the median of 5 repetitions.

    python benchmarks/train_step.py [--model quicknet-small] [--size 96] [--batch 16] [--reps 5] [--quick]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import edgebnn  # noqa: F401  (legacy Keras before TensorFlow)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="quicknet-small")
    parser.add_argument("--size", type=int, help="square input size [96; 64 with --quick]")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--steps", type=int, help="training steps per repetition [4; 2 with --quick]")
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--jit", action="store_true", help="compile both train steps with XLA")
    parser.add_argument("--quick", action="store_true", help="smaller input, fewer steps (still 5 repetitions)")
    args = parser.parse_args()
    args.size = args.size or (64 if args.quick else 96)
    args.steps = args.steps or (2 if args.quick else 4)
    if args.reps < 5:
        parser.error("--reps must be at least 5: the ratio is a median of repetitions")

    import tensorflow as tf
    import tf_keras as keras

    from edgebnn.converters.twin import float_twin
    from edgebnn.data.pipelines import load_dataset
    from edgebnn.registry import create_model, get_card

    card = get_card(args.model)
    shape = (args.size, args.size, card.input_shape[2])
    data = load_dataset("synthetic", input_shape=shape, batch_size=args.batch)
    bnn = create_model(card.name, input_shape=shape, num_classes=data.num_classes)
    models = {"bnn": bnn, "float": float_twin(bnn)}
    steps = {}
    for name, model in models.items():
        model.compile(keras.optimizers.Adam(1e-3), keras.losses.SparseCategoricalCrossentropy(), jit_compile=args.jit)
        fn = model.make_train_function()
        iterator = iter(data.train_epochs(0, 10**6))
        fn(iterator)  # trace and warm up
        fn(iterator)
        steps[name] = (fn, iterator)
    times = {name: [] for name in models}
    for _ in range(args.reps):
        for name, (fn, iterator) in steps.items():
            start = time.perf_counter()
            for _ in range(args.steps):
                logs = fn(iterator)
            float(logs["loss"])  # wait for the last step
            times[name].append((time.perf_counter() - start) / args.steps)
    step = {name: statistics.median(t) for name, t in times.items()}
    ratios = [b / f for b, f in zip(times["bnn"], times["float"])]
    print(json.dumps({
        "benchmark": "train_step",
        "model": card.name,
        "input": list(shape),
        "batch": args.batch,
        "jit_compile": args.jit,
        "quick": args.quick,
        "reps": args.reps,
        "steps_per_rep": args.steps,
        "bnn_images_per_s": round(args.batch / step["bnn"], 2),
        "float_images_per_s": round(args.batch / step["float"], 2),
        "bnn_over_float_step": round(statistics.median(ratios), 3),
        "target_max_ratio": 1.3,
        "meets_target": statistics.median(ratios) <= 1.3,
        "device": "CPU" if not tf.config.list_logical_devices("GPU") else "GPU",
    }))


if __name__ == "__main__":
    main()
