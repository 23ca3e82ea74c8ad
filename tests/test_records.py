"""The saved records as types: what they write is what older edgebnn wrote plus ``schema``, and
they read every older shape (edgebnn.run.records)."""

import json

from edgebnn.device.bench import device_record
from edgebnn.device.profiles import DeviceProfile
from edgebnn.device.protocol import BenchConfig, BenchResult, DeviceRun
from edgebnn.run.records import SCHEMA, BenchRecord, ConversionReport, TuneChoice

KEYS = {"device", "profile", "figure_kind", "fingerprint", "runtime", "model", "model_file", "started", "edgebnn",
        "ok", "error_kind", "error", "warnings", "complete", "configurations", "temps_c", "steps_s", "uploads",
        "connections", "binary_macs", "results"}


def _record(**kwargs) -> dict:
    result = BenchResult("pi", BenchConfig(threads=1), ok=True, valid=True, latency={"median_ms": 2.0, "runs": 9})
    device_run = DeviceRun(DeviceProfile(name="pi", transport="ssh", board=True), fingerprint={"arch": "aarch64"},
                           results=[result], planned=1, finished=True)
    return device_record(device_run, model="m", model_file={"sha256": "ab" * 32}, started="2026-01-01T00:00:00Z",
                         **kwargs)


def test_a_record_writes_the_keys_older_edgebnn_wrote_plus_its_schema_and_reads_back():
    written = _record()
    assert set(written) == KEYS | {"schema"} and written["schema"] == SCHEMA
    assert "roofline" in written["results"][0] and written["results"][0]["config"]["threads"] == 1
    on_disk = json.loads(json.dumps(written))
    assert BenchRecord.from_dict(on_disk).to_dict() == on_disk
    tuned = _record(tune=True)["tune"]
    assert tuned["index"] == 0 and tuned["complete"] is True and tuned["planned"] == tuned["ran"] == 1


def test_older_shapes_read_as_what_they_measured():
    old = {"device": "bananapi", "figure_kind": "board", "fingerprint": {"arch": "x86_64"},
           "results": [{"ok": True, "valid": True, "config": {"threads": 4}, "latency": {"mean_ms": 3.0}}, "junk"],
           "tune": {"index": 0, "config": {"threads": 4}, "median_ms": 3.0, "ties": [0, "x"], "rule": "r"}}
    record = BenchRecord.from_dict(old)
    assert record.schema == 1 and record.figure_kind == "host" and record.sha256 is None  # board off ARM: host
    (result,) = record.results  # a result that is not an object is skipped
    assert (result.threads, result.indirect_bgemm, result.xnnpack, result.affinity) == (4, False, False, "")
    assert result.interval == (3.0, None, None) and result.latency_ms == 3.0
    assert record.tune.complete and record.tune.ties == [0]  # a choice before `complete` was of a complete sweep
    assert BenchRecord.from_dict("not a record").results == [] and BenchRecord.from_dict({}).figure_kind == "unknown"
    assert BenchRecord.from_dict({"results": [{"latency": {"median_ms": float("nan")}}]}).results[0].finite is False


def test_an_incomplete_choice_and_a_conversion_report_keep_their_keys():
    assert TuneChoice(rule="r", complete=False, planned=3, ran=1).to_dict() == {
        "index": None, "config": None, "median_ms": None, "ties": [], "rule": "r", "complete": False, "planned": 3,
        "ran": 1}
    report = {"bconv": 3, "bconv_coverage": None, "tflite_bytes": 10, "tflite-float": {"file": "model-float.tflite"}}
    written = ConversionReport.made(report).to_dict()
    assert written == {**report, "schema": SCHEMA}  # a null stays a null, another target's report stays
    assert ConversionReport.from_dict(report).schema == 1  # read from a file without one: an older edgebnn's
    assert ConversionReport.from_dict(written).figure("bconv_coverage") is None
