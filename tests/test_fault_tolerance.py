"""Preemption and faults: kill and resume, atomic checkpoints, diverging loss, unwritable folders.

Exit codes and one-line errors are checked through `train.main` in this process; the kill and
resume test runs `python train.py` in subprocesses with hard timeouts. All use the tiny config
(tests/helpers/tiny.py).
"""

import json
import os
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from helpers import tiny

TRAIN_PY = os.path.join(tiny.REPO_ROOT, "train.py")


def _error_lines(stderr: str):
    return [line for line in stderr.splitlines() if line.startswith("error:")]


def _checkpoint_values(checkpoint_dir: str, number=None) -> dict:
    """{variable key: array} of the latest checkpoint (or of ckpt-NUMBER) in a folder."""
    import tensorflow as tf

    path = (os.path.join(checkpoint_dir, f"ckpt-{number}") if number is not None
            else tf.train.latest_checkpoint(checkpoint_dir))
    reader = tf.train.load_checkpoint(path)
    return {key: reader.get_tensor(key) for key in reader.get_variable_to_shape_map()
            if key != "_CHECKPOINTABLE_OBJECT_GRAPH" and not key.startswith("save_counter")}


def _history(run_dir: str) -> list:
    with open(os.path.join(run_dir, "history.json")) as handle:
        return json.load(handle)


def _train_main(arguments, capsys):
    """`python train.py ARGUMENTS` in this process: (exit code, stderr lines)."""
    import train  # the repository root is on sys.path (conftest.py)

    capsys.readouterr()
    code = train.main(arguments)
    return code, capsys.readouterr().err.splitlines()


# ------------------------------------------------------------------------------------------------
def test_diverging_loss_stops_with_one_line_naming_the_step(tiny_config, capsys):
    config, run_dir = tiny_config(modalities=("audio",), learning_rate=1e30, clip_norm=0.0,
                                  jit_compile="false", checkpoint_every_steps=1)
    code, stderr = _train_main([config], capsys)
    assert code == 2, stderr
    errors = _error_lines("\n".join(stderr))
    assert len(errors) == 1, stderr
    match = re.match(r"error: loss became (nan|inf) at step (\d+) \(epoch \d+, batch \d+\); the "
                     r"last good checkpoint is (\S+)\. ", errors[0])
    assert match, errors[0]
    step = int(match.group(2))
    assert step >= 2  # step 1 starts from finite weights
    assert match.group(3).endswith(f"ckpt-{step - 1}")  # nothing written after the bad step
    assert not os.path.exists(os.path.join(run_dir, "model.keras"))


def test_unwritable_run_folder_fails_at_start_with_one_line(tiny_config, tmp_path, capsys):
    # Tests may run as root, where chmod does not stop writes: a folder below a regular file
    # cannot be created by anyone.
    blocker = tmp_path / "afile"
    blocker.write_text("not a folder")
    config, _ = tiny_config()
    started = time.time()
    code, stderr = _train_main([config, "--run-dir", str(blocker / "run")], capsys)
    assert code == 2, stderr
    errors = _error_lines("\n".join(stderr))
    assert len(errors) == 1, stderr
    assert errors[0].startswith(f"error: run folder {blocker / 'run'} is not writable")
    assert time.time() - started < 20  # before any data or model work


def test_checkpoint_index_names_only_complete_checkpoints(tiny_config):
    """A save killed before CheckpointManager updated `checkpoint` leaves files that are never
    read; a damaged listed checkpoint falls back to the one before it; none readable: an error."""
    import tensorflow as tf

    from tfmm.config import load_config
    from tfmm.training.runner import run_training
    from tfmm.training.trainer import CheckpointError

    config_path, run_dir = tiny_config(modalities=("audio",), epochs=1, checkpoint_every_steps=2,
                                       keep_checkpoints=2, jit_compile="false")
    lines = []
    run_training(load_config(config_path), log=lines.append)
    checkpoints = os.path.join(run_dir, "checkpoints")
    assert tf.train.latest_checkpoint(checkpoints).endswith("ckpt-4")  # 4 steps, saved at 2, 4
    saved = _checkpoint_values(checkpoints)
    assert any(key.startswith("random_states/") for key in saved)  # Keras SeedGenerator states
    assert any(key.startswith("epoch_loss_sum") for key in saved)

    # A save of step 6 killed half-way: its temporary shard folder and a data file exist, the
    # index file still names ckpt-4.
    partial = os.path.join(checkpoints, "ckpt-6_temp", "part-00000-of-00001.data-00000-of-00001")
    os.makedirs(os.path.dirname(partial))
    with open(partial, "wb") as handle:
        handle.write(b"\0" * 100)
    with open(os.path.join(checkpoints, "ckpt-6.data-00000-of-00001"), "wb") as handle:
        handle.write(b"\0" * 100)
    assert tf.train.latest_checkpoint(checkpoints).endswith("ckpt-4")
    state = tf.train.get_checkpoint_state(checkpoints)
    assert [os.path.basename(p) for p in state.all_model_checkpoint_paths] == ["ckpt-2", "ckpt-4"]

    # The newest listed checkpoint damaged (truncated data): the run resumes from ckpt-2.
    data_file = os.path.join(checkpoints, "ckpt-4.data-00000-of-00001")
    with open(data_file, "r+b") as handle:
        handle.truncate(os.path.getsize(data_file) // 2)
    lines.clear()
    resumed = load_config(config_path, ["training.epochs=2"])  # more epochs: accepted change
    result = run_training(resumed, log=lines.append, allow_config_change=True)
    assert any(line.startswith("cannot restore") and "ckpt-4" in line for line in lines), lines
    assert any(line.startswith("resumed from") and "ckpt-2" in line for line in lines), lines
    assert len(result["history"]["loss"]) == 2

    # Every listed checkpoint damaged: a clear error, no training from scratch over them.
    for name in os.listdir(checkpoints):
        if ".data-" in name:
            with open(os.path.join(checkpoints, name), "r+b") as handle:
                handle.truncate(10)
    with pytest.raises(CheckpointError, match="no checkpoint in .* can be restored"):
        run_training(load_config(config_path, ["training.epochs=3"]), log=lines.append,
                     allow_config_change=True)


@pytest.mark.slow
def test_killed_run_resumes_and_matches_an_uninterrupted_run(tiny_config, tmp_path):
    """SIGKILL mid-training, rerun the same command: the run resumes from its last checkpoint
    and ends with the same weights and epoch losses as a run never interrupted (dropout on, so
    the random-number states must be restored too)."""
    manifest = tiny.write_manifest(str(tmp_path / "data64"), num_rows=64)
    settings = dict(manifest=manifest, model={"dropout": 0.2},  # dropout on: RNG state matters
                    epochs=3, checkpoint_every_steps=3, jit_compile="false")
    reference_config, reference_dir = tiny_config("reference", **settings)
    killed_config, killed_dir = tiny_config("killed", **settings)

    env = tiny.subprocess_env()
    reference_log = tmp_path / "reference.log"
    with open(reference_log, "w") as log:  # a file, not a pipe nobody reads while it runs
        reference = subprocess.Popen([sys.executable, TRAIN_PY, reference_config],
                                     cwd=tiny.REPO_ROOT, env=env, stdout=log, stderr=log)
        victim = subprocess.Popen([sys.executable, TRAIN_PY, killed_config], cwd=tiny.REPO_ROOT,
                                  env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        index = os.path.join(killed_dir, "checkpoints", "checkpoint")
        try:
            deadline = time.time() + 240
            while not os.path.exists(index) and victim.poll() is None and time.time() < deadline:
                time.sleep(0.01)
            if victim.poll() is None:  # still running (not reaped): its pid is still its own
                os.kill(victim.pid, signal.SIGKILL)
            victim.wait(timeout=30)
            reference.wait(timeout=300)
        finally:
            for process in (reference, victim):
                if process.poll() is None:
                    process.kill()
                    process.wait()
    assert reference.returncode == 0, reference_log.read_text()[-3000:]
    assert victim.returncode == -signal.SIGKILL
    assert os.path.exists(index), "the run was killed before its first checkpoint"
    assert not os.path.exists(os.path.join(killed_dir, "model.keras")), (
        "the run finished before it was killed; the test needs a slower run")
    import tensorflow as tf

    killed_at = int(tf.train.latest_checkpoint(os.path.dirname(index)).rsplit("-", 1)[1])
    total_steps = 3 * 64 // 8

    resumed = tiny.run_python([TRAIN_PY, killed_config], timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"ckpt-{killed_at}" in resumed.stdout  # "resumed from .../ckpt-N (epoch E, step S ...)"
    assert re.search(r"resumed from \S+ckpt-\d+ \(epoch \d+, step \d+ of 8\)", resumed.stdout)

    # Lost work: at most the steps since the last checkpoint (checkpoint_every_steps=3).
    assert 3 <= killed_at < total_steps
    expected = _checkpoint_values(os.path.join(reference_dir, "checkpoints"), total_steps)
    actual = _checkpoint_values(os.path.join(killed_dir, "checkpoints"), total_steps)
    assert expected.keys() == actual.keys()
    for key in expected:
        np.testing.assert_allclose(actual[key], expected[key], rtol=1e-5, atol=1e-5, err_msg=key)
    reference_history, resumed_history = _history(reference_dir), _history(killed_dir)
    assert [entry["epoch"] for entry in resumed_history] == [1, 2, 3]
    for want, got in zip(reference_history, resumed_history):
        np.testing.assert_allclose(got["loss"], want["loss"], rtol=1e-5)
        np.testing.assert_allclose(got["accuracy"], want["accuracy"], rtol=1e-5)
