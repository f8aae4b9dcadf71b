"""`train.py --target-epsilon E` (tfmm/training/privacy_target.py): the noise multiplier it
picks spends E over the run's planned steps, as the run's own report says and as `dp-accounting`
computes independently from the saved config.json and run_info.json; the error cases.

Runs go through `train.main` in this process on tiny configs (tests/helpers/tiny.py).
"""

import json
import logging
import os
import re

import pytest
from dp_accounting import dp_event
from dp_accounting.rdp import rdp_privacy_accountant

from helpers import tiny


def _train_main(arguments, capsys):
    """`python train.py ARGUMENTS` in this process: (exit code, stdout, stderr lines)."""
    import train  # the repository root is on sys.path (conftest.py)

    capsys.readouterr()
    code = train.main(arguments)
    captured = capsys.readouterr()
    return code, captured.out, captured.err.splitlines()


def _dp_accounting_epsilon(sigma, q, steps, delta):
    accountant = rdp_privacy_accountant.RdpAccountant()
    accountant.compose(dp_event.SelfComposedDpEvent(
        dp_event.PoissonSampledDpEvent(q, dp_event.GaussianDpEvent(sigma)), steps))
    return accountant.get_epsilon(delta)


def test_target_epsilon_is_spent_over_the_planned_steps(tiny_preset, tmp_path, capsys):
    """The quickstart's setting in small: frozen text and audio encoders on cached features,
    dropout, XLA as configured by default. The manifest's varied text lengths with length buckets
    give the uncached pipeline fewer full batches than the cached one the Trainer reads
    (3 against 4 a epoch), so a plan counted on the wrong pipeline misses the target."""
    manifest = tiny.write_manifest(str(tmp_path / "data"), num_rows=36, varied_texts=True,
                                   modalities=("text", "audio"))
    run_dir = str(tmp_path / "run")
    values = tiny.tiny_config(tiny_preset, manifest, run_dir, modalities=("text", "audio"),
                              data={"text_length_buckets": [4]},
                              model={"freeze_text_encoder": True, "freeze_audio_encoder": True,
                                     "dropout": 0.1},
                              epochs=2, cache_frozen_features=True, dp_l2_clip=1.0)
    config = tiny.write_config(str(tmp_path / "dp.json"), values)
    code, out, stderr = _train_main([config, "--target-epsilon", "4.5"], capsys)
    assert code == 0, stderr[-20:]

    saved = json.load(open(os.path.join(run_dir, "config.json")))
    info = json.load(open(os.path.join(run_dir, "run_info.json")))
    history = json.load(open(os.path.join(run_dir, "history.json")))
    sigma = saved["training"]["dp_noise_multiplier"]
    assert f"training.dp_noise_multiplier = {sigma:.6g}" in out
    examples, steps_per_epoch = info["train_examples"], info["steps_per_epoch"]
    assert (examples, steps_per_epoch) == (36, 4)
    batch = saved["data"]["batch_size"]
    independent = _dp_accounting_epsilon(sigma, batch / examples, 2 * steps_per_epoch,
                                         1 / examples)
    assert history[-1]["epsilon"] == pytest.approx(independent, rel=1e-9)
    assert 4.5 * (1 - 1e-3) <= history[-1]["epsilon"] <= 4.5  # the target, from below
    # The smallest such noise: a little less spends more than the target.
    assert _dp_accounting_epsilon(sigma - 2e-4, batch / examples, 8, 1 / examples) > 4.5


def test_dropped_renyi_orders_do_not_flood_the_log(caplog):
    """dp-accounting leaves out orders whose term does not converge (small orders at sigma < 1),
    warning once per order and epsilon: a --target-epsilon search printed dozens of lines."""
    from tfmm.training.privacy_accounting import epsilon_spent

    with caplog.at_level(logging.WARNING):
        epsilon = epsilon_spent(0.5, 256 / 5760, 220, 1 / 5760)
    assert epsilon == pytest.approx(_dp_accounting_epsilon(0.5, 256 / 5760, 220, 1 / 5760))
    assert not [record for record in caplog.records if "converge" in record.getMessage()]


@pytest.mark.parametrize("arguments, training, message", [
    (["--target-epsilon", "3"], {}, r"--target-epsilon needs DP-SGD on \(training.dp_l2_clip > 0, "
     r"e.g. --set training.dp_l2_clip=1.0\). Received: training.dp_l2_clip=0.0"),
    (["--target-epsilon", "0"], {"dp_l2_clip": 1.0},
     r"--target-epsilon must be > 0. Received: 0.0"),
    (["--target-epsilon", "-1"], {"dp_l2_clip": 1.0},
     r"--target-epsilon must be > 0. Received: -1.0"),
    # 2 x 10^7 steps at q = 1/4: noise multiplier 1e4 still spends epsilon ~0.25.
    (["--target-epsilon", "0.01", "--set", "training.steps_per_epoch=10000000"],
     {"dp_l2_clip": 1.0},
     r"--target-epsilon 0.01 cannot be reached at delta 0.0312 over 20000000 steps \(q = 0.25\): "
     r"even noise multiplier 1e4 spends epsilon 0\.\d+; ask for a larger epsilon or train fewer "
     r"steps"),
])
def test_target_epsilon_errors_are_one_line(tiny_preset, tiny_manifest, tmp_path, capsys,
                                            arguments, training, message):
    run_dir = str(tmp_path / "run")
    values = tiny.tiny_config(tiny_preset, tiny_manifest, run_dir, modalities=("text",),
                              epochs=2, **training)
    config = tiny.write_config(str(tmp_path / "dp.json"), values)
    code, _, stderr = _train_main([config] + arguments, capsys)
    assert code == 2
    errors = [line for line in stderr if line.startswith("error:")]
    assert len(errors) == 1, stderr
    assert errors[0].startswith(f"error: {config}: ")
    assert re.search(message, errors[0]), errors[0]
    assert not os.path.exists(os.path.join(run_dir, "history.json"))  # nothing trained
