"""Cost of `edgebnn convert RUN --to tflite` against LCE's converter alone on the same model.

The run directory is made once beforehand (`edgebnn convert MODEL --to tflite --out DIR`, not
timed), so model creation is not counted. Each pair then runs, each in a new process started
from a fresh small wrapper (so its peak RSS, ``getrusage(RUSAGE_CHILDREN)``, is that one
child's): the real CLI ``edgebnn convert DIR --to tflite`` (load, LCE conversion, parity,
explain, size, manifest), and "LCE alone": a process that imports edgebnn (legacy Keras and the
custom objects), loads ``DIR/model.keras`` with ``tf_keras.models.load_model(compile=False)``,
calls ``larq_compute_engine.convert_keras_model(model)`` and writes the bytes. Both include
interpreter start-up and imports. The two alternate (which one goes first alternates too, so
drift on a shared machine hits both alike); figures are medians over the pairs, the ratio is
the median of the paired (back-to-back) ratios. ``same_flatbuffer`` says whether both wrote
the same bytes. Prints one JSON line.

``--quick``: quicknet-small (its default 224x224) and 3 pairs instead of quicknet at 224x224
and 5 pairs.

    python benchmarks/convert_overhead.py [--model quicknet] [--pairs 5] [--quick]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import edgebnn  # noqa: F401  (selects Keras 2 before TensorFlow is imported)

# A fresh process per measurement: it times one child and reads that child's peak RSS.
WRAPPER = """\
import json, resource, subprocess, sys, time
start = time.perf_counter()
proc = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
seconds = time.perf_counter() - start
if proc.returncode:
    sys.stderr.write(proc.stderr[-2000:])
    sys.exit(proc.returncode)
print(json.dumps({"seconds": seconds, "max_rss_kib": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}))
"""

LCE_ALONE = """\
import sys
import edgebnn.models  # noqa: F401  (legacy Keras; edgebnn's and larq's custom objects)
import larq_compute_engine as lce
import tf_keras

model = tf_keras.models.load_model(sys.argv[1], compile=False)
flatbuffer = lce.convert_keras_model(model)
with open(sys.argv[2], "wb") as f:
    f.write(flatbuffer)
"""


def measure(argv: list[str]) -> dict:
    proc = subprocess.run([sys.executable, "-c", WRAPPER, *argv], capture_output=True, text=True)
    if proc.returncode:
        raise SystemExit(f"{' '.join(argv[:4])}... failed (exit {proc.returncode}): {proc.stderr.strip()[-500:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", help="[quicknet; quicknet-small with --quick]")
    p.add_argument("--pairs", type=int, help="[5; 3 with --quick]")
    p.add_argument("--quick", action="store_true", help="quicknet-small and 3 pairs")
    args = p.parse_args()
    args.model = args.model or ("quicknet-small" if args.quick else "quicknet")
    args.pairs = args.pairs or (3 if args.quick else 5)

    edgebnn_cli = str(Path(sys.executable).parent / "edgebnn")
    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp) / "run"
        # The run directory (model creation, random weights) is made once, not timed.
        subprocess.run([edgebnn_cli, "convert", args.model, "--to", "tflite", "--out", str(run)],
                       check=True, capture_output=True)
        alone = Path(tmp) / "lce-alone.tflite"
        commands = {
            "edgebnn": [edgebnn_cli, "convert", str(run), "--to", "tflite"],
            "lce": [sys.executable, "-c", LCE_ALONE, str(run / "model.keras"), str(alone)],
        }
        figures: dict[str, list[dict]] = {"edgebnn": [], "lce": []}
        for i in range(args.pairs):
            for name in (("edgebnn", "lce") if i % 2 == 0 else ("lce", "edgebnn")):
                figures[name].append(measure(commands[name]))
        conversion = json.loads((run / "manifest.json").read_text())["conversion"]
        same = sha256(run / "model.tflite") == sha256(alone)
        model_bytes = (run / "model.tflite").stat().st_size

    def med(name, key):
        return statistics.median(f[key] for f in figures[name])

    wall_ratios = [a["seconds"] / b["seconds"] for a, b in zip(figures["edgebnn"], figures["lce"])]
    rss_ratios = [a["max_rss_kib"] / b["max_rss_kib"] for a, b in zip(figures["edgebnn"], figures["lce"])]
    print(json.dumps({
        "benchmark": "convert_overhead",
        "quick": args.quick,
        "model": args.model,
        "pairs": args.pairs,
        "edgebnn_median_s": round(med("edgebnn", "seconds"), 3),
        "lce_median_s": round(med("lce", "seconds"), 3),
        "wall_ratio": round(statistics.median(wall_ratios), 4),
        "target_wall_ratio": 1.15,
        "edgebnn_peak_rss_mib": round(med("edgebnn", "max_rss_kib") / 1024, 1),
        "lce_peak_rss_mib": round(med("lce", "max_rss_kib") / 1024, 1),
        "peak_rss_ratio": round(statistics.median(rss_ratios), 4),
        # What the CLI does beyond LCE, which the ratio pays for: still all in the report.
        "report_has": [k for k in ("parity", "explain", "size") if k in conversion],
        "parity_ok": conversion["parity"]["ok"],
        "same_flatbuffer": same,
        "model_bytes": model_bytes,
        "edgebnn_s": [round(f["seconds"], 2) for f in figures["edgebnn"]],
        "lce_s": [round(f["seconds"], 2) for f in figures["lce"]],
    }))


if __name__ == "__main__":
    main()
