"""Under MirroredStrategy every replica draws its own random numbers (dropout, modality dropout,
augmentation, ThreeFry masks), reproducibly for a seed (tfmm/models/replica_seeds.py).

Two logical CPU devices need their own TensorFlow: the draws run in a subprocess
(tests/helpers/replica_masks.py)."""

import json
import os

from helpers import tiny

HELPERS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "helpers")


def test_two_replicas_draw_different_masks_reproducibly(tmp_path):
    out = str(tmp_path / "masks.json")
    result = tiny.run_python([os.path.join(HELPERS, "replica_masks.py"), out], timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    with open(out) as handle:
        report = json.load(handle)
    assert report["strategy_name"] == "MirroredStrategy over 2 devices"  # for the run's log line
    for name in ("dropout", "modality_dropout", "random_shift", "threefry_seed"):
        draws = report["layers"][name]
        assert draws["differ"], (name, draws)  # replica 0 and replica 1 drew different numbers
        assert draws["reproducible"], (name, draws)  # the same seed draws them again
    # Each replica still drops at the configured rate (0.5 of 64 x 256 values).
    assert all(abs(kept - 0.5) < 0.02 for kept in report["layers"]["dropout"]["kept"])
    # Through the Trainer's step, the claim "N replicas compute the step of one replica on the
    # global batch" as it holds with random masks, in distribution: a batch of two copies of
    # one example, the weights a step moves are those some example's mask kept. One replica
    # (a mask per example) moves 1 - 0.5^2 = 0.75 of 2000; two replicas (one example each)
    # must move as many; sharing one mask they moved 0.5.
    trainer = report["trainer"]
    assert 0.7 < trainer["one_replica_updated_fraction"] < 0.8, trainer
    assert 0.7 < trainer["updated_fraction"] < 0.8, trainer
    assert abs(trainer["updated_fraction"] - trainer["one_replica_updated_fraction"]) < 0.05
