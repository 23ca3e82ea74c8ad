"""The peer models (tests/peers.py) through the CLI next to LCE by hand: op counts, parity, host latency.

Each model of the peer suite (LCE's converter and end-to-end test models, larq's tutorials, larq-zoo
backbones with a user's head; random weights, BatchNorm settled) is saved in each of its formats
(.keras, .h5) and, per file: converted by ``edgebnn convert FILE --to tflite --out DIR`` (the real
CLI, as tests/test_peer_models.py drives it); converted by hand with
``larq_compute_engine.convert_keras_model`` and the two op inventories compared (edgebnn's
``op_counts``); the parity verdict edgebnn wrote in the run's manifest read back; the flatbuffer
benchmarked by ``edgebnn bench DIR --device local --threads 1`` (median latency). The latencies
are host figures (LCE's portable kernels on this machine, not a board). Where LCE 0.16 is known to
be wrong (a zero-padded binary conv on a map smaller than its kernel) edgebnn converts around it,
so the op counts differ by design: a SUB per corrected conv (and a MUL and an ADD for a
BatchNormalization after it, which cannot fuse into the bconv through the SUB).

Prints a markdown table, then one JSON line. A model that fails is a row with its error and the
others still run. ``--quick``: .keras files only, 10 timed runs (full: every format, 20).

    python benchmarks/peer_suite.py [--quick] [--models 'lce-*'] [--runs 20] [--warmup 3]
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import sys
import tempfile
import time
import traceback
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from click.testing import CliRunner  # noqa: E402
from peers import PEERS, QUANTIZERS, make  # noqa: E402

import edgebnn  # noqa: E402,F401  (selects Keras 2 before TensorFlow is imported)
from edgebnn.cli import cli  # noqa: E402


def first_error_line(text: str) -> str:
    """The line of a command's output that says what went wrong (its last ``error:`` line, else its last)."""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()] or ["no output"]
    return next((line for line in reversed(lines) if line.startswith("error")), lines[-1])[:300]


def cli_convert(name: str, path: Path, out: Path) -> tuple[int, dict, str]:
    """``edgebnn convert PATH --to tflite --out OUT`` with the peer's options: exit code, manifest, output."""
    peer = PEERS[name]
    args = ["convert", str(path), "--to", "tflite", "--out", str(out), *peer.convert_args]
    if peer.custom_objects:
        args += ["--custom-objects", str(QUANTIZERS)]
    result = CliRunner().invoke(cli, args)
    manifest = out / "manifest.json"
    return result.exit_code, json.loads(manifest.read_text()) if manifest.exists() else {}, result.output


def lce_by_hand(path: Path) -> dict[str, int]:
    """Op counts of ``larq_compute_engine.convert_keras_model`` on the saved file, loaded as a user would."""
    import larq_compute_engine as lce
    import larq_zoo  # noqa: F401  (the zoo's custom objects, as a user would import them)
    import peer_quantizers
    import tf_keras as keras

    from edgebnn.converters.flatbuffer import op_counts

    functions = {k: v for k, v in vars(peer_quantizers).items() if callable(v)}
    model = keras.models.load_model(path, compile=False, custom_objects=functions)
    return op_counts(lce.convert_keras_model(model))


def ops_comparison(ours: dict, theirs: dict, *, lce_wrong: bool) -> dict:
    """Whether edgebnn's ops equal LCE's by hand, the difference, and whether it is the expected one
    (none, or around LCE's limit: SUBs added, with a MUL and an ADD for a BatchNormalization that
    cannot fuse through the SUB, and only fused activations removed)."""
    added, removed = Counter(ours) - Counter(theirs), Counter(theirs) - Counter(ours)
    expected = (not added and not removed) if not lce_wrong else (
        "SUB" in added and set(added) <= {"SUB", "MUL", "ADD"} and added.get("MUL", 0) == added.get("ADD", 0)
        and set(removed) <= {"RELU", "RELU6"})
    return {"equal": not added and not removed, "added": dict(added), "removed": dict(removed), "as_expected": expected}


def bench_median_ms(out: Path, *, runs: int, warmup: int) -> float:
    """``edgebnn bench OUT --device local --threads 1``: the median latency of its record (ms, host)."""
    result = CliRunner().invoke(cli, ["bench", str(out), "--device", "local", "--threads", "1", "--runs", str(runs),
                                      "--warmup", str(warmup), "--json"])
    if result.exit_code:
        raise RuntimeError(f"edgebnn bench exit {result.exit_code}: {first_error_line(result.output)}")
    record, _ = json.JSONDecoder().raw_decode(result.stdout[result.stdout.index("{"):])
    return record["results"][0]["latency"]["median_ms"]


def measure(name: str, suffix: str, path: Path, root: Path, *, runs: int, warmup: int) -> dict:
    """One peer file through the CLI and by hand; a step that fails is recorded in ``errors``."""
    peer = PEERS[name]
    row = {"model": name, "format": suffix, "expected_verdict": peer.verdict, "lce_limit": peer.lce_wrong, "errors": {}}
    out = root / "runs" / f"{name}{suffix.replace('.', '-')}"
    start = time.perf_counter()
    code, manifest, output = cli_convert(name, path, out)
    row.update(convert_exit=code, convert_seconds=round(time.perf_counter() - start, 1))
    conversion = manifest.get("conversion") or {}
    if not conversion:
        row["errors"]["convert"] = f"edgebnn convert exit {code}: {first_error_line(output)}"
        return row
    row["parity_verdict"] = conversion["parity"].get("verdict")
    for step, do in (("by_hand", lambda: ops_comparison(conversion["op_counts"], lce_by_hand(path),
                                                         lce_wrong=bool(peer.lce_wrong))),
                     ("bench", lambda: bench_median_ms(out, runs=runs, warmup=warmup))):
        try:
            row["ops" if step == "by_hand" else "bench_median_ms_host"] = do()
        except Exception as e:  # one step failing must not lose the others
            row["errors"][step] = f"{type(e).__name__}: {(str(e).splitlines() or [''])[0][:300]}"
            traceback.print_exc(file=sys.stderr)
    return row


def ops_cell(row: dict) -> str:
    if "by_hand" in row["errors"]:
        return f"error: {row['errors']['by_hand']}"
    if "ops" not in row:
        return "-"
    ops = row["ops"]
    if ops["equal"]:
        return "yes"
    diff = ", ".join([f"+{n} {op}" for op, n in ops["added"].items()] + [f"-{n} {op}" for op, n in ops["removed"].items()])
    return f"no ({diff}){': LCE limit corrected, as expected' if ops['as_expected'] else ''}"


def table(rows: list[dict]) -> str:
    """The rows as a markdown table (one row per model and format)."""
    lines = ["| model | format | ops equal to LCE by hand | parity verdict | bench median ms (host, x86, 1 thread) |",
             "|---|---|---|---|---|"]
    for row in rows:
        if "convert" in row["errors"]:
            lines.append(f"| {row['model']} | {row['format']} | - | error: {row['errors']['convert']} | - |")
            continue
        verdict = row["parity_verdict"] + ("" if row["parity_verdict"] == row["expected_verdict"]
                                           else f" (expected {row['expected_verdict']})")
        bench = (f"{row['bench_median_ms_host']:.3f}" if "bench_median_ms_host" in row
                 else f"error: {row['errors'].get('bench', '-')}")
        lines.append(f"| {row['model']} | {row['format']} | {ops_cell(row)} | {verdict} | {bench} |")
    return "\n".join(line.replace("\n", " ") for line in lines)


def summary(rows: list[dict]) -> dict:
    done = [r for r in rows if "ops" in r and "parity_verdict" in r]
    return {
        "files": len(rows),
        "failed": sum(bool(r["errors"]) for r in rows),
        "failed_files": [f"{r['model']}{r['format']}" for r in rows if r["errors"]],
        "ops_equal": sum(r["ops"]["equal"] for r in done),
        "ops_corrected_around_lce": sum(not r["ops"]["equal"] and r["ops"]["as_expected"] for r in done),
        "ops_unexpected": sum(not r["ops"]["as_expected"] for r in done),
        "verdicts": dict(Counter(r["parity_verdict"] for r in rows if "parity_verdict" in r)),
        "verdicts_as_expected": sum(r.get("parity_verdict") == r["expected_verdict"] for r in rows),
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", help="shell glob on the peer name (default: every peer)")
    p.add_argument("--runs", type=int, help="timed runs per bench [20; --quick 10]")
    p.add_argument("--warmup", type=int, default=3, help="warm-up runs per bench [%(default)s]")
    p.add_argument("--quick", action="store_true", help=".keras files only, 10 timed runs")
    args = p.parse_args(argv)
    runs = args.runs or (10 if args.quick else 20)
    names = [n for n in PEERS if fnmatch.fnmatch(n, args.models or "*")]
    start = time.perf_counter()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            try:
                files = make(name, Path(tmp))
            except Exception as e:  # a model that cannot be built or saved is a row, not the end
                files = {}
                rows.append({"model": name, "format": ", ".join(PEERS[name].formats), "expected_verdict": None,
                             "errors": {"convert": f"building/saving failed: {type(e).__name__}: {e}"[:300]}})
                traceback.print_exc(file=sys.stderr)
            for suffix, path in files.items():
                if args.quick and suffix != ".keras":
                    continue
                print(f"{name}{suffix}...", file=sys.stderr, flush=True)
                try:
                    rows.append(measure(name, suffix, path, Path(tmp), runs=runs, warmup=args.warmup))
                except Exception as e:  # one model failing must not lose the others
                    rows.append({"model": name, "format": suffix, "expected_verdict": PEERS[name].verdict,
                                 "errors": {"convert": f"{type(e).__name__}: {str(e)[:300]}"}})
                    traceback.print_exc(file=sys.stderr)
    figures = summary(rows)
    print(table(rows), flush=True)
    print()
    print(json.dumps({
        "benchmark": "peer_suite", "quick": args.quick, "device": "local", "figure_kind": "host", "threads": 1,
        "runs": runs, "warmup": args.warmup, "summary": figures,
        "reading": [
            f"{figures['ops_equal']} of {figures['files']} files convert through `edgebnn convert` to LCE's op counts "
            f"by hand; {figures['ops_corrected_around_lce']} differ as expected (edgebnn's correction of LCE 0.16's "
            f"zero-padded binary conv on a map smaller than its kernel), {figures['ops_unexpected']} otherwise.",
            f"Parity verdicts {figures['verdicts']}; {figures['verdicts_as_expected']} of {figures['files']} are the "
            "verdict the peer suite expects.",
        ],
        "caveat": "Bench medians are host figures (LCE's portable kernels on this x86 machine, 1 thread, shared "
                  "cores), not board figures.",
        "rows": rows, "seconds": round(time.perf_counter() - start, 1)}), flush=True)
    return 0 if len(rows) > figures["failed"] else 1


if __name__ == "__main__":
    sys.exit(main())
