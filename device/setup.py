"""Install ``lce_benchmark_model`` for a board: a local file or LCE's released binary.

LCE publishes ``lce_benchmark_model_aarch64`` as an asset of each GitHub release
(``https://github.com/larq/compute-engine/releases/download/v<version>/lce_benchmark_model_aarch64``);
edgebnn fetches the one matching the installed converter, checks that it is a 64-bit ARM
ELF executable, caches it by version; a runtime (downloaded or given) is checked against the
board's architecture (the preflight's ``uname -m``, :mod:`edgebnn.device.arch`), uploaded to the
board's content-addressed folder (:mod:`edgebnn.device.uploads`) and its sha256 recorded beside the
devices file (:mod:`edgebnn.device.setup_record`), so later runs reuse it.
"""

from __future__ import annotations

import asyncio
import os
import urllib.error
import urllib.request
from importlib import metadata
from pathlib import Path

from edgebnn import atomic
from edgebnn.device.arch import check_aarch64_executable, check_runtime_for, machine_arch
from edgebnn.device.devices_file import default_devices_file
from edgebnn.device.preflight import parse_preflight, preflight_argv
from edgebnn.device.profiles import cache_dir, get_profile
from edgebnn.device.setup_record import record_setup
from edgebnn.device.ssh import SshTransport
from edgebnn.device.transport import Upload
from edgebnn.device.uploads import ensure_uploaded
from edgebnn.errors import EdgebnnError, UsageError
from edgebnn.run.rundir import sha256_of

RELEASES = "https://github.com/larq/compute-engine/releases/download"
ASSET = "lce_benchmark_model_aarch64"


def release_url(version: str, *, base: str | None = None) -> str:
    """The release asset URL for LCE ``version`` (``EDGEBNN_LCE_RELEASES`` overrides the base)."""
    base = base or os.environ.get("EDGEBNN_LCE_RELEASES") or RELEASES
    return f"{base.rstrip('/')}/v{version}/{ASSET}"


def lce_version() -> str:
    """The installed LCE converter's version (the release whose runtime matches it)."""
    return metadata.version("larq-compute-engine")


def download_runtime(*, version: str | None = None, cache: Path | None = None, timeout: float = 60.0) -> Path:
    """Fetch LCE's released ``lce_benchmark_model_aarch64`` (cached per version) and check it.

    Raises:
        EdgebnnError: the download failed or the file is not an aarch64 executable.
    """
    version = version or lce_version()
    cache = cache or cache_dir()
    dest = cache / "runtimes" / f"v{version}" / ASSET
    if dest.is_file():
        check_aarch64_executable(dest)
        return dest
    url = release_url(version)
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            data = response.read()
    except urllib.error.HTTPError as e:
        raise EdgebnnError(f"cannot download {url}: HTTP {e.code}; check that LCE v{version} has a release with "
                           f"{ASSET}, or pass --runtime FILE") from None
    except (urllib.error.URLError, OSError) as e:
        raise EdgebnnError(f"cannot download {url}: {getattr(e, 'reason', e)}; check the network, or download "
                           "it elsewhere and pass --runtime FILE") from None
    with atomic.atomic_path(dest) as tmp:
        tmp.write_bytes(data)
        check_aarch64_executable(tmp)
        tmp.chmod(0o755)
    return dest


async def install_runtime(profile, binary: Path, *, accept_new_host_key: bool = False) -> dict:
    """Check ``binary`` against the board's architecture (its preflight's ``uname -m``), then upload it
    to the board's content-addressed folder (skipped when already there).

    Returns:
        ``{"path", "sha256", "uploaded"}``.

    Raises:
        EdgebnnError: ``binary`` is not an executable for the board's architecture.
        DeviceError: the board cannot be reached or written.
    """
    if profile.transport == "local":
        raise EdgebnnError(f"{profile.name} is this machine: it runs LCE's Python interpreter, no setup needed")
    digest = sha256_of(binary)
    item = Upload(Path(binary), f"{profile.workdir.rstrip('/')}/bin/{digest}/lce_benchmark_model", digest, mode="755")
    transport = SshTransport(profile, accept_new_host_key=accept_new_host_key)
    try:
        await transport.connect()
        found = await transport.run(preflight_argv(profile, runtime="", deep=False, uploads=[item]), timeout=60)
        fingerprint = parse_preflight(found.stdout)
        check_runtime_for(Path(binary), machine_arch(fingerprint["arch"]), name=profile.name,
                          uname_m=fingerprint["arch"])
        report = await ensure_uploaded(transport, profile, {"runtime": item}, fingerprint["disk_free_mb"],
                                       present=set(fingerprint["present"]))
    finally:
        await transport.close()
    return report["runtime"]


def setup_device(name: str, *, devices_file: str | None = None, runtime_file: str | None = None,
                 download: bool = False, accept_new_host_key: bool = False) -> dict:
    """``edgebnn devices setup``: install a runtime on device ``name`` and record it in the devices file's setup.

    Exactly one of ``runtime_file`` (a local lce_benchmark_model) and ``download`` (LCE's
    released one for the installed LCE) is given; either is checked against the board's
    architecture before it is placed.

    Returns:
        What :func:`install_runtime` placed (``path``, ``sha256``, ``uploaded``), with ``device``,
        ``binary`` (the local file) and ``saved`` (the setup record written).

    Raises:
        UsageError: neither or both of ``runtime_file`` and ``download``.
    """
    if bool(runtime_file) == bool(download):
        raise UsageError("give exactly one of --runtime FILE and --download")
    profile = get_profile(name, devices_file=devices_file)
    binary = download_runtime() if download else Path(runtime_file).resolve()
    placed = asyncio.run(install_runtime(profile, binary, accept_new_host_key=accept_new_host_key))
    record = {"runtime_file": str(binary), "sha256": placed["sha256"], "remote_path": placed["path"],
              "source": "download" if download else "file", "lce_version": lce_version() if download else None}
    saved = record_setup(devices_file or default_devices_file(), profile.name, record)
    return {**placed, "device": profile.name, "binary": binary, "saved": saved}
