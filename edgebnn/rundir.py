"""Run directories: the one place the stages share.

``train`` writes ``model.keras`` and ``manifest.json``; ``convert`` adds ``model.tflite`` and
``manifest["conversion"]``; ``bench`` adds ``bench/<device>-<utc>.json`` and appends to
``manifest["benchmarks"]``. Every stage reads what the previous one wrote and nothing else,
and every write is atomic.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import platform
from importlib import metadata
from pathlib import Path
from typing import Any

from edgebnn import atomic
from edgebnn.errors import EdgebnnError

MANIFEST = "manifest.json"
KERAS_MODEL = "model.keras"
TFLITE_MODEL = "model.tflite"
STACK = ("tensorflow", "tf-keras", "larq", "larq-compute-engine", "larq-zoo", "numpy", "edgebnn")


def versions() -> dict[str, str]:
    """Versions of Python and the stack, read from package metadata (no TensorFlow import)."""
    found = {"python": platform.python_version()}
    for name in STACK:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "not installed"
    return found


def utc_now() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def file_record(path: Path) -> dict[str, Any]:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return {"sha256": digest.hexdigest(), "bytes": path.stat().st_size}


class RunDir:
    """A run directory and its manifest."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    # -- locations -------------------------------------------------------------------------
    @property
    def manifest_path(self) -> Path:
        return self.path / MANIFEST

    @property
    def keras_path(self) -> Path:
        return self.path / KERAS_MODEL

    @property
    def tflite_path(self) -> Path:
        return self.path / TFLITE_MODEL

    @property
    def bench_dir(self) -> Path:
        return self.path / "bench"

    # -- creation and opening --------------------------------------------------------------
    @classmethod
    def create(cls, path: str | Path, manifest: dict[str, Any]) -> "RunDir":
        """Create (or reuse) ``path`` and write a fresh manifest.

        Raises:
            EdgebnnError: ``path`` cannot be created or written.
        """
        run = cls(path)
        try:
            run.path.mkdir(parents=True, exist_ok=True)
            probe = run.path / ".write-test"
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as e:
            raise EdgebnnError(
                f"cannot write the run directory {str(run.path)!r}: {e.strerror or e}; "
                "choose a writable --out"
            ) from None
        base = {"created": utc_now(), "versions": versions(), "files": {}}
        run._write({**base, **manifest})
        return run

    @classmethod
    def open(cls, path: str | Path) -> "RunDir":
        """Open an existing run directory, checking that its manifest is readable.

        Raises:
            EdgebnnError: the directory or its manifest is missing or malformed.
        """
        run = cls(path)
        if not run.path.is_dir():
            raise EdgebnnError(
                f"no run directory at {str(run.path)!r}: give a directory made by `edgebnn train` "
                "or a model name (see `edgebnn models`)"
            )
        run.manifest  # validates
        return run

    # -- manifest --------------------------------------------------------------------------
    @property
    def manifest(self) -> dict[str, Any]:
        try:
            data = json.loads(self.manifest_path.read_text())
        except FileNotFoundError:
            raise EdgebnnError(
                f"{str(self.path)!r} is not a run directory (no {MANIFEST}): give a directory made "
                "by `edgebnn train` or a model name"
            ) from None
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise EdgebnnError(
                f"malformed {self.manifest_path}: {e}; restore it or re-run `edgebnn train`"
            ) from None
        if not isinstance(data, dict) or "model" not in data:
            raise EdgebnnError(
                f"malformed {self.manifest_path}: it has no 'model' entry; re-run `edgebnn train`"
            )
        return data

    def update(self, **sections: Any) -> dict[str, Any]:
        """Merge top-level ``sections`` into the manifest (atomically) and return it."""
        data = self.manifest
        data.update(sections)
        data["updated"] = utc_now()
        self._write(data)
        return data

    def record_file(self, path: Path) -> None:
        """Record size and sha256 of an artifact of this run in ``manifest["files"]``."""
        data = self.manifest
        data.setdefault("files", {})[path.name] = file_record(path)
        self._write(data)

    def _write(self, data: dict[str, Any]) -> None:
        atomic.write_json(self.manifest_path, data)

    # -- artifacts -------------------------------------------------------------------------
    def save_model(self, model) -> Path:
        """Save a Keras model atomically as ``model.keras`` and record its hash."""
        with atomic.atomic_path(self.keras_path) as tmp:
            model.save(tmp)
        self.record_file(self.keras_path)
        return self.keras_path

    def load_model(self):
        """Load ``model.keras`` with edgebnn's and larq's custom objects registered."""
        import edgebnn.models  # noqa: F401  (registers custom quantizers and layers)
        import tf_keras as keras

        if not self.keras_path.exists():
            raise EdgebnnError(
                f"no {KERAS_MODEL} in {str(self.path)!r}: the training run did not finish; "
                f"resume it with `edgebnn train --resume {self.path}`"
            )
        try:
            return keras.models.load_model(self.keras_path, compile=False)
        except Exception as e:  # Keras raises many types for a bad archive
            raise EdgebnnError(
                f"cannot load {self.keras_path}: {str(e).splitlines()[0][:200]}; re-run `edgebnn train`"
            ) from None
