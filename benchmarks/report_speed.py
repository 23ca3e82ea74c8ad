"""How long `edgebnn report` takes over many run directories (it reads JSON only: no TensorFlow).

Builds N synthetic run directories (manifest + one bench record each, in the formats the stages
write), then times the whole command in a fresh process (start-up included) for the Markdown
table and for the HTML page with its plots. Prints one JSON line; medians over 5 repetitions
(3 with --quick).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

EDGEBNN = [sys.executable, "-c", "from edgebnn.cli import main; main()"]


def make_runs(root: Path, n: int) -> None:
    for i in range(n):
        run = root / f"run{i:03d}"
        (run / "bench").mkdir(parents=True)
        manifest = {
            "model": f"model-{i % 7}", "data": "digits", "weights": "trained",
            "card": {"published": {"imagenet_top1": 50 + i % 15}},
            "stats": {"params": 1_000_000 + i * 1000, "binary_mac_share": 0.95},
            "metrics": {"val_accuracy": 0.8 + (i % 20) / 100},
            "conversion": {"tflite_bytes": 100_000 + i * 5000, "bconv": 6, "binary_layers": 6, "bconv_coverage": 1.0},
        }
        (run / "manifest.json").write_text(json.dumps(manifest))
        results = [{"config": {"threads": t}, "ok": True, "valid": True,
                    "latency": {"runs": 50, "median_ms": 3.0 + i / t, "p90_ms": 3.5 + i / t, "mean_ms": 3.2 + i / t},
                    "figures": {"memory": {"peak_mb": 20.0}}} for t in (1, 4)]
        record = {"device": "local", "figure_kind": "host", "started": "2026-01-01T00:00:00Z", "results": results}
        (run / "bench" / "local-20260101T000000Z.json").write_text(json.dumps(record))


def time_command(argv: list[str], repetitions: int) -> float:
    times = []
    for _ in range(repetitions):
        start = time.perf_counter()
        subprocess.run(argv, check=True, capture_output=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="20 runs and 3 repetitions instead of 100 and 5.")
    args = parser.parse_args()
    n, reps = (20, 3) if args.quick else (100, 5)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "runs"
        make_runs(root, n)
        cmd = [*EDGEBNN, "report", str(root)]
        md = time_command(cmd + ["--format", "md"], reps)
        html = time_command(cmd + ["--out", str(Path(tmp) / "report.html")], reps)
        version = time_command([*EDGEBNN, "--version"], reps)
    print(json.dumps({
        "benchmark": "report_speed", "runs": n, "repetitions": reps,
        "startup_s": round(version, 3), "report_md_s": round(md, 3), "report_html_with_plots_s": round(html, 3),
    }))


if __name__ == "__main__":
    main()
