"""Keeps TensorFlow's native start-up noise off a CPU user's terminal.

TensorFlow's C++ libraries write lines such as "oneDNN custom operations are on", "Could not find
cuda drivers", "failed call to cuInit" (as an error) and "This TensorFlow binary is optimized to
use available CPU instructions" straight to file descriptor 2, before `TF_CPP_MIN_LOG_LEVEL` can
take effect (absl logs everything until it is initialised). They say nothing a tfmm user can act
on, and they came before tfmm's own first line. Native log lines below `TF_CPP_MIN_LOG_LEVEL`
(default here 2: info and warnings, such as "XLA service ... initialized") are printed too, since
absl ignores the variable until it is initialised. `filter_native_stderr` routes descriptor 2
through a pipe and drops those two kinds of lines; everything else (Python tracebacks, tfmm's
`error:` lines, TensorFlow's native errors) passes through unchanged.

Only the command-line scripts use it (`python train.py`, `python evaluate.py`), and only for
TensorFlow's start-up (`quiet_tensorflow_start_up`: the import and the first look at the
devices, where every such line comes from); then descriptor 2 is the terminal again, so a native
error or a fatal abort's last line reaches it directly (a filtering thread could not forward the
last words of a process that aborts). Importing tfmm changes nothing. Nothing here imports
TensorFlow at module level.
"""

import atexit
import os
import re
import sys
import threading

NOISE = re.compile(
    r"All log messages before absl::InitializeLog\(\) is called"
    r"|\] oneDNN custom operations are on"
    r"|cudart_stub\.cc:\d+\] Could not find cuda drivers"
    r"|\] failed call to cuInit"
    r"|cpu_feature_guard\.cc:\d+\] This TensorFlow binary is optimized"
    r"|^To enable the following instructions: .* in other operations, rebuild TensorFlow"
    r"|\] oneDNN supports DT_INT64 only on platforms with AVX-512"
    r"|Unable to register cu(DNN|FFT|BLAS) factory"
    r"|computation_placer\.cc:\d+\] computation placer already registered")

# absl's native line prefix: severity letter, date, time, thread id, file:line]
NATIVE_LINE = re.compile(r"^([IWEF])\d{4} [\d:.]+\s+\d+ [^\]\s]+:\d+\] ")
SEVERITIES = "IWEF"  # TF_CPP_MIN_LOG_LEVEL 0..3 shows these and above


def is_noise(line: str, min_level: int) -> bool:
    """True for a known start-up line, or a native log line below `min_level`."""
    if NOISE.search(line):
        return True
    native = NATIVE_LINE.match(line)
    return bool(native) and SEVERITIES.index(native.group(1)) < min_level


def quiet_environment():
    """Sets TensorFlow's log level before it is imported (the user's own setting wins)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def filter_native_stderr():
    """Drops `is_noise` lines from everything written to descriptor 2 by this process, until the
    returned function is called (or the process exits).

    A thread forwards the other lines as they come; restoring the descriptor drains the thread,
    so the lines written so far (a traceback, an `error:` line) are never lost.

    Returns:
        A function that restores descriptor 2 (None when there was nothing to redirect).
    """
    quiet_environment()
    try:
        min_level = int(os.environ["TF_CPP_MIN_LOG_LEVEL"])
    except ValueError:
        min_level = 0
    try:
        sys.stderr.flush()
        original = os.dup(2)
        read_end, write_end = os.pipe()
    except (OSError, AttributeError):  # no descriptors to redirect (an embedded interpreter)
        return None
    os.dup2(write_end, 2)
    os.close(write_end)

    def forward():
        with os.fdopen(read_end, "rb") as pipe:
            for line in pipe:
                if not is_noise(line.decode("utf-8", "replace"), min_level):
                    os.write(original, line)

    thread = threading.Thread(target=forward, name="native-stderr-filter", daemon=True)
    thread.start()

    restored = []

    def restore():
        if restored:
            return
        restored.append(True)
        try:
            sys.stderr.flush()
        except (OSError, ValueError):
            pass
        os.dup2(original, 2)  # closes the pipe's last write end: the thread sees its end
        thread.join(timeout=5)
        os.close(original)

    atexit.register(restore)
    return restore


def quiet_tensorflow_start_up():
    """Imports TensorFlow and looks at the devices (where the start-up lines are printed) with
    `is_noise` lines dropped, then gives descriptor 2 back to the terminal."""
    restore = filter_native_stderr()
    try:
        import tensorflow as tf  # pylint: disable=import-outside-toplevel

        tf.config.list_physical_devices()
    finally:
        if restore is not None:
            restore()
