"""diagnose(): the cause of a failed run, read from the output in the tools' own wording.

The outputs below copy what the tools print: TFLite's benchmark tool (``INFO: `` lines on stdout,
``ERROR: `` lines on stderr, see tensorflow/lite/tools/logging.h), glibc's loader and the shells.
"""

from __future__ import annotations

import pytest

from edgebnn.device.diagnose import KINDS, Diagnosis, diagnose, lce_version_warning

HEAD = """\
INFO: STARTING!
INFO: Log parameter values verbosely: [0]
INFO: Num threads: [4]
INFO: Graph: [/tmp/edgebnn/models/quicknet.tflite]
INFO: #threads used for CPU inference: [4]
INFO: Loaded model /tmp/edgebnn/models/quicknet.tflite
"""
OK_TAIL = """\
INFO: The input model file size (MB): 4.15366
INFO: Initialized session in 2.513ms.
INFO: Running benchmark for at least 1 iterations and at least 0.5 seconds but terminate if exceeding 150 seconds.
INFO: count=24 first=24178 curr=20615 min=20518 max=24178 avg=20847.2 std=725

INFO: Running benchmark for at least 50 iterations and at least 1 seconds but terminate if exceeding 150 seconds.
INFO: count=50 first=20710 curr=20671 min=20501 max=21350 avg=20787.5 std=171

INFO: Inference timings in us: Init: 2513, First inference: 24178, Warmup (avg): 20847.2, Inference (avg): 20787.5
"""
FAILED = "ERROR: Benchmarking failed.\n"
RUNTIME = "./lce_benchmark_model"


def check(d: Diagnosis | None, kind: str, *words: str) -> Diagnosis:
    assert d is not None
    assert d.kind == kind and d.kind in KINDS
    assert d.fatal is (kind != "flag_ignored")
    assert len(d.message) < 450, d.message
    for word in words:
        assert word in d.message, (word, d.message)
    return d


# --- nothing wrong -------------------------------------------------------------------------------------------------

def test_a_clean_run_has_no_diagnosis():
    assert diagnose(0, HEAD + OK_TAIL, "") is None
    assert diagnose(0, (HEAD + OK_TAIL).replace("\n", "\r\n"), "", flags=["--num_threads=4"]) is None


def test_our_own_time_limit_is_left_to_the_caller():
    assert diagnose(None, HEAD, "") is None
    assert diagnose(None, HEAD, "\nkilled by signal KILL") is None  # our kill, not the OOM killer


# --- 1. runtime_start ----------------------------------------------------------------------------------------------

def test_a_missing_shared_library():
    err = (f"{RUNTIME}: error while loading shared libraries: libatomic.so.1: cannot open shared object file: "
           "No such file or directory\n")
    d = check(diagnose(127, "", err), "runtime_start", "libatomic.so.1", "Install")
    assert "error while loading shared libraries" in d.message


def test_a_glibc_too_old_names_every_version_it_asked_for():
    err = "\n".join([
        f"{RUNTIME}: /lib/aarch64-linux-gnu/libc.so.6: version `GLIBC_2.34' not found (required by {RUNTIME})",
        f"{RUNTIME}: /lib/aarch64-linux-gnu/libc.so.6: version `GLIBC_2.32' not found (required by {RUNTIME})",
        f"{RUNTIME}: /lib/aarch64-linux-gnu/libstdc++.so.6: version `GLIBCXX_3.4.29' not found (required by {RUNTIME})",
        f"{RUNTIME}: /lib/aarch64-linux-gnu/libstdc++.so.6: version `CXXABI_1.3.13' not found (required by {RUNTIME})",
        (f"{RUNTIME}: /lib/aarch64-linux-gnu/libc.so.6: version `GLIBC_2.34' not found (required by "
         "/lib/aarch64-linux-gnu/libstdc++.so.6)"),
    ])
    d = check(diagnose(127, "", err), "runtime_start", "CXXABI_1.3.13, GLIBCXX_3.4.29, GLIBC_2.32, GLIBC_2.34",
              "newer OS image", "built for the board", "libc.so.6", "libstdc++.so.6")
    assert d.message.count("GLIBC_2.34") == 2  # once in the list, once in the quoted line


def test_a_missing_program_interpreter():
    # An aarch64 glibc binary on a musl board: the file is there, its loader is not (BusyBox ash wording).
    d = check(diagnose(127, "", f"sh: {RUNTIME}: not found\n", arch="aarch64", os_bits=64), "runtime_start",
              "program interpreter", "musl")
    assert f"sh: {RUNTIME}: not found" in d.message
    check(diagnose(127, "", f"bash: line 1: {RUNTIME}: No such file or directory\n"), "runtime_start", "loader")


def test_a_missing_command():
    check(diagnose(127, "", "bash: line 1: lce_benchmark_model: command not found\n"), "runtime_start",
          "no program by that name", "device profile")


def test_not_executable():
    check(diagnose(126, "", f"sh: 1: {RUNTIME}: Permission denied\n"), "runtime_start", "chmod +x", "noexec")


# --- 2. wrong_arch -------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("err", [
    f"sh: {RUNTIME}: Exec format error",  # BusyBox ash
    f"sh: 1: {RUNTIME}: Exec format error",  # dash
    f"bash: line 1: {RUNTIME}: cannot execute binary file: Exec format error",  # bash
])
def test_exec_format_error_beats_status_126(err):
    d = check(diagnose(126, "", err + "\n", arch="armv7l", os_bits=32), "wrong_arch", "Exec format error",
              "armv7l", "32-bit", "aarch64")
    assert err.split(": ", 1)[1] in d.message


def test_exec_format_error_on_a_64_bit_board():
    check(diagnose(2, "", f"sh: 1: {RUNTIME}: Exec format error\n", arch="aarch64", os_bits=64), "wrong_arch",
          "another CPU architecture", "aarch64")


def test_an_aarch64_binary_on_a_32_bit_userland():
    # Raspberry Pi OS 32-bit on a Pi 4: the kernel is aarch64, the userland has no aarch64 loader.
    check(diagnose(127, "", f"bash: line 1: {RUNTIME}: No such file or directory\n", arch="aarch64", os_bits=32),
          "wrong_arch", "32-bit", "ld-linux-aarch64.so.1", "armv7")


def test_illegal_instruction():
    out = HEAD + "INFO: The input model file size (MB): 4.15366\n"
    err = f"bash: line 1:  4211 Illegal instruction     (core dumped) {RUNTIME} --graph=model.tflite\n"
    check(diagnose(132, out, err, arch="aarch64"), "wrong_arch", "Illegal instruction", "dot product", "Cortex-A53")
    check(diagnose(255, out, "\nkilled by signal ILL"), "wrong_arch", "killed by signal ILL")


# --- 3. unknown_op -------------------------------------------------------------------------------------------------

def test_an_unknown_builtin_op_version():
    err = ("ERROR: Didn't find op for builtin opcode 'CONV_2D' version '6'. An older version of this builtin might be "
           "supported. Are you using an old TFLite binary with a newer model?\n\n"
           "ERROR: Registration failed.\n\nERROR: Failed to initialize the interpreter\n" + FAILED)
    d = check(diagnose(1, HEAD, err, runtime_lce_version="0.13.0", converter_lce_version="0.16.0"), "unknown_op",
              "CONV_2D", "version 6", "LCE 0.13.0", "LCE 0.16.0", "at least as new as the converter")
    assert "Didn't find op for builtin opcode" in d.message


def test_an_unresolved_lce_op_in_plain_benchmark_model():
    out = HEAD + ("INFO: Failed to apply the default TensorFlow Lite delegate indexed at 0 because of unresolved ops "
                  "(which could be resolved by another delegate). Ignoring the error, and continuing anyway.\n")
    err = ("ERROR: Encountered unresolved custom op: LceBconv2d.\n"
           "See instructions: https://www.tensorflow.org/lite/guide/ops_custom\n"
           "ERROR: Node number 3 (LceBconv2d) failed to prepare.\n"
           "ERROR: Failed to allocate tensors!\n" + FAILED)
    check(diagnose(1, out, err), "unknown_op", "LceBconv2d", "plain TFLite", "Use lce_benchmark_model",
          "Encountered unresolved custom op: LceBconv2d.")


def test_an_unresolved_custom_op_with_lce_versions():
    err = ("ERROR: Encountered unresolved custom op: LceBconv2dV2.\r\n"
           "See instructions: https://www.tensorflow.org/lite/guide/ops_custom\r\n"
           "ERROR: Node number 12 (LceBconv2dV2) failed to prepare.\r\n" + FAILED)
    check(diagnose(1, HEAD, err, runtime_lce_version="v0.12.1", converter_lce_version="0.16.0"), "unknown_op",
          "LceBconv2dV2", "LCE 0.12.1", "LCE 0.16.0", "convert with the board's LCE 0.12.1")


def test_an_op_code_out_of_range():
    err = "ERROR: Op builtin_code out of range: 150. Are you using old TFLite binary with newer model?\n" + FAILED
    check(diagnose(1, HEAD, err), "unknown_op", "150")


# --- 4. delegate ---------------------------------------------------------------------------------------------------

def test_xnnpack_asked_for_and_refused():
    out = HEAD + "INFO: Use xnnpack: [1]\nINFO: Created TensorFlow Lite XNNPACK delegate for CPU.\n"
    out += "INFO: Going to apply 1 delegates one after another.\n"
    err = ("ERROR: Node number 41 (TfLiteXNNPackDelegate) failed to prepare.\n"
           "ERROR: Restored original execution plan after delegate application failure.\n"
           "ERROR: Failed to apply XNNPACK delegate.\n" + FAILED)
    d = check(diagnose(1, out, err, flags=["--num_threads=4", "--use_xnnpack=true"]), "delegate", "XNNPACK",
              "without --use-xnnpack")
    assert "TfLiteXNNPackDelegate" in d.message


def test_the_default_delegate_failing():
    err = ("ERROR: tensorflow/lite/kernels/conv.cc:349 input->dims->size != 4 (3 != 4)\n"
           "ERROR: Node number 3 (CONV_2D) failed to prepare.\n"
           "ERROR: Failed to apply the default TensorFlow Lite delegate indexed at 0.\n"
           "ERROR: Failed to allocate tensors!\n" + FAILED)
    check(diagnose(1, HEAD, err), "delegate", "default TensorFlow Lite delegate indexed at 0", "--use_xnnpack=false",
          "Node number 3 (CONV_2D)")


# --- 5. allocate ---------------------------------------------------------------------------------------------------

def test_a_node_that_fails_to_prepare():
    err = ("ERROR: tensorflow/lite/kernels/reshape.cc:92 num_input_elements != num_output_elements (1000 != 1001)\n"
           "ERROR: Node number 12 (RESHAPE) failed to prepare.\n\n"
           "ERROR: Failed to allocate tensors!\n" + FAILED)
    d = check(diagnose(1, HEAD, err, flags=["--use_xnnpack=false"]), "allocate", "Node 12 (RESHAPE)",
              "failed to prepare", "reshape.cc:92")
    assert "Benchmarking failed" not in d.message


def test_tensors_that_cannot_be_allocated():
    check(diagnose(1, HEAD, "ERROR: Failed to allocate tensors!\n" + FAILED), "allocate", "Failed to allocate tensors!")


# --- 6. model_file -------------------------------------------------------------------------------------------------

def test_a_model_that_cannot_be_opened():
    out = "INFO: STARTING!\nINFO: Log parameter values verbosely: [0]\nINFO: Graph: [/tmp/edgebnn/models/q.tflite]\n"
    err = ("ERROR: Could not open '/tmp/edgebnn/models/q.tflite'.\n"
           "ERROR: Failed to mmap model /tmp/edgebnn/models/q.tflite\n" + FAILED)
    check(diagnose(1, out, err), "model_file", "/tmp/edgebnn/models/q.tflite", "exists on the board")
    check(diagnose(1, out, "ERROR: Failed to mmap model /tmp/x.tflite\n" + FAILED), "model_file", "/tmp/x.tflite")


def test_a_file_that_is_not_a_flatbuffer():
    out = "INFO: STARTING!\nINFO: Graph: [/tmp/edgebnn/models/q.tflite]\n"
    err = ("ERROR: Model provided has model identifier 'ion ', should be 'TFL3'\n\n"
           "ERROR: Failed to mmap model /tmp/edgebnn/models/q.tflite\n" + FAILED)
    d = check(diagnose(1, out, err), "model_file", "/tmp/edgebnn/models/q.tflite", "sha256")
    assert "Git LFS" in d.message or "identifier 'ion '" in d.message
    check(diagnose(1, out, "ERROR: The model is not a valid Flatbuffer buffer\n" + FAILED), "model_file",
          "not a valid flatbuffer")


# --- 7. signal / 8. oom --------------------------------------------------------------------------------------------

def test_a_segfault():
    out = HEAD + "INFO: The input model file size (MB): 4.15366\nINFO: Initialized session in 2.513ms.\n"
    err = f"bash: line 1:  5123 Segmentation fault      (core dumped) {RUNTIME} --graph=q.tflite\n"
    check(diagnose(139, out, err), "signal", "SIGSEGV", "Segmentation fault")
    check(diagnose(139, out, ""), "signal", "SIGSEGV", "exit status 139")
    check(diagnose(255, out, "\nkilled by signal SEGV"), "signal", "SIGSEGV", "killed by signal SEGV")


def test_an_abort_and_a_bus_error():
    err = "FATAL: Inputs mismatch: Model inputs #:2 expected: 1\nAborted (core dumped)\n"
    check(diagnose(134, HEAD, err), "signal", "SIGABRT", "Inputs mismatch")
    check(diagnose(135, HEAD, "Bus error\n"), "signal", "SIGBUS")


def test_sigkill_that_is_not_our_time_limit_is_the_oom_killer():
    out = HEAD + "INFO: The input model file size (MB): 212.4\n"
    d = check(diagnose(137, out, "Killed\n", mem_available_mb=180, model_bytes=212_400_000), "oom",
              "out-of-memory", "212.4 MB", "180 MB", "dmesg", "fewer threads")
    assert "SIGKILL" in d.message
    check(diagnose(255, out, "\nkilled by signal KILL"), "oom", "dmesg")


# --- 9. flag_ignored -----------------------------------------------------------------------------------------------

def test_an_ignored_flag_with_exit_0():
    out = HEAD.replace("INFO: STARTING!\n", "INFO: STARTING!\nWARN: Unconsumed cmdline flags: --use_indirect_bgemm=true"
                                            " --use_reference_bconv=false\n") + OK_TAIL
    d = check(diagnose(0, out, "", flags=["--use_indirect_bgemm=true", "--use_reference_bconv=false"]),
              "flag_ignored", "--use_indirect_bgemm=true, --use_reference_bconv=false", "older than the flag")
    assert d.fatal is False
    check(diagnose(0, "STARTING!\nWARNING: Unconsumed cmdline flags: --num_runs=50\n" + OK_TAIL, ""), "flag_ignored",
          "--num_runs=50")


# --- 10. crash -----------------------------------------------------------------------------------------------------

def test_anything_else_keeps_the_most_informative_line():
    err = "ERROR: Failed to parse flag 'num_threads' against argv '--num_threads=four'\n" + FAILED
    d = check(diagnose(1, "INFO: STARTING!\n", err), "crash", "Failed to parse flag 'num_threads'", "status 1")
    assert "Benchmarking failed" not in d.message
    check(diagnose(3, "", "something odd happened\n\n"), "crash", "something odd happened")
    check(diagnose(1, "", ""), "crash", "no output")


def test_an_ignored_flag_is_mentioned_when_the_run_failed_for_another_reason():
    out = "INFO: STARTING!\nWARN: Unconsumed cmdline flags: --use_indirect_bgemm=true\n"
    check(diagnose(1, out, "ERROR: Failed to initialize the interpreter\n" + FAILED), "crash",
          "Failed to initialize the interpreter", "--use_indirect_bgemm=true")


# --- lce_version_warning -------------------------------------------------------------------------------------------

def test_lce_version_warning():
    assert lce_version_warning("0.16.0", "0.16.0") is None
    assert lce_version_warning("v0.16.0", "0.16") is None
    assert lce_version_warning(None, "0.16.0") is None
    assert lce_version_warning("0.16.0", None) is None
    older = lce_version_warning("0.13.0", "0.16.0")
    assert "0.13.0" in older and "0.16.0" in older and "older" in older
    newer = lce_version_warning("0.16.0", "0.13.0")
    assert "differs" in newer and "0.16.0" in newer
