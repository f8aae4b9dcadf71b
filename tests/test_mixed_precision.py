"""Mixed precision training steps: float16 (loss scaling) and bfloat16 on the tiny config, on one
replica and on two (MirroredStrategy over two logical CPU devices), with clipping on and off.

The mixed precision policy is global and logical devices need a fresh TensorFlow: each case
runs in a subprocess (tests/helpers/mixed_precision_steps.py)."""

import json
import os

import numpy as np
import pytest

from helpers import tiny

HELPERS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "helpers")


@pytest.mark.parametrize("replicas", [1, pytest.param(2, marks=pytest.mark.slow)])
def test_float16_and_bfloat16_training_reduces_the_loss(replicas, tiny_config, tmp_path):
    """float16 without clipping (the branch that handed un-summed gradients to the loss scaler
    on several replicas) and bfloat16 with clipping. Two replicas: about a minute on 2 cores
    (slow); the overflow test below covers them in the default run."""
    config, _ = tiny_config("mixed", modalities=("audio",), epochs=3, jit_compile="false")
    report = _run_helper(config, str(tmp_path / "mixed.json"), replicas, "train")
    assert set(report["runs"]) == {"float16_clip0", "bfloat16_clip1"}
    for name, run in report["runs"].items():
        assert run["replicas"] == replicas
        losses = np.asarray(run["loss"])
        assert len(losses) == 3 and np.all(np.isfinite(losses)), (name, losses)
        assert losses[-1] < losses[0], (name, losses)


@pytest.mark.parametrize("replicas", [1, 2])
def test_a_float16_overflow_on_one_replica_skips_the_step_everywhere(replicas, tiny_config,
                                                                      tmp_path):
    """The last replica's example overflows float16. The step must be skipped on every replica
    (no weight moves, none becomes NaN) and the loss scale lowered, with clipping off and on.
    Before the fix, two replicas without clipping applied replica 0's finite check to every
    replica and the overflowed gradients turned the weights to NaN."""
    config, _ = tiny_config("overflow")
    report = _run_helper(config, str(tmp_path / "overflow.json"), replicas, "overflow")
    for name in ("overflow_clip0", "overflow_clip1"):
        overflow = report[name]
        assert not overflow["loss_finite"], (name, overflow)
        assert overflow["weights_finite"] and not overflow["weights_changed"], (name, overflow)
        assert overflow["loss_scale"][1] < overflow["loss_scale"][0], (name, overflow)


def _run_helper(config, out, replicas, mode):
    result = tiny.run_python([os.path.join(HELPERS, "mixed_precision_steps.py"), config, out,
                              str(replicas), mode], timeout=400)
    assert result.returncode == 0, result.stderr[-3000:]
    with open(out) as handle:
        return json.load(handle)
