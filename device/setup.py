"""Install ``lce_benchmark_model`` for a board: a local file or LCE's released binary.

LCE publishes ``lce_benchmark_model_aarch64`` as an asset of each GitHub release
(``https://github.com/larq/compute-engine/releases/download/v<version>/lce_benchmark_model_aarch64``);
edgebnn fetches the one matching the installed converter, checks that it is a 64-bit ARM
ELF executable, caches it by version; a runtime (downloaded or given) is checked against the
board's architecture (the preflight's ``uname -m``), uploaded to the board's content-addressed
folder and its sha256 recorded beside the devices file, so later runs reuse it.
"""

from __future__ import annotations

import os
import struct
import urllib.error
import urllib.request
from pathlib import Path

from edgebnn import atomic
from edgebnn.errors import EdgebnnError, shell_command

RELEASES = "https://github.com/larq/compute-engine/releases/download"
ASSET = "lce_benchmark_model_aarch64"
EM_AARCH64 = 183


def release_url(version: str, *, base: str | None = None) -> str:
    """The release asset URL for LCE ``version`` (``EDGEBNN_LCE_RELEASES`` overrides the base)."""
    base = base or os.environ.get("EDGEBNN_LCE_RELEASES") or RELEASES
    return f"{base.rstrip('/')}/v{version}/{ASSET}"


# ELF e_machine -> the architecture `uname -m` names (normalized by :func:`machine_arch`).
ELF_MACHINES = {3: "i386", 40: "arm", 62: "x86_64", 183: "aarch64"}


def machine_arch(uname_m: str) -> str:
    """``uname -m`` in the names of :data:`ELF_MACHINES` (``arm64`` -> ``aarch64``, ``armv7l`` -> ``arm``)."""
    m = uname_m.strip().lower()
    if m in ("aarch64", "arm64", "armv8l"):
        return "aarch64"
    if m.startswith("arm"):
        return "arm"
    if m in ("amd64", "x86_64"):
        return "x86_64"
    if m in ("i386", "i486", "i586", "i686"):
        return "i386"
    return m


def elf_arch(path: Path) -> str | None:
    """The architecture an ELF executable is built for, or None when the file is not one."""
    try:
        with open(path, "rb") as f:
            header = f.read(20)
    except OSError:
        return None
    if len(header) < 20 or header[:4] != b"\x7fELF":
        return None
    endian = "<" if header[5] == 1 else ">"
    (machine,) = struct.unpack_from(f"{endian}H", header, 18)
    return ELF_MACHINES.get(machine, f"ELF machine {machine}")


def check_aarch64_executable(path: Path) -> None:
    """Check the ELF header: 64-bit, little-endian, executable (or PIE), machine AArch64.

    Raises:
        EdgebnnError: anything else (an HTML error page, an x86 binary, a truncated file).
    """
    header = Path(path).read_bytes()[:20]
    if len(header) < 20 or header[:4] != b"\x7fELF":
        raise EdgebnnError(f"{path} is not an ELF executable (starts with {header[:8]!r}): "
                           "give the lce_benchmark_model binary built for aarch64")
    elf_class, data = header[4], header[5]
    if elf_class != 2 or data != 1:
        raise EdgebnnError(f"{path} is a {'32' if elf_class == 1 else '?'}-bit or big-endian ELF: an aarch64 "
                           "(64-bit ARM, little-endian) build is needed")
    e_type, e_machine = struct.unpack_from("<HH", header, 16)
    if e_type not in (2, 3):
        raise EdgebnnError(f"{path} is an ELF of type {e_type}, not an executable")
    if e_machine != EM_AARCH64:
        raise EdgebnnError(f"{path} is built for ELF machine {e_machine}, not aarch64 ({EM_AARCH64}): "
                           "download lce_benchmark_model_aarch64")


def lce_version() -> str:
    from importlib import metadata

    return metadata.version("larq-compute-engine")


def download_runtime(*, version: str | None = None, cache: Path | None = None, timeout: float = 60.0) -> Path:
    """Fetch LCE's released ``lce_benchmark_model_aarch64`` (cached per version) and check it.

    Raises:
        EdgebnnError: the download failed or the file is not an aarch64 executable.
    """
    version = version or lce_version()
    from edgebnn.device.profiles import cache_dir

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


def check_runtime_for(path: Path, board_arch: str, *, name: str, uname_m: str = "") -> None:
    """Check that ``path`` is an ELF executable built for ``board_arch`` (a :func:`machine_arch` name).

    Raises:
        EdgebnnError: not an ELF executable, or built for another architecture (both named).
    """
    header = Path(path).read_bytes()[:20]
    if len(header) < 20 or header[:4] != b"\x7fELF":
        raise EdgebnnError(f"{path} is not an ELF executable (starts with {header[:8]!r}): give the "
                           f"lce_benchmark_model binary built for {board_arch or 'the board'}")
    endian = "<" if header[5] == 1 else ">"
    (e_type,) = struct.unpack_from(f"{endian}H", header, 16)
    if e_type not in (2, 3):
        raise EdgebnnError(f"{path} is an ELF of type {e_type}, not an executable")
    built = elf_arch(Path(path))
    if board_arch and built != board_arch:
        hint = (f" (`{shell_command('edgebnn', 'devices', 'setup', name, '--download')}` fetches LCE's aarch64 build)"
                if board_arch == "aarch64" else "")
        raise EdgebnnError(f"{path} is built for {built}, {name} is {board_arch}"
                           f"{f' (uname -m: {uname_m})' if uname_m else ''}: give the lce_benchmark_model built "
                           f"for {board_arch}{hint}")
    if board_arch == "aarch64" and (header[4] != 2 or header[5] != 1):
        raise EdgebnnError(f"{path} is a {'32' if header[4] == 1 else '?'}-bit or big-endian ELF: an aarch64 "
                           "(64-bit ARM, little-endian) build is needed")


async def install_runtime(profile, binary: Path, *, accept_new_host_key: bool = False) -> dict:
    """Check ``binary`` against the board's architecture (its preflight's ``uname -m``), then upload it
    to the board's content-addressed folder (skipped when already there).

    Returns:
        ``{"path", "sha256", "uploaded"}``.

    Raises:
        EdgebnnError: ``binary`` is not an executable for the board's architecture.
        DeviceError: the board cannot be reached or written.
    """
    from edgebnn.device.preflight import parse_preflight, preflight_argv
    from edgebnn.device.protocol import ensure_uploaded
    from edgebnn.device.ssh import SshTransport
    from edgebnn.device.transport import Upload
    from edgebnn.run.rundir import sha256_of

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
