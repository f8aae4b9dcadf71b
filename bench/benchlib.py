"""Shared helpers of the benchmarks: paths, side-by-side timing, medians and spreads, matmul peak.

House rule: a benchmark reports RATIOS of variants measured side by side in one process, with the
variants interleaved round by round (the order rotates every round), so a machine shared with
other jobs slows every variant alike. Absolute times are printed only next to their ratio.
"""

import argparse
import datetime
import os
import platform
import statistics
import sys
import time

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO_ROOT not in sys.path:  # `python bench/x.py` from anywhere finds tfmm uninstalled.
    sys.path.insert(0, REPO_ROOT)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# TensorFlow's oneDNN kernels, as train.py sets them (off by TensorFlow's default on CPUs
# without AVX-512); TF_ENABLE_ONEDNN_OPTS=0 on the command line measures without them.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")  # the CPU is what is measured


def repo_path(*parts) -> str:
    """A path relative to the repository root (e.g. the default of a `--data` argument); an
    absolute path is returned as it is."""
    return os.path.normpath(os.path.join(REPO_ROOT, *parts))


def parser(docstring: str, rounds: int = 0, quick: str = "") -> argparse.ArgumentParser:
    """The arguments the benchmarks share: the description (the docstring's first paragraph);
    `--rounds` when the script interleaves variants (`rounds`: its default); `--quick` when it
    has a shorter mode (`quick`: what that mode does)."""
    result = argparse.ArgumentParser(description=docstring.split("\n\n")[0])
    if rounds:
        result.add_argument("--rounds", type=int, default=rounds,
                            help="rounds of interleaved variants (ratios are per round)")
    if quick:
        result.add_argument("--quick", action="store_true", help=quick)
    return result


def machine_line() -> str:
    """One line: date, CPU model, cores, load average, library versions."""
    import keras
    import tensorflow as tf

    model = platform.processor() or "cpu"
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
    return (f"{datetime.datetime.now().isoformat(timespec='minutes')} | {model} | "
            f"{os.cpu_count()} cores | load average {load} | TF {tf.__version__}, "
            f"Keras {keras.__version__} | python {platform.python_version()}")


def interleave(variants: dict, rounds: int, log=print) -> dict:
    """Runs every variant once per round, rotating the order each round.

    Args:
        variants: name -> callable returning the seconds (or any measurement) of one run.
        rounds: rounds to run.

    Returns:
        name -> list of measurements, index = round (so round r of two variants is a pair).
    """
    names = list(variants)
    results = {name: [] for name in names}
    for round_index in range(rounds):
        shift = round_index % len(names)
        for name in names[shift:] + names[:shift]:
            results[name].append(variants[name]())
        log(f"  round {round_index + 1}/{rounds}: " + ", ".join(
            f"{name} {results[name][-1]:.4g}" for name in names))
    return results


def step_timer(trainer, batch, steps: int):
    """A function timing `steps` calls of `trainer.train_step(batch)`: seconds per step."""
    def run():
        begin = time.perf_counter()
        for _ in range(steps):
            float(trainer.train_step(batch)[0])
        return (time.perf_counter() - begin) / steps
    return run


def timed(function, *args) -> float:
    """Seconds one call takes (the caller makes sure the call waits for its result)."""
    started = time.perf_counter()
    function(*args)
    return time.perf_counter() - started


def median(values) -> float:
    return float(statistics.median(values))


def spread(values) -> str:
    """'median [min-max]' of a list, 3 significant digits."""
    return f"{median(values):.3g} [{min(values):.3g}-{max(values):.3g}]"


def paired_ratios(numerators, denominators) -> list:
    """Round-by-round ratios of two interleaved series (pairs share the machine's load)."""
    return [a / b for a, b in zip(numerators, denominators)]


def ratio_line(label: str, ratios) -> str:
    return (f"{label}: {median(ratios):.2f}x (per-round range {min(ratios):.2f}-"
            f"{max(ratios):.2f}, {len(ratios)} rounds)")


def matmul_peak(dtype_name: str, size: int = 2048, calls: int = 2):
    """A callable measuring the GFLOP/s of a size x size matmul in `dtype_name`.

    The reference "peak" for model FLOPs utilisation: call it in the same rounds as the model, so
    it sees the same load. Each measurement is the best of `calls` calls of TensorFlow's graph
    kernel and of XLA's, whichever is faster. Returns (measure, flops_per_matmul).
    """
    import tensorflow as tf

    dtype = tf.as_dtype(dtype_name)
    a = tf.cast(tf.random.normal((size, size)), dtype)
    b = tf.cast(tf.random.normal((size, size)), dtype)

    def product(x, y):  # the sum makes every element of the product needed
        return tf.reduce_sum(tf.cast(tf.matmul(x, y), tf.float32))

    kernels = [tf.function(product), tf.function(product, jit_compile=True)]
    for kernel in kernels:
        kernel(a, b).numpy()  # trace / compile
    flops = 2.0 * size ** 3

    def measure():
        best = min(timed(lambda: kernel(a, b).numpy()) for kernel in kernels
                   for _ in range(calls))
        return flops / best / 1e9

    return measure, flops
