"""What a runtime binary is built for, and whether the board can run it.

The board's architecture is what its preflight's ``uname -m`` says (:func:`machine_arch`
names it as ELF does); a binary's is its ELF header's ``e_machine``. A runtime edgebnn would
upload (``runtime_file``, or one ``edgebnn devices setup`` installs) is checked against the
board before it is sent: a wrong build is named, with the next step, instead of failing on the
board as an "exec format error".
"""

from __future__ import annotations

import struct
from pathlib import Path

from edgebnn.device.profiles import DeviceProfile
from edgebnn.errors import EdgebnnError, shell_command

EM_AARCH64 = 183
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


def runtime_file_problems(profile: DeviceProfile, fingerprint: dict) -> list[str]:
    """A local runtime to upload must be an executable built for the device's architecture."""
    if not profile.runtime_file:
        return []
    path = Path(profile.runtime_file).expanduser()
    if not path.is_file():
        return []  # uploads.device_files() names the missing file
    built, board = elf_arch(path), machine_arch(fingerprint.get("arch", ""))
    if built is None and path.read_bytes()[:2] == b"#!":
        return []  # a script: it runs wherever its interpreter does
    if built is None:
        return [f"runtime_file {str(path)!r} for {profile.name} is not an ELF executable: give the "
                "lce_benchmark_model built for the board"]
    if board and built != board:
        return [f"runtime_file {str(path)!r} is built for {built}, {profile.name} is {board} "
                f"(uname -m: {fingerprint.get('arch')}): give the lce_benchmark_model built for {board}"]
    return []
