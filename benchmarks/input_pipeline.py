"""ImageNet-folder loader throughput against model training throughput.

Writes ImageNet-like JPEGs (``--classes`` x ``--per-class`` images of 500x375) into a temporary
``train/<class>/`` + ``val/<class>/`` tree, then measures, in one run and alternating:
the training pipeline of ``edgebnn.data`` (decode, random-resized crop, flip, normalization,
batching; optionally RandAugment) in images/s, and the training step of ``--model`` at the
same input and batch in images/s. Prints one JSON line with the medians over ``--reps`` and
their ratio (target: the pipeline feeds at least 3x what the model consumes). ``--quick``: 4
classes x 10 images, a 96x96 input and 2 model steps per repetition, still the median of 5.

    python benchmarks/input_pipeline.py [--model quicknet-small] [--size 224] [--batch 16] [--randaugment] [--quick]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import edgebnn  # noqa: F401  (legacy Keras before TensorFlow)


def write_jpegs(root: Path, classes: int, per_class: int) -> None:
    import numpy as np
    import tensorflow as tf

    rng = np.random.default_rng(0)
    for split, count in (("train", per_class), ("val", 2)):
        for c in range(classes):
            folder = root / split / f"n{c:08d}"
            folder.mkdir(parents=True)
            for i in range(count):
                # Smooth images compress like photos (random noise would be unusually costly).
                base = rng.integers(0, 256, size=(12, 16, 3)).astype("float32")
                image = tf.image.resize(base[None], (375, 500), method="bicubic")[0]
                noise = rng.normal(0, 8, size=(375, 500, 3))
                pixels = np.clip(image.numpy() + noise, 0, 255).astype("uint8")
                (folder / f"{c}_{i}.JPEG").write_bytes(tf.io.encode_jpeg(pixels, quality=90).numpy())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="quicknet-small")
    parser.add_argument("--size", type=int, help="square input size [224; 96 with --quick]")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--classes", type=int, help="[8; 4 with --quick]")
    parser.add_argument("--per-class", type=int, help="training images per class [40; 10 with --quick]")
    parser.add_argument("--steps", type=int, help="model steps per repetition [3; 2 with --quick]")
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--randaugment", action="store_true", help="add RandAugment(2, 7, 0.5) as BNext")
    parser.add_argument("--quick", action="store_true", help="fewer, smaller images (still 5 repetitions)")
    args = parser.parse_args()
    quick = args.quick
    args.size = args.size or (96 if quick else 224)
    args.classes = args.classes or (4 if quick else 8)
    args.per_class = args.per_class or (10 if quick else 40)
    args.steps = args.steps or (2 if quick else 3)
    if args.reps < 5:
        parser.error("--reps must be at least 5: the ratio is a median of repetitions")

    import tf_keras as keras

    from edgebnn.data.pipelines import Augment, load_dataset
    from edgebnn.registry import create_model, get_card

    card = get_card(args.model)
    shape = (args.size, args.size, 3)
    augment = Augment(2, 7.0, 0.5) if args.randaugment else Augment()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        write_jpegs(root, args.classes, args.per_class)
        data = load_dataset(f"imagenet:{root}", input_shape=shape, batch_size=args.batch,
                            preprocessing=card.preprocessing, augment=augment)
        synthetic = load_dataset("synthetic", input_shape=shape, batch_size=args.batch)
        model = create_model(card.name, input_shape=shape, num_classes=synthetic.num_classes)
        model.compile(keras.optimizers.Adam(1e-3), keras.losses.SparseCategoricalCrossentropy())
        step = model.make_train_function()
        synthetic = iter(synthetic.train_epochs(0, 10**6))
        step(synthetic)  # trace and warm up
        for _ in data.train_epochs(0, 1).take(2):  # warm up the pipeline's threads
            pass
        pipeline, trainer = [], []
        for rep in range(args.reps):
            start, images = time.perf_counter(), 0
            for x, _ in data.train_epochs(rep + 1, rep + 2):
                images += int(x.shape[0])
            pipeline.append(images / (time.perf_counter() - start))
            start = time.perf_counter()
            for _ in range(args.steps):
                logs = step(synthetic)
            float(logs["loss"])
            trainer.append(args.steps * args.batch / (time.perf_counter() - start))
    loader, consumer = statistics.median(pipeline), statistics.median(trainer)
    print(json.dumps({
        "benchmark": "input_pipeline",
        "loader": "imagenet folder (decode + random-resized crop + flip + normalize)"
                  + (" + RandAugment" if args.randaugment else ""),
        "model": card.name,
        "input": list(shape),
        "batch": args.batch,
        "images_per_epoch": data.train_size,
        "quick": args.quick,
        "reps": args.reps,
        "pipeline_images_per_s": round(loader, 1),
        "model_images_per_s": round(consumer, 2),
        "pipeline_over_model": round(loader / consumer, 2),
        "target_min_ratio": 3.0,
        "meets_target": loader / consumer >= 3.0,
    }))


if __name__ == "__main__":
    main()
