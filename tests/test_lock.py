"""requirements.lock: every package the tests ran with, pinned with its hashes (README, Set-up)."""

import re
import tomllib
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)")


def locked() -> dict[str, tuple[str, list[str]]]:
    """``{name: (version, [sha256 hashes])}`` as pip reads the lock."""
    pins, name = {}, None
    for line in (ROOT / "requirements.lock").read_text().splitlines():
        if match := PIN.match(line):
            name = canonicalize_name(match[1])
            pins[name] = (match[2], [])
        elif (hashed := line.strip()).startswith("--hash=sha256:"):
            pins[name][1].append(hashed.removeprefix("--hash=sha256:").rstrip(" \\"))
    return pins


def direct() -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return [Requirement(r) for r in project["dependencies"] + project["optional-dependencies"]["test"]]


def test_the_lock_pins_every_direct_dependency_within_pyproject():
    pins = locked()
    for req in direct():
        name = canonicalize_name(req.name)
        assert name in pins, f"{req.name} is missing from requirements.lock: refresh it (README, Set-up)"
        assert req.specifier.contains(pins[name][0], prereleases=True), f"{req} but the lock has {pins[name][0]}"


def test_every_locked_package_has_hashes():
    pins = locked()
    assert len(pins) > len(direct())  # the transitive ones too
    assert all(len(h) == 64 for _, hashes in pins.values() for h in hashes)
    assert [name for name, (_, hashes) in pins.items() if not hashes] == []


def test_this_environment_is_the_locked_one():
    """The tests run on what the lock installs (pip install -r requirements.lock, as README and CI)."""
    drift = {}
    for name, (version, _) in locked().items():
        try:
            installed = metadata.version(name)
        except metadata.PackageNotFoundError:
            installed = None
        if installed != version:
            drift[name] = (version, installed)
    assert drift == {}, "installed packages differ from requirements.lock (locked, installed): " \
                        "pip install --require-hashes -r requirements.lock"


def test_readme_and_ci_install_from_the_lock():
    readme = (ROOT / "README.md").read_text()
    setup = readme[readme.index("## Set-up"):readme.index("## One command per stage")]
    commands = [line for line in setup.splitlines() if line.startswith("python3.11 -m venv")]
    install = "pip install --require-hashes -r requirements.lock && pip install --no-deps -e ."
    assert len(commands) == 2 and all(install in c for c in commands), commands
    assert commands[0].endswith("edgebnn quickstart") and commands[1].endswith('python -m pytest -q -m "not slow"')
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert "pip install -q --require-hashes -r requirements.lock" in ci and "pip install -q --no-deps -e ." in ci
