"""Turn a failed runtime run into a cause: what went wrong, the line that shows it, and what to do next.

When ``lce_benchmark_model`` (TFLite's ``benchmark_model`` with LCE's ops registered) or edgebnn's
runner fails, its last line ("Benchmarking failed.") says nothing; the lines above it, or the shell's
and the dynamic loader's messages, or the exit status, do. ``diagnose`` reads them in a fixed order
(the most specific cause first) and returns one ``Diagnosis``.

The wording matched here was read in these upstream sources:

* tensorflow/tensorflow
  - tensorflow/lite/tools/logging.h: the ``INFO: `` / ``WARN: `` (stdout) and ``ERROR: `` / ``FATAL: ``
    (stderr) prefixes of the tools' log lines;
  - tensorflow/lite/tools/benchmark/benchmark_model.cc: ``Unconsumed cmdline flags: <flags>`` (logged
    as a warning, the run goes on);
  - tensorflow/lite/tools/command_line_flags.cc: ``Failed to parse flag '<name>' against argv '<arg>'``
    and how the unconsumed arguments are joined (space separated);
  - tensorflow/lite/tools/benchmark/benchmark_tflite_model.cc: ``Loaded model <path>``,
    ``Failed to mmap model <path>``, ``Failed to initialize the interpreter``,
    ``Failed to apply <name> delegate.`` (``XNNPACK`` for ``--use_xnnpack=true``),
    ``Failed to allocate tensors!``, ``Input tensor #<i> should have <n> dimensions!``;
  - tensorflow/lite/core/api/op_resolver.cc: ``Didn't find op for builtin opcode '<OP>' version '<n>'.
    An older version of this builtin might be supported. Are you using an old TFLite binary with a newer
    model?`` and ``Op builtin_code out of range: <n>. Are you using old TFLite binary with newer model?``;
  - tensorflow/lite/core/subgraph.cc: ``Encountered unresolved custom op: <name>.`` followed by
    ``See instructions: https://www.tensorflow.org/lite/guide/ops_custom``, the Flex message
    ``Select TensorFlow op(s), included in the given model, is(are) not supported by this interpreter.``,
    ``Node number <i> (<OP>) failed to prepare.`` (``ReportOpError``) and
    ``Restored original execution plan after delegate application failure.``;
  - tensorflow/lite/core/interpreter.cc: ``Failed to apply the default TensorFlow Lite delegate indexed
    at <i>.`` (fatal) versus the ``... because of unresolved ops ... Ignoring the error, and continuing
    anyway.`` variants (not fatal);
  - tensorflow/lite/mmap_allocation.cc: ``Could not open '<path>'.``;
  - tensorflow/lite/core/model_builder.cc: ``Model provided has model identifier '<4 chars>', should be
    'TFL3'`` and ``The model is not a valid Flatbuffer buffer``.
* larq/compute-engine
  - larq_compute_engine/tflite/benchmark/lce_benchmark_main.cc: ``STARTING!`` and ``Benchmarking failed.``;
  - larq_compute_engine/tflite/benchmark/lce_benchmark_tflite_model.cc: the LCE-only flags
    ``--use_reference_bconv`` and ``--use_indirect_bgemm``;
  - larq_compute_engine/tflite/kernels/lce_ops_register.h: the custom ops LCE registers
    (``LceQuantize``, ``LceDequantize``, ``LceBconv2d``, ``LceBMaxPool2d``).
* glibc's dynamic loader (elf/dl-load.c, elf/dl-version.c, as printed by ld.so):
  ``<prog>: error while loading shared libraries: <lib>: cannot open shared object file: No such file or
  directory`` and ``<prog>: <lib>: version `GLIBC_2.34' not found (required by <prog>)``.
* Shells: bash (``cannot execute binary file: Exec format error``, ``No such file or directory``,
  ``command not found``), dash (``sh: 1: <prog>: Exec format error`` / ``not found``) and BusyBox ash
  (``sh: <prog>: Exec format error`` / ``not found``); signal names as ``strsignal`` prints them
  ("Segmentation fault", "Illegal instruction", "Bus error", "Aborted", "Killed").
"""

from __future__ import annotations

import re
from dataclasses import dataclass

KINDS = ("runtime_start", "wrong_arch", "unknown_op", "delegate", "allocate", "model_file", "signal", "oom",
         "flag_ignored", "crash")


@dataclass(frozen=True)
class Diagnosis:
    kind: str  # one of KINDS
    message: str  # one or two sentences: the cause, the evidence (quoted from the output), the next step
    fatal: bool = True  # False only for "flag_ignored": the run went on but did not do what was asked


# Linux signal numbers (the boards are Linux; Python's signal module would give the host's numbering).
_SIGNALS = {1: "SIGHUP", 2: "SIGINT", 3: "SIGQUIT", 4: "SIGILL", 5: "SIGTRAP", 6: "SIGABRT", 7: "SIGBUS",
            8: "SIGFPE", 9: "SIGKILL", 10: "SIGUSR1", 11: "SIGSEGV", 12: "SIGUSR2", 13: "SIGPIPE", 14: "SIGALRM",
            15: "SIGTERM", 24: "SIGXCPU", 25: "SIGXFSZ", 31: "SIGSYS"}
_SIGNAL_WHAT = {"SIGSEGV": "a segmentation fault (an invalid memory access) in the runtime",
                "SIGABRT": "an abort: the runtime stopped itself on a failed check",
                "SIGBUS": "a bus error (a misaligned or truncated memory-mapped access, e.g. the model file changed "
                          "or the disk is full)",
                "SIGFPE": "an arithmetic fault (e.g. an integer division by zero) in the runtime",
                "SIGTERM": "a termination request from outside the runtime",
                "SIGHUP": "a hang-up: the session that started the runtime went away"}
# What shells print for a child killed by a signal (strsignal wording).
_SIGNAL_TEXT = {"Segmentation fault": "SIGSEGV", "Illegal instruction": "SIGILL", "Bus error": "SIGBUS",
                "Aborted": "SIGABRT", "Floating point exception": "SIGFPE", "Killed": "SIGKILL"}
# A shell's report of such a death: the text alone, after "<pid> " or "line 1: ", or before "(core dumped)".
_SHELL_SIGNAL = re.compile(r"(?:^|: |\d\s+)(?P<text>" + "|".join(_SIGNAL_TEXT) + r")(?:\s+\(core dumped\))?(?:\s|$)")
_ARM32 = re.compile(r"^(armv[4-8]\w*l|arm|armhf|armel|armv7\w*)$", re.IGNORECASE)
# Custom ops every lce_benchmark_model registers (lce_ops_register.h).
_LCE_OPS = {"LceQuantize", "LceDequantize", "LceBconv2d", "LceBMaxPool2d"}

_LOG_PREFIX = re.compile(r"^(?:INFO|WARN|WARNING|ERROR|FATAL|VERBOSE|DEBUG): ?")
_MISSING_LIB = re.compile(r"error while loading shared libraries: (?P<lib>[^:\s]+): cannot open shared object file")
_VERSION_NOT_FOUND = re.compile(r"(?:(?P<lib>\S+): )?version [`'‘](?P<version>[^'’`]+)['’] not found"
                                r"(?: \(required by (?P<by>[^)]+)\))?")
_EXEC_FORMAT = re.compile(r"exec format error|cannot execute binary file", re.IGNORECASE)
_NOT_FOUND = re.compile(r"(?P<what>command not found|No such file or directory|: not found)\s*$")
_BUILTIN_OP = re.compile(r"Didn't find op for builtin opcode '(?P<op>[^']+)' version '(?P<version>\d+)'")
_OP_OUT_OF_RANGE = re.compile(r"Op builtin_code out of range: (?P<code>-?\d+)")
_CUSTOM_OP = re.compile(r"Encountered unresolved custom op: (?P<op>[^\s.]+)")
_FLEX = re.compile(r"Select TensorFlow op\(s\).*not supported|Regular TensorFlow ops are not supported")
_DELEGATE = re.compile(r"Failed to apply (?:the )?(?P<name>.+?) delegate(?: indexed at \d+)?\.?$"
                       r"|Error in applying the default TensorFlow Lite delegate"
                       r"|Restored original execution plan after delegate application failure"
                       r"|Could not apply delegate")
_NODE = re.compile(r"Node number (?P<node>\d+) \((?P<op>[^)]+)\) failed to (?P<step>prepare|invoke)")
_ALLOCATE = re.compile(r"Failed to allocate tensors|Input tensor #\d+ should have \d+ dimensions")
_KERNEL_CHECK = re.compile(r"^\S+\.(?:cc|h|cpp):\d+ ")  # e.g. "tensorflow/lite/kernels/conv.cc:349 ..."
_COULD_NOT_OPEN = re.compile(r"Could not open '(?P<path>[^']*)'")
_MMAP = re.compile(r"Failed to mmap model (?P<path>.+)$|Failed to read model (?P<path2>\S+?):")
_IDENTIFIER = re.compile(r"Model provided has model identifier '(?P<ident>.{0,4})', should be '(?P<want>\w+)'")
_INVALID_MODEL = re.compile(r"The model is not a valid Flatbuffer buffer|The model allocation is null/empty"
                            r"|Model provided must have at least 7 bytes")
_GRAPH = re.compile(r"^Graph: \[(?P<path>[^\]]*)\]")
_UNCONSUMED = re.compile(r"Unconsumed cmdline flags:\s*(?P<flags>.*\S)")
_SSH_SIGNAL = re.compile(r"^killed by signal (?:SIG)?(?P<name>[A-Z0-9]+)")
_OUTPUT_LCE = re.compile(r"^LCE version: \[(?P<version>[^\]]+)\]")
_BORING = ("Benchmarking failed.", "STARTING!")


def _lines(stdout: str, stderr: str) -> list[str]:
    """Every non-empty line of both streams, stripped of ``\\r`` and of TFLite's log prefixes."""
    out = []
    for line in (stdout or "").splitlines() + (stderr or "").splitlines():
        line = _LOG_PREFIX.sub("", line.replace("\r", "").strip()).strip()
        if line:
            out.append(line)
    return out


def _q(line: str, limit: int = 140) -> str:
    line = line.strip()
    return '"' + (line if len(line) <= limit else line[: limit - 1] + "…") + '"'


def _find(pattern: re.Pattern, lines: list[str]) -> tuple[re.Match, str] | tuple[None, None]:
    for line in lines:
        m = pattern.search(line)
        if m:
            return m, line
    return None, None


def _version_key(version: str) -> tuple[int, ...]:
    """(major, minor, patch): "0.16" and "0.16.0" compare equal."""
    numbers = [int(n) for n in re.findall(r"\d+", version)[:3]]
    return tuple(numbers + [0] * (3 - len(numbers))) if numbers else ()


def _norm(version: str | None) -> str | None:
    v = (version or "").strip()
    return v[1:] if v[:1] in "vV" and v[1:2].isdigit() else (v or None)


def _signal_of(exit_status: int | None, lines: list[str]) -> tuple[str | None, str | None]:
    """The signal that ended the run (``SIGSEGV``...) and the line that shows it, if any."""
    for line in lines:
        m = _SSH_SIGNAL.match(line)
        if m:
            return "SIG" + m["name"], line
    name = _SIGNALS.get(exit_status - 128) if exit_status is not None and 128 < exit_status < 160 else None
    for line in lines:
        m = _SHELL_SIGNAL.search(line)
        if m and (name is None or name == _SIGNAL_TEXT[m["text"]]):
            return _SIGNAL_TEXT[m["text"]], line
    return name, None


def _arm32(arch: str, os_bits: int | None) -> bool:
    return os_bits == 32 or bool(_ARM32.match(arch or ""))


def _saw(arch: str, os_bits: int | None) -> str:
    parts = [f"arch {arch}" if arch else "", f"{os_bits}-bit userland" if os_bits else ""]
    return ", ".join(p for p in parts if p)


def _runtime_start(lines) -> Diagnosis | None:
    versions = sorted({m["version"] for line in lines for m in _VERSION_NOT_FOUND.finditer(line)},
                      key=lambda v: (re.sub(r"[\d.]+$", "", v), _version_key(v)))
    if versions:
        _, line = _find(_VERSION_NOT_FOUND, lines)
        libs = sorted({m2["lib"].rsplit("/", 1)[-1] for ln in lines for m2 in _VERSION_NOT_FOUND.finditer(ln)
                       if m2["lib"]})
        return Diagnosis("runtime_start", (
            f"The runtime needs newer system libraries than the board has: {', '.join(versions)} not found"
            f"{' in ' + ', '.join(libs) if libs else ''} ({_q(line, 120)}). Flash a newer OS image, or use a "
            "runtime built for the board (its toolchain/sysroot, or statically linked)."))
    libs = sorted({m["lib"] for line in lines for m in _MISSING_LIB.finditer(line)})
    if libs:
        _, line = _find(_MISSING_LIB, lines)
        return Diagnosis("runtime_start", (
            f"The runtime cannot start: shared librar{'ies' if len(libs) > 1 else 'y'} {', '.join(libs)} missing on "
            f"the board ({_q(line, 130)}). Install the package that provides {'them' if len(libs) > 1 else 'it'}, "
            "or use a runtime built for this OS or statically linked."))
    return None


def _wrong_arch(exit_status, lines, arch, os_bits, signal_name, signal_line) -> Diagnosis | None:
    m, line = _find(_EXEC_FORMAT, lines)
    if m:
        saw = _saw(arch, os_bits)
        if _arm32(arch, os_bits):
            why = (f"the runtime is not a binary this board can execute: the preflight saw {saw}, so an aarch64 "
                   "build cannot run here")
            step = "Use a 32-bit ARM (armv7) build of the runtime, or a 64-bit OS image."
        else:
            why = ("the runtime was built for another CPU architecture" +
                   (f" than the board's ({saw})" if saw else ""))
            step = f"Copy the runtime built for {arch or 'the board'} (check it with `file`)."
        return Diagnosis("wrong_arch", f"Exec format error: {why} ({_q(line, 110)}). {step}")
    if signal_name == "SIGILL":
        evidence = signal_line or f"exit status {exit_status}"
        saw = _saw(arch, os_bits)
        return Diagnosis("wrong_arch", (
            f"Illegal instruction ({_q(evidence, 110)}): the board's CPU{' (' + saw + ')' if saw else ''} lacks an "
            "instruction set extension the runtime was built for, e.g. ARMv8.2 dot product on a Cortex-A53. "
            "Rebuild the runtime for the board's CPU (e.g. -march=armv8-a) or use a generic aarch64 build."))
    return None


def _not_started(exit_status, lines, arch, os_bits) -> Diagnosis | None:
    """Status 126/127 from the shell: the program was not found, not executable, or its loader is missing."""
    if exit_status == 127:
        m, line = _find(_NOT_FOUND, lines)
        line = line or (lines[-1] if lines else "exit status 127")
        if m and m["what"] == "command not found":
            return Diagnosis("runtime_start", (
                f"The shell found no program by that name ({_q(line, 120)}). Check the runtime path in the device "
                "profile, or install the runtime on the board."))
        if _arm32(arch, os_bits):
            return Diagnosis("wrong_arch", (
                f"The shell could not start the runtime ({_q(line, 100)}, status 127) and the preflight saw "
                f"{_saw(arch, os_bits)}: an aarch64 binary's loader (/lib/ld-linux-aarch64.so.1) does not exist on a "
                "32-bit userland. Use a 32-bit ARM (armv7) build of the runtime, or a 64-bit OS image."))
        return Diagnosis("runtime_start", (
            f"The shell could not start the runtime ({_q(line, 110)}, status 127). If the file exists on the board, "
            "its program interpreter (the dynamic loader named in the ELF) is missing, e.g. a glibc build on a musl "
            "board: use a static runtime or one built for the board's C library."))
    if exit_status == 126:
        line = next((ln for ln in lines if "ermission denied" in ln), lines[-1] if lines else "exit status 126")
        return Diagnosis("runtime_start", (
            f"The runtime was found but could not be executed ({_q(line, 120)}, status 126). Make it executable "
            "(chmod +x) and check that its filesystem is not mounted noexec."))
    return None


def _lce_versions(runtime: str | None, converter: str | None) -> str:
    """Like ' (runtime LCE 0.13.0, converter LCE 0.16.0)', naming only the versions that are known."""
    known = [f"{who} LCE {v}" for who, v in (("runtime", runtime), ("converter", converter)) if v]
    return f" ({', '.join(known)})" if known else ""


def _unknown_op(lines, runtime_lce, converter_lce) -> Diagnosis | None:
    versions = _lce_versions(runtime_lce, converter_lce)
    newer = (f"a runtime at least as new as the converter (LCE {converter_lce})" if converter_lce
             else "a runtime at least as new as the converter")
    board = f" LCE {runtime_lce}" if runtime_lce else " LCE version"
    m, line = _find(_CUSTOM_OP, lines)
    if m:
        op = m["op"]
        if op.startswith("Lce") and op in _LCE_OPS and not runtime_lce:
            return Diagnosis("unknown_op", (
                f"The runtime does not know LCE's custom op {op} ({_q(line, 80)}): it is plain TFLite "
                f"benchmark_model, which registers no LCE ops{versions}. Use lce_benchmark_model (built from "
                "larq/compute-engine)."))
        return Diagnosis("unknown_op", (
            f"The runtime has no kernel for custom op {op} ({_q(line, 80)}){versions}. Use {newer}, or convert "
            f"with the board's{board}."))
    m, line = _find(_BUILTIN_OP, lines)
    if m:
        return Diagnosis("unknown_op", (
            f"The runtime lacks builtin op {m['op']} version {m['version']} ({_q(line, 90)}): its TFLite is older than "
            f"the converter's{versions}. Use {newer}, or convert with the board's{board}."))
    m, line = _find(_OP_OUT_OF_RANGE, lines)
    if m:
        return Diagnosis("unknown_op", (
            f"The model uses builtin op code {m['code']}, which the runtime's TFLite does not know ({_q(line, 90)})"
            f"{versions}: the runtime is older than the converter. Use {newer}, or convert with the board's{board}."))
    m, line = _find(_FLEX, lines)
    if m:
        return Diagnosis("unknown_op", (
            f"The model contains Select TensorFlow (Flex) ops, which lce_benchmark_model cannot run ({_q(line, 90)}). "
            "Convert without SELECT_TF_OPS so that only TFLite builtins and LCE ops remain."))
    return None


def _delegate(lines, flags) -> Diagnosis | None:
    for i, line in enumerate(lines):
        node = _NODE.search(line)
        if node and "delegate" in node["op"].lower():  # "Node number 40 (TfLiteXNNPackDelegate) failed to prepare."
            name = "XNNPACK" if "xnnpack" in node["op"].lower() else node["op"]
        else:
            m = _DELEGATE.search(line)
            if not m or "Ignoring the error" in line:
                continue
            name = m["name"] or ""
        # Only XNNPACK is a CPU delegate: the default delegate and an unnamed one are XNNPACK on these boards.
        xnnpack = not name or "XNNPACK" in name.upper() or "default" in name
        if xnnpack and any(f in ("--use_xnnpack=true", "--use_xnnpack=1") for f in flags):
            step = "Run without --use-xnnpack (the runtime's --use_xnnpack=true)."
        elif xnnpack:
            step = "This is TFLite's default XNNPACK delegate: pass --use_xnnpack=false to the runtime to turn it off."
        else:
            step = f"Run without the {name} delegate."
        before = next((ln for ln in reversed(lines[:i]) if _NODE.search(ln) or _KERNEL_CHECK.match(ln)), None)
        why = f", after {_q(before, 80)}" if before else ""
        what = "XNNPACK" if xnnpack else name
        return Diagnosis("delegate", f"The {what} delegate could not be applied ({_q(line, 90)}{why}). {step}")
    return None


def _allocate(lines) -> Diagnosis | None:
    m, line = _find(_NODE, lines)
    if m:
        idx = lines.index(line)
        check = next((ln for ln in reversed(lines[:idx]) if _KERNEL_CHECK.match(ln)), None)
        because = f", after {_q(check, 100)}" if check else ""
        return Diagnosis("allocate", (
            f"Node {m['node']} ({m['op']}) failed to {m['step']} ({_q(line, 70)}{because}): its kernel rejects the "
            "tensors' shapes or types. Check the input shapes, and convert with the board's LCE/TFLite version."))
    m, line = _find(_ALLOCATE, lines)
    if m:
        return Diagnosis("allocate", (
            f"The runtime could not allocate the model's tensors ({_q(line, 90)}). Check the input shapes and the "
            "free memory on the board, and convert with the board's LCE/TFLite version."))
    return None


def _model_file(lines) -> Diagnosis | None:
    graph = next((m["path"] for m in map(_GRAPH.match, lines) if m), None)
    m, line = _find(_IDENTIFIER, lines)
    if m:
        lfs = " (a text file starting 'version ': likely a Git LFS pointer)" if m["ident"] == "ion " else ""
        return Diagnosis("model_file", (
            f"{graph or 'The model'} is not a TFLite flatbuffer: identifier '{m['ident']}', not '{m['want']}'{lfs} "
            f"({_q(line, 90)}). Upload the converted .tflite again and compare its sha256."))
    m, line = _find(_INVALID_MODEL, lines)
    if m:
        return Diagnosis("model_file", (
            f"{graph or 'The model'} is not a valid flatbuffer ({_q(line, 80)}): truncated or corrupt. Upload the "
            "converted .tflite again and compare its sha256."))
    m, line = _find(_COULD_NOT_OPEN, lines)
    if m is None:
        m, line = _find(_MMAP, lines)
    if m:
        path = m.groupdict().get("path") or m.groupdict().get("path2") or graph or "the model"
        return Diagnosis("model_file", (
            f"The runtime cannot open the model {path} ({_q(line, 110)}). Check that the file exists on the board "
            "at that path and is readable (the upload may have failed or gone to another directory)."))
    return None


def _signal(exit_status, lines, error_lines, signal_name, signal_line, mem_available_mb,
            model_bytes) -> Diagnosis | None:
    if signal_name is None:
        return None
    evidence = signal_line or f"exit status {exit_status}"
    if signal_name == "SIGKILL":
        seen = []
        if model_bytes is not None:
            seen.append(f"model {model_bytes / 1e6:.1f} MB")
        if mem_available_mb is not None:
            seen.append(f"{mem_available_mb} MB available before the run")
        return Diagnosis("oom", (
            f"The runtime was killed with SIGKILL ({_q(evidence, 60)}) before edgebnn's time limit: most often the "
            f"kernel's out-of-memory killer{' (preflight: ' + ', '.join(seen) + ')' if seen else ''}. Check `dmesg` "
            "on the board; use fewer threads or a smaller model, or free memory on the board."))
    # The last ERROR/FATAL line (a failed TFLITE_TOOLS_CHECK logs FATAL, then aborts), else a kernel check.
    fatal = next((ln for ln in reversed(error_lines) if ln not in _BORING), None) or next(
        (ln for ln in reversed(lines) if _KERNEL_CHECK.match(ln)), None)
    what = _SIGNAL_WHAT.get(signal_name, "a fatal signal")
    before = f"; the last message before it: {_q(fatal, 90)}" if fatal else ""
    return Diagnosis("signal", (
        f"The runtime was killed by {signal_name}, {what} ({_q(evidence, 70)}{before}). Run it by hand on the board "
        "to reproduce; try another thread count or runtime build, and report it with the model if it persists."))


def _flag_ignored(lines, flags, runtime_lce) -> Diagnosis | None:
    m, line = _find(_UNCONSUMED, lines)
    if not m:
        return None
    ignored = m["flags"].split()
    names = ", ".join(ignored)
    runtime = f" (LCE {runtime_lce})" if runtime_lce else ""
    return Diagnosis("flag_ignored", (
        f"The runtime{runtime} did not recognise {names} ({_q(line, 100)}): it is older than the flag, so the run "
        "went on without doing what the flag asks. Use a newer runtime that knows the flag, or drop it."), fatal=False)


def _crash(exit_status, lines, error_lines, ignored_flags: list[str]) -> Diagnosis:
    """Keep the most informative line: TFLite's first ERROR/FATAL line, else the last line."""
    useful = [ln for ln in lines if ln not in _BORING and not _SSH_SIGNAL.match(ln)]
    line = next((ln for ln in error_lines if ln not in _BORING), useful[-1] if useful else "no output")
    message = f"The runtime exited with status {exit_status}: {_q(line, 200)}. The full output is saved with the result."
    if ignored_flags:
        message += f" It also ignored {', '.join(ignored_flags)}: it is older than the flag."
    return Diagnosis("crash", message)


def diagnose(exit_status: int | None, stdout: str, stderr: str, *, arch: str = "", os_bits: int | None = None,
             mem_available_mb: int | None = None, model_bytes: int | None = None,
             runtime_lce_version: str | None = None, converter_lce_version: str | None = None,
             flags: list[str] = ()) -> Diagnosis | None:
    """None when the output shows nothing wrong (exit 0 and no ignored flag).

    ``exit_status`` is what a POSIX shell reports: None when edgebnn killed the run at its time limit (the
    caller reports the timeout; a cause is returned only if the output shows one), 126/127 when the shell
    could not start the program, 128+N when signal N ended it; ssh's ``killed by signal <NAME>`` line in
    ``stderr`` counts as that signal.
    """
    lines = _lines(stdout, stderr)
    error_lines = _lines("", "\n".join(ln for ln in (stdout or "").splitlines() + (stderr or "").splitlines()
                                       if re.match(r"^\s*(?:ERROR|FATAL): ", ln)))
    runtime_lce = _norm(runtime_lce_version) or next(
        (m["version"] for m in map(_OUTPUT_LCE.match, lines) if m), None)
    converter_lce = _norm(converter_lce_version)
    flags = list(flags or ())
    ignored = _flag_ignored(lines, flags, runtime_lce)
    if exit_status == 0:
        return ignored
    signal_name, signal_line = _signal_of(exit_status, lines)
    if exit_status is None and signal_name == "SIGKILL":
        signal_name, signal_line = None, None  # our own time limit, not the OOM killer
    found = (_runtime_start(lines)
             or _wrong_arch(exit_status, lines, arch, os_bits, signal_name, signal_line)
             or _not_started(exit_status, lines, arch, os_bits)
             or _model_file(lines)
             or _unknown_op(lines, runtime_lce, converter_lce)
             or _delegate(lines, flags)
             or _allocate(lines)
             or _signal(exit_status, lines, error_lines, signal_name, signal_line, mem_available_mb, model_bytes))
    if found is not None:
        return found
    if exit_status is None:  # our time limit: the caller reports it; an ignored flag is still worth saying
        return ignored
    m = _find(_UNCONSUMED, lines)[0]
    return _crash(exit_status, lines, error_lines, m["flags"].split() if m else [])


def lce_version_warning(runtime_lce_version: str | None, converter_lce_version: str | None) -> str | None:
    """A warning when the runtime's LCE version differs from the one that converted the flatbuffer."""
    runtime, converter = _norm(runtime_lce_version), _norm(converter_lce_version)
    if not runtime or not converter or runtime == converter:
        return None
    if _version_key(runtime) and _version_key(runtime) == _version_key(converter):
        return None  # "0.16" and "0.16.0" are the same release
    if _version_key(runtime) < _version_key(converter):
        return (f"The runtime's LCE {runtime} is older than the LCE {converter} that converted the flatbuffer: ops "
                f"or op versions the converter emits may be missing. Use a runtime built from LCE {converter}, or "
                f"convert with LCE {runtime}.")
    return (f"The runtime's LCE {runtime} differs from the LCE {converter} that converted the flatbuffer: the "
            f"figures are for LCE {runtime}'s kernels. Match the versions for comparable results.")
