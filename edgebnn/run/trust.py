"""What a command may load that a run directory names, beyond the run's own files.

A run directory is something people share, and its manifest may name code and models outside
it: the custom-objects module of a model the user brought (``source.custom_objects``) and the
teachers of a distilled run (``teachers``). Loading them runs code, or trains with a model the
command line never mentioned, so a command loads one only when the user names it on that
command line, or passes ``--trust-code`` (the same opt-in that lets a model file's own code run).
Either way the file must still hold the bytes whose sha256 the manifest recorded.
"""

from __future__ import annotations

import hashlib
import importlib.util
from dataclasses import dataclass
from pathlib import Path

from edgebnn.errors import EdgebnnError, UsageError, shell_command
from edgebnn.models.file_config import TRUST_FLAG
from edgebnn.run.rundir import sha256_of


@dataclass(frozen=True)
class Trust:
    """What the user allowed on this command.

    Attributes:
        code: ``--trust-code``: run code a model file carries, and load what a manifest names.
        custom_objects: the ``--custom-objects`` module named on this command.
        teachers: the ``--teacher`` paths named on this command.
    """

    code: bool = False
    custom_objects: str | None = None
    teachers: tuple[str, ...] = ()


def digest(path: Path) -> str:
    """sha256 of a file, or of a folder's files (names and contents, in sorted order)."""
    if path.is_file():
        return sha256_of(path)
    combined = hashlib.sha256()
    for f in sorted(p for p in path.rglob("*") if p.is_file()):
        combined.update(str(f.relative_to(path)).encode() + b"\0" + sha256_of(f).encode())
    return combined.hexdigest()


def module_file(spec: str) -> Path | None:
    """The file a ``--custom-objects`` spec names (a ``.py`` path), or the file of a module path."""
    if spec.endswith(".py") or "/" in spec:
        return Path(spec).resolve()

    try:
        found = importlib.util.find_spec(spec)
    except (ImportError, ValueError):
        return None
    return Path(found.origin).resolve() if found and found.origin and found.origin != "built-in" else None


def custom_objects_record(spec: str | None) -> dict:
    """What a manifest records of a ``--custom-objects`` spec: the spec and its file's sha256."""
    if not spec:
        return {"custom_objects": None}
    path = module_file(spec)
    shown = str(path) if spec.endswith(".py") or "/" in spec else spec
    return {"custom_objects": shown, "custom_objects_sha256": digest(path) if path and path.is_file() else None}


def custom_objects_spec(run_path: Path, source: dict, trust: Trust) -> str | None:
    """The custom-objects module to import for a run: the user's, or the recorded one when allowed.

    Raises:
        UsageError: the manifest names one and the user neither named it nor passed ``--trust-code``.
        EdgebnnError: it no longer holds the recorded bytes.
    """
    recorded = source.get("custom_objects")
    if trust.custom_objects or not recorded:
        return trust.custom_objects
    if not trust.code:
        raise UsageError(
            f"{run_path}'s manifest names the custom-objects module {recorded!r}: edgebnn imports code a run "
            f"directory names only when you name it too (--custom-objects {shell_command(recorded)}) or pass "
            f"{TRUST_FLAG}")
    path = module_file(recorded)
    want = source.get("custom_objects_sha256")
    if not want or path is None or not path.is_file() or digest(path) != want:
        why = "has no recorded sha256" if not want else "is missing or not the file it was"
        raise EdgebnnError(f"the custom-objects module {recorded!r} that {run_path} records {why}: edgebnn imports "
                           "nothing it cannot vouch for; name the module with --custom-objects")
    return recorded


def teacher_records(teachers) -> list[dict]:
    """The manifest's record of each teacher: its path and sha256 (a run directory: its model.keras)."""
    return [{"path": str(Path(t).resolve()), "sha256": digest(_teacher_file(Path(t)))} for t in teachers]


def _teacher_file(path: Path) -> Path:
    return path / "model.keras" if (path / "manifest.json").is_file() else path


def recorded_teachers(run_path: Path, recorded: list, trust: Trust) -> list[str]:
    """The teachers a run records, when the user named them again or passed ``--trust-code``, checked by hash.

    Raises:
        UsageError: not allowed, or ``--teacher`` paths other than the recorded ones.
        EdgebnnError: a teacher no longer holds the recorded bytes.
    """
    entries = [t if isinstance(t, dict) else {"path": t} for t in recorded]
    paths = [str(e.get("path")) for e in entries]
    if trust.teachers and [str(Path(t).resolve()) for t in trust.teachers] != paths:
        raise UsageError(f"{run_path} was trained from the teachers {paths}: --teacher on --resume must name "
                         "exactly these, in this order")
    if paths and not trust.teachers and not trust.code:
        again = " ".join(f"--teacher {shell_command(p)}" for p in paths)
        raise UsageError(f"{run_path}'s manifest names teachers outside the run ({', '.join(paths)}): edgebnn "
                         f"loads them only when you name them again ({again}) or pass {TRUST_FLAG}")
    for entry in entries:
        path = Path(entry["path"])
        want = entry.get("sha256")
        if not path.exists() or (want and digest(_teacher_file(path)) != want) or not want:
            raise EdgebnnError(f"the teacher {str(path)!r} that {run_path} records is missing, changed since the run "
                               "started, or has no recorded sha256: restore it, or start a new run")
    return paths
