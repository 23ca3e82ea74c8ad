"""Which SA-BNN box-sum form runs fastest in LCE's interpreter (one JSON line on stdout).

One asymmetric {+a+, -a-} binary conv (64 -> 64 channels, 3x3, one-padding, 16x16 input,
random scales) is rewritten with each form of ``edgebnn.converters.rewrites.BOX_SUM_FORMS``,
converted with LCE and timed with LCE's interpreter (1 thread): median over ``--repeats``
repeats of ``--runs`` invocations each, plus the parity of each form against Keras and its
op counts. On x86 these are the portable kernels' timings: a ranking, not a board figure.
``--quick``: 5 repeats of 20 runs.

    python benchmarks/sabnn_rewrite_forms.py [--repeats 7] [--runs 50] [--size 16] [--channels 64] [--quick]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import edgebnn  # noqa: F401  (selects Keras 2 before TensorFlow is imported)


def build(size: int, channels: int):
    import larq as lq
    import numpy as np
    import tf_keras as keras

    from edgebnn.models.quantizers import StateAwareSign

    inputs = keras.Input((size, size, channels))
    x = keras.layers.BatchNormalization()(inputs)
    x = lq.layers.QuantConv2D(
        channels, 3, padding="same", pad_values=1.0, input_quantizer="ste_sign",
        kernel_quantizer=StateAwareSign(), kernel_constraint="weight_clip", use_bias=False,
    )(x)
    model = keras.Model(inputs, x)
    rng = np.random.default_rng(0)
    q = model.layers[-1].kernel_quantizer
    q.a_plus.assign(rng.uniform(0.5, 1.5, channels).astype("float32"))
    q.a_minus.assign(rng.uniform(0.5, 1.5, channels).astype("float32"))
    return model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, help="[7; 5 with --quick]")
    parser.add_argument("--runs", type=int, help="invocations per repeat [50; 20 with --quick]")
    parser.add_argument("--size", type=int, default=16)
    parser.add_argument("--channels", type=int, default=64)
    parser.add_argument("--quick", action="store_true", help="5 repeats of 20 runs")
    args = parser.parse_args()
    args.repeats = args.repeats or (5 if args.quick else 7)
    args.runs = args.runs or (20 if args.quick else 50)
    if args.repeats < 5:
        parser.error("--repeats must be at least 5: the ranking is a median of repeats")

    import larq_compute_engine as lce
    import numpy as np
    from larq_compute_engine.tflite.python.interpreter import Interpreter

    from edgebnn.converters.flatbuffer import op_counts
    from edgebnn.converters.rewrites import BOX_SUM_FORMS, bake_kernels

    model = build(args.size, args.channels)
    x = np.random.default_rng(1).uniform(-1, 1, (1, args.size, args.size, args.channels)).astype("float32")
    expected = model.predict(x, verbose=0)
    forms = {}
    for form in BOX_SUM_FORMS:
        flatbuffer = lce.convert_keras_model(bake_kernels(model, box_sum=form))
        interpreter = Interpreter(flatbuffer, num_threads=1)
        actual = interpreter.predict(x)
        medians = []
        for _ in range(args.repeats):
            times = []
            for _ in range(args.runs):
                start = time.perf_counter()
                interpreter.predict(x)
                times.append(time.perf_counter() - start)
            medians.append(statistics.median(times))
        forms[form] = {
            "median_ms": round(1e3 * statistics.median(medians), 4),
            "repeat_medians_ms": [round(1e3 * m, 4) for m in medians],
            "max_rel_error": float(np.abs(actual - expected).max() / np.abs(expected).max()),
            "op_counts": op_counts(flatbuffer),
        }
    fastest = min(forms, key=lambda f: forms[f]["median_ms"])
    print(json.dumps({
        "benchmark": "sabnn_rewrite_forms",
        "layer": f"{args.channels}->{args.channels} 3x3 one-padding {args.size}x{args.size}",
        "runtime": "LCE interpreter, 1 thread, this host",
        "quick": args.quick, "repeats": args.repeats, "runs": args.runs, "fastest": fastest, "forms": forms,
    }))


if __name__ == "__main__":
    main()
