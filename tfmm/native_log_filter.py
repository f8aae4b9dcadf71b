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

Only the command-line scripts install it (`python train.py`, `python evaluate.py`); importing
tfmm changes nothing. Nothing here imports TensorFlow.
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
    """Drops `is_noise` lines from everything written to descriptor 2 by this process.

    A thread forwards the other lines as they come; at exit the descriptor is restored and the
    thread drained, so the last lines (a traceback, an `error:` line) are never lost.
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
        return
    os.dup2(write_end, 2)
    os.close(write_end)

    def forward():
        with os.fdopen(read_end, "rb") as pipe:
            for line in pipe:
                if not is_noise(line.decode("utf-8", "replace"), min_level):
                    os.write(original, line)

    thread = threading.Thread(target=forward, name="native-stderr-filter", daemon=True)
    thread.start()

    def restore():
        try:
            sys.stderr.flush()
        except (OSError, ValueError):
            pass
        os.dup2(original, 2)  # closes the pipe's last write end: the thread sees its end
        thread.join(timeout=5)

    atexit.register(restore)
