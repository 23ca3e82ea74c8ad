"""What third-party code prints or leaves behind in an edgebnn command (edgebnn/noise.py): kept out.

Each test runs the `edgebnn` command in a subprocess, as a user does: warnings and temp files
belong to a process, and the test process has seen many already.
"""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import larq as lq
import pytest
import tf_keras as keras
from sshd import sshd  # noqa: F401  (fixture)

EDGEBNN = str(Path(sys.executable).parent / "edgebnn")
AUTOGRAPH = "__autograph_generated_file*"


def edgebnn(*args, env=None, **kwargs):
    env = {k: v for k, v in {**os.environ, **(env or {})}.items() if k != "PYTHONWARNINGS"}
    return subprocess.run([EDGEBNN, *map(str, args)], capture_output=True, text=True, env=env, timeout=600, **kwargs)


def test_an_ssh_command_prints_no_third_party_warning(sshd, tmp_path):  # noqa: F811
    devices = tmp_path / "devices.toml"
    devices.write_text(sshd.toml("loopback"))
    done = edgebnn("devices", "check", "loopback", "--devices-file", devices)
    assert done.returncode == 0, done.stderr
    assert done.stderr == "" and "loopback" in done.stdout
    # The warning the filter hides is real (cryptography >= 51 with asyncssh 2.24): --debug shows it.
    # When a refreshed lock no longer raises it, drop its entry from edgebnn.noise.HIDDEN.
    debug = edgebnn("--debug", "devices", "check", "loopback", "--devices-file", devices)
    assert debug.returncode == 0 and "CryptographyDeprecationWarning: DSA is deprecated" in debug.stderr


@pytest.fixture(scope="module")
def starved(tmp_path_factory):
    """A user's model whose binary kernels have no kernel_constraint (larq warns per layer and build)."""
    x = inputs = keras.Input((16, 16, 3))
    x = keras.layers.Conv2D(16, 3, padding="same")(x)
    x = lq.layers.QuantConv2D(32, 3, padding="same", pad_values=1.0, input_quantizer="ste_sign",
                              kernel_quantizer="ste_sign", use_bias=False)(x)
    x = keras.layers.GlobalAveragePooling2D()(keras.layers.BatchNormalization()(x))
    x = lq.layers.QuantDense(10, kernel_quantizer="ste_sign")(x)
    path = tmp_path_factory.mktemp("starved") / "starved.keras"
    keras.Model(inputs, x).save(path)
    return path


def test_convert_says_starved_weights_once_and_leaves_no_temp_files(starved, tmp_path):
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    done = edgebnn("convert", starved, "--out", tmp_path / "run", env={"TMPDIR": str(tmp)})
    assert done.returncode == 0, done.stderr
    assert "LceBconv2d 1/" in done.stdout
    assert done.stderr.count("kernel_constraint") == 1 and "note: some binary kernels have no kernel_constraint" in done.stderr
    assert "Using a binary weight quantizer" not in done.stderr  # larq's own words
    assert list(tmp.iterdir()) == []  # autograph's files went with the process's private folder


def test_the_next_command_removes_what_a_killed_one_left(starved, tmp_path):
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONWARNINGS"}
    proc = subprocess.Popen([EDGEBNN, "convert", str(starved), "--out", str(tmp_path / "run")],
                            env={**env, "TMPDIR": str(tmp)}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 300
        while not list(tmp.glob(f"edgebnn-*/{AUTOGRAPH}")) and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        proc.send_signal(signal.SIGKILL)  # no atexit: TensorFlow's own clean-up never runs
        proc.wait()
    left = list(tmp.glob(f"edgebnn-*/{AUTOGRAPH}"))
    assert left, "the convert was killed before autograph wrote a file"
    assert list(tmp.glob(AUTOGRAPH)) == []  # nothing at the top of TMPDIR itself
    (folder,) = {f.parent for f in left}
    young = edgebnn("--version", env={"TMPDIR": str(tmp)})
    assert young.returncode == 0 and folder.exists()  # it may be a process just starting: left alone
    old = time.time() - 3600
    os.utime(folder / ".alive", (old, old))
    assert edgebnn("--version", env={"TMPDIR": str(tmp)}).returncode == 0
    assert list(tmp.iterdir()) == []


def test_a_running_command_keeps_its_folder(tmp_path):
    """A live process holds its folder's lock: another command never removes it, however old."""
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    code = "import time; from edgebnn import noise; print(noise.private_tempdir(), flush=True); time.sleep(60)"
    proc = subprocess.Popen([sys.executable, "-c", code], env={**os.environ, "TMPDIR": str(tmp)},
                            stdout=subprocess.PIPE, text=True)
    try:
        folder = Path(proc.stdout.readline().strip())
        old = time.time() - 3600
        os.utime(folder / ".alive", (old, old))
        assert edgebnn("--version", env={"TMPDIR": str(tmp)}).returncode == 0
        assert folder.exists()
    finally:
        proc.kill()
        proc.wait()
