"""Run directories: the one place the stages share.

``train`` writes ``model.keras`` and ``manifest.json``; ``convert`` adds ``model.tflite`` and
``manifest["conversion"]``; ``bench`` adds ``bench/<device>-<utc>.json`` and appends to
``manifest["benchmarks"]``. Every stage reads what the previous one wrote and nothing else.
Every write is atomic, every read-modify-write of the manifest holds the run's lock (two
processes on one run never lose each other's sections), and a run made from a model in one go
is built aside and renamed into place, so an interruption never leaves half a run directory.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import hashlib
import json
import os
import platform
import shutil
import signal
import tempfile
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Any

from edgebnn import atomic
from edgebnn.errors import EdgebnnError, UsageError, shell_command
from edgebnn.run import manifest as sections

MANIFEST = "manifest.json"
KERAS_MODEL = "model.keras"
BEST_MODEL = "best.keras"  # the best validation accuracy of a training run
TFLITE_MODEL = "model.tflite"
LOCK = ".lock"
TRAIN_LOCK = ".train.lock"
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
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def file_record(path: Path) -> dict[str, Any]:
    return {"sha256": sha256_of(path), "bytes": path.stat().st_size}


def write_error(path: Path, error: OSError, *, what: str = "") -> EdgebnnError:
    """A failed write as a message naming the path and the next step (a full disk above all)."""
    why = error.strerror or str(error)
    step = "free some space there or choose another --out" if error.errno == 28 else "choose a writable --out"
    return EdgebnnError(f"cannot write {what + ' ' if what else ''}{str(path)!r}: {why}; {step}")


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
    def create(cls, path: str | Path, manifest: dict[str, Any]) -> RunDir:
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
            raise write_error(run.path, e, what="the run directory") from None
        base = {"created": utc_now(), "versions": versions(), "files": {}}
        with run.locked():
            run._write({**base, **manifest})
        return run

    @classmethod
    def build(cls, path: str | Path, manifest: dict[str, Any], fill: Callable[[RunDir], None]) -> RunDir:
        """Make a whole run directory aside (manifest, then ``fill(run)``), then rename it into place.

        An interruption or a full disk leaves at most a hidden ``.NAME.*.tmp`` folder beside
        ``path``, never a half-made run at ``path``. ``path`` must not exist.
        """
        final = Path(path)
        try:
            final.parent.mkdir(parents=True, exist_ok=True)
            aside = atomic.ordinary_mode(Path(tempfile.mkdtemp(dir=final.parent, prefix=f".{final.name}.",
                                                               suffix=".tmp")))
        except OSError as e:
            raise write_error(final, e) from None
        try:
            fill(cls.create(aside, manifest))
            os.rename(aside, final)
        except OSError as e:
            raise write_error(final, e) from None
        finally:
            shutil.rmtree(aside, ignore_errors=True)
        return cls(final)

    @classmethod
    def open(cls, path: str | Path) -> RunDir:
        """Open an existing run directory, checking that its manifest is readable.

        Raises:
            EdgebnnError: the directory or its manifest is missing or malformed.
        """
        run = cls(path)
        if not run.path.is_dir():
            raise UsageError(
                f"no run directory at {str(run.path)!r}: give a directory made by `edgebnn train` "
                "or a model name (see `edgebnn models`)"
            )
        run.manifest  # noqa: B018  (reading it validates it)
        return run

    def is_complete(self) -> bool:
        """Whether the manifest reads and ``model.keras`` is there with the hash it records."""
        try:
            recorded = self.section("files").get(KERAS_MODEL)
        except EdgebnnError:
            return False
        if not self.keras_path.is_file() or not isinstance(recorded, dict):
            return False
        return recorded.get("sha256") == sha256_of(self.keras_path)

    # -- manifest --------------------------------------------------------------------------
    @property
    def manifest(self) -> dict[str, Any]:
        try:
            data = json.loads(self.manifest_path.read_text())
        except (FileNotFoundError, NotADirectoryError):
            raise UsageError(
                f"{str(self.path)!r} is not a run directory (no {MANIFEST}): give a directory made "
                "by `edgebnn train` or a model name"
            ) from None
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise EdgebnnError(
                f"malformed {self.manifest_path}: {e}; restore it or re-run `edgebnn train`"
            ) from None
        except OSError as e:
            raise EdgebnnError(f"cannot read {self.manifest_path}: {e.strerror or e}") from None
        sections.check(data, str(self.manifest_path))
        if "model" not in data:
            raise EdgebnnError(
                f"malformed {self.manifest_path}: it has no 'model' entry; re-run `edgebnn train`"
            )
        return data

    def section(self, name: str) -> Any:
        """One section of the manifest, of its documented type (see :mod:`edgebnn.run.manifest`)."""
        return sections.section(self.manifest, name)

    @contextlib.contextmanager
    def locked(self):
        """Hold the run's lock: manifest read-modify-writes of concurrent processes take turns."""
        try:
            fd = os.open(self.path / LOCK, os.O_CREAT | os.O_RDWR, 0o666)
        except OSError as e:
            raise write_error(self.path / LOCK, e) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    @contextlib.contextmanager
    def held_for_training(self):
        """Hold the run for a training process's lifetime: a second one is refused, not queued.

        The lock (``.train.lock``, holding the holder's pid) is released by the kernel when the
        process ends, however it ends, so no stale lock survives a crash; a process that ends
        without being killed also removes the file, leaving the run as it found it. A folder made here that
        still holds nothing when training fails (bad data, say) is removed.

        Raises:
            UsageError: another process holds it.
        """
        made = not self.path.exists()
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise write_error(self.path, e, what="the run directory") from None
        fd = self._take_train_lock()
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
            try:
                yield self
            except BaseException:
                if made and [p.name for p in self.path.iterdir()] == [TRAIN_LOCK]:
                    shutil.rmtree(self.path, ignore_errors=True)
                raise
            finally:
                with contextlib.suppress(OSError):  # unlinked while held: a waiter sees it gone
                    (self.path / TRAIN_LOCK).unlink()
        finally:
            os.close(fd)

    def _take_train_lock(self) -> int:
        """Open and lock ``.train.lock``; retried when the holder removed the file meanwhile."""
        while True:
            try:
                fd = os.open(self.path / TRAIN_LOCK, os.O_CREAT | os.O_RDWR, 0o666)
            except OSError as e:
                raise write_error(self.path, e, what="the run directory") from None
            try:
                self._refuse_if_held(fd)
                if os.path.samestat(os.fstat(fd), os.stat(self.path / TRAIN_LOCK)):
                    return fd
            except FileNotFoundError:
                pass  # locked a file its last holder had just removed: take the new one
            except BaseException:
                os.close(fd)
                raise
            os.close(fd)

    def check_not_held(self) -> None:
        """Refuse at once when another process is training into this run (before anything loads).

        Raises:
            UsageError: naming the holder's pid.
        """
        try:
            fd = os.open(self.path / TRAIN_LOCK, os.O_RDWR)
        except OSError:  # no lock file: nobody ever trained here, or it cannot be opened to check
            return
        try:
            self._refuse_if_held(fd)
        finally:
            os.close(fd)  # closing drops the lock this probe may have taken

    def _refuse_if_held(self, fd: int) -> None:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
            raise UsageError(f"{str(self.path)!r} is being trained by another edgebnn process (pid {holder}): "
                             "wait for it to finish, or choose another --out") from None

    def update(self, **changes: Any) -> dict[str, Any]:
        """Merge top-level sections into the manifest (atomically, under the lock) and return it."""
        return self.edit(lambda data: data.update(changes))

    def edit(self, change: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
        """Apply ``change`` to the current manifest under the lock and write it atomically."""
        with self.locked():
            data = self.manifest
            change(data)
            data["updated"] = utc_now()
            sections.check(data, str(self.manifest_path))
            self._write(data)
        return data

    def commit(self, artifacts: dict[str, Callable[[Path], None]], change: Callable[[dict[str, Any]], None]) -> dict:
        """Replace artifacts and change the manifest together, or not at all.

        Every byte is written aside first (``artifacts`` maps a file name to a writer taking a
        temporary path), so a full disk or an error changes nothing; then, with SIGINT and
        SIGTERM held, the files and the manifest (which records their hashes) are renamed into
        place. ``bench`` checks the flatbuffer's hash against the manifest for what even this
        cannot cover (a SIGKILL between two renames).
        """
        staged: dict[Path, Path] = {}
        try:
            with self.locked():
                for name, write in artifacts.items():
                    final = self.path / name
                    tmp = atomic.temp_file_beside(final)
                    staged[final] = tmp
                    write(tmp)
                data = self.manifest
                files = data.setdefault("files", {})
                for final, tmp in staged.items():
                    files[final.name] = file_record(tmp)
                change(data)
                data["updated"] = utc_now()
                sections.check(data, str(self.manifest_path))
                manifest_tmp = self.path / f".{MANIFEST}.pending"
                manifest_tmp.write_text(json.dumps(data, indent=2, default=str) + "\n")
                staged[self.manifest_path] = manifest_tmp
                held = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
                try:
                    for final, tmp in staged.items():
                        os.replace(tmp, final)
                finally:
                    signal.pthread_sigmask(signal.SIG_SETMASK, held)
        except OSError as e:
            raise write_error(self.path, e) from None
        finally:
            for tmp in staged.values():
                tmp.unlink(missing_ok=True)
        return data

    def record_file(self, path: Path) -> None:
        """Record size and sha256 of an artifact of this run in ``manifest["files"]``."""
        record = file_record(path)
        self.edit(lambda data: data.setdefault("files", {}).__setitem__(path.name, record))

    def _write(self, data: dict[str, Any]) -> None:
        try:
            atomic.write_json(self.manifest_path, data)
        except OSError as e:
            raise write_error(self.manifest_path, e) from None

    # -- artifacts -------------------------------------------------------------------------
    def save_model(self, model) -> Path:
        """Save a Keras model atomically as ``model.keras`` and record its hash."""
        try:
            with atomic.atomic_path(self.keras_path) as tmp:
                model.save(tmp)
        except OSError as e:
            raise write_error(self.keras_path, e) from None
        self.record_file(self.keras_path)
        return self.keras_path

    def verified(self, name: str) -> Path:
        """The run's file ``name``, once it is checked to hold the bytes the manifest records.

        A run directory may come from someone else: a swapped or damaged artifact is refused
        before anything reads it.

        Raises:
            EdgebnnError: missing, not a file, unrecorded, or not the recorded bytes.
        """
        path = self.path / name
        if not path.exists():
            raise EdgebnnError(f"no {name} in {str(self.path)!r}: the training run did not finish; "
                               f"resume it with `{shell_command('edgebnn', 'train', '--resume', self.path)}`")
        recorded = self.section("files").get(name)
        if not path.is_file() or not isinstance(recorded, dict) or recorded.get("sha256") != sha256_of(path):
            what = "is not a file" if not path.is_file() else (
                "is not recorded in its manifest" if not isinstance(recorded, dict) else
                "does not hold the bytes its manifest records (sha256 "
                f"{str(recorded.get('sha256'))[:12]}...)")
            raise EdgebnnError(f"{path} {what}: it was changed after edgebnn wrote it, and edgebnn loads nothing "
                               "it cannot vouch for; restore the run, or make it again")
        return path

    def load_model(self, name: str = KERAS_MODEL, *, trust=None):
        """Load ``model.keras`` (or ``name``), checked against its recorded sha256 and its configuration.

        Args:
            name: the model file in the run (``model.keras``, ``best.keras``).
            trust: what the user allowed on this command (:class:`edgebnn.run.trust.Trust`): the
                custom-objects module the manifest records is imported only if allowed.
        """
        from edgebnn.models.files import load_custom_objects, load_keras_file
        from edgebnn.run.trust import Trust, custom_objects_spec

        trust = trust or Trust()
        path = self.verified(name)
        objects = load_custom_objects(custom_objects_spec(self.path, self.section("source"), trust))
        return load_keras_file(path, objects, trust_code=trust.code)
