"""Shared fixtures: one tiny converted run for every conversion and bench test."""

from __future__ import annotations

import signal

import pytest

import edgebnn  # noqa: F401  (selects Keras 2 before any test imports TensorFlow)

# A shell that starts the suite in the background (`nohup ... &`, some CI runners) ignores SIGINT,
# and every edgebnn the tests start would inherit that: the tests that press Ctrl-C on it need
# SIGINT as a terminal delivers it. (exec resets a handler, never an ignored signal.)
signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture(autouse=True)
def own_config_home(tmp_path_factory, monkeypatch):
    """No test reads or writes the user's devices file or its setup record (``--save-tuned``)."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path_factory.mktemp("config")))
    monkeypatch.delenv("EDGEBNN_DEVICES_FILE", raising=False)


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """The quickstart model with random weights, converted once for the whole session."""
    from edgebnn.converters.convert import convert_run
    from edgebnn.run.sources import parse_source, resolve_source

    run = resolve_source(parse_source("bireal-tiny"), out=str(tmp_path_factory.mktemp("runs") / "tiny"))
    convert_run(run)
    return run


@pytest.fixture
def tiny_copy(tiny_run, tmp_path):
    """A private copy of the shared run, for tests that convert or damage it."""
    import shutil

    from edgebnn.run.rundir import RunDir

    shutil.copytree(tiny_run.path, tmp_path / "run")
    return RunDir(tmp_path / "run")


@pytest.fixture
def cli_runner():
    from click.testing import CliRunner

    return CliRunner()


def shared_fixtures():
    """``shared/fixtures`` beside the repository (the checkout's parent holds ``shared/``), or
    ``EDGEBNN_SHARED_FIXTURES``."""
    import os
    from pathlib import Path

    return Path(os.environ.get("EDGEBNN_SHARED_FIXTURES") or Path(__file__).resolve().parents[2] / "shared" / "fixtures")


@pytest.fixture(scope="session")
def bnext_authors():
    """The checkpoints PyTorch saved from the BNext authors' own model, and their logits.

    Missing, the tests that need them skip on a developer's machine and fail in CI (CI=true),
    where a skipped check would pass unseen.
    """
    import os

    folder = shared_fixtures() / "bnext-authors"
    if not (folder / "bnext-tiny-w025-epoch511.pth.tar").is_file():
        message = f"no BNext fixtures at {folder}: place shared/ beside the checkout or set EDGEBNN_SHARED_FIXTURES"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(message)
        pytest.skip(message)
    return folder
