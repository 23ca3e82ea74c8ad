"""What a run needs on the device, and placing it there.

Every file goes to a content-addressed path under the device's ``workdir``
(``models/<sha256>/model.tflite``, ``bin/<sha256>/lce_benchmark_model``): a file already there
with the right content is not sent again, and two versions never share a path. The preflight
reports which are present (:func:`edgebnn.device.preflight.preflight_argv`); the transport sends
the others and checks their sha256 on the device (:meth:`edgebnn.device.transport.Transport.upload`).
"""

from __future__ import annotations

from pathlib import Path

from edgebnn.device import runner
from edgebnn.device.errors import DeviceError, ErrorKind
from edgebnn.device.profiles import DeviceProfile
from edgebnn.device.transport import Upload
from edgebnn.errors import shell_command
from edgebnn.run.rundir import sha256_of


def device_files(profile: DeviceProfile, graph: Path):
    """The uploads a run needs and the runtime's argv on the device.

    Raises:
        DeviceError: ``preflight`` when the profile's ``runtime_file`` does not exist.
    """
    work = profile.workdir.rstrip("/") or "/"
    digest = sha256_of(graph)
    model = Upload(graph, f"{work}/models/{digest}/{graph.name}", digest)
    uploads = {"model": model}
    if profile.runtime == "python":
        script = Path(runner.__file__)
        digest = sha256_of(script)
        uploads["runner"] = Upload(script, f"{work}/bin/{digest}/runner.py", digest)
        command = [profile.python, uploads["runner"].remote]
    elif profile.runtime_file:
        binary = Path(profile.runtime_file).expanduser()
        if not binary.is_file():
            raise DeviceError(ErrorKind.PREFLIGHT, f"runtime_file {profile.runtime_file!r} for {profile.name} does not exist: "
                                           f"run `{shell_command('edgebnn', 'devices', 'setup', profile.name, '--download')}` "
                                           "or fix the path")
        digest = sha256_of(binary)
        uploads["runtime"] = Upload(binary, f"{work}/bin/{digest}/lce_benchmark_model", digest, mode="755")
        command = [uploads["runtime"].remote]
    else:
        command = [profile.runtime]
    return uploads, command + [f"--graph={model.remote}"]


async def ensure_uploaded(transport, profile: DeviceProfile, uploads: dict, disk_free_mb: float | None,
                          present: set[str] | None = None) -> dict:
    """Upload what the board lacks (by sha256); ``{name: {"path", "uploaded", "attempts"}}``.

    Raises:
        DeviceError: ``disk_full`` when the board has no room, ``upload`` otherwise.
    """
    if present is None:
        present = await transport.present(list(uploads.values()))
    missing = [u for u in uploads.values() if u.remote not in present]
    need_mb = sum(u.local.stat().st_size for u in missing) / 2**20
    if missing and disk_free_mb is not None and disk_free_mb < need_mb + 1:
        raise DeviceError(ErrorKind.DISK_FULL, f"{profile.name} has {disk_free_mb:.1f} MB free in {profile.workdir!r}, the "
                                       f"upload needs {need_mb:.1f} MB: free space on the board or set another "
                                       "`workdir` in your devices file")
    report = {}
    for name, item in uploads.items():
        attempts = await transport.upload(item) if item in missing else 0
        report[name] = {"path": item.remote, "sha256": item.sha256, "uploaded": bool(attempts), "attempts": attempts}
    return report
