"""DP-SGD (tfmm/training/dp_sgd.py) and its privacy accounting (privacy_accounting.py): clipped
per-example gradients, the noise's scale, equality with ordinary training without noise, one
replica against two, the config's checks, and epsilon in history, TensorBoard, report and resume.
"""

import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf
from dp_accounting import dp_event
from dp_accounting.rdp import rdp_privacy_accountant

from helpers import tiny
from tfmm.config import Config, ConfigError, config_from_dict, load_config
from tfmm.run_folder import RunFolder
from tfmm.training.dp_sgd import PrivateGradients
from tfmm.training.privacy_accounting import (epsilon_spent, noise_multiplier_for_epsilon,
                                              privacy_spent)
from tfmm.training.trainer import Trainer

HELPERS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "helpers")


def _dense_model(dropout=0.0, seed=3, use_bias=True, width=16, output_key="logits"):
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((8,), name="x")
    hidden = keras.layers.Dense(width, activation="tanh", use_bias=use_bias)(inputs)
    hidden = keras.layers.Dropout(dropout, seed=1)(hidden)
    outputs = keras.layers.Dense(3, use_bias=use_bias)(hidden)
    return keras.Model({"x": inputs}, {output_key: outputs})


def _config(batch_size=8, jit="false", **training):
    config = Config()
    config.data.batch_size = batch_size
    config.training.jit_compile = jit
    for key, value in training.items():
        setattr(config.training, key, value)
    return config


def _batch(size=8, scale=3.0, seed=0):
    generator = np.random.default_rng(seed)
    features = generator.normal(size=(size, 8)).astype("float32") * scale
    return {"x": tf.constant(features)}, tf.constant(generator.integers(0, 3, size))


def _expected_epsilon(sigma, q, steps, delta):
    """dp-accounting's own figure, written out here independently of tfmm."""
    accountant = rdp_privacy_accountant.RdpAccountant()
    accountant.compose(dp_event.SelfComposedDpEvent(
        dp_event.PoissonSampledDpEvent(q, dp_event.GaussianDpEvent(sigma)), steps))
    return accountant.get_epsilon(delta)


# ------------------------------------------------------------------------------------------------
# The per-example gradients
@pytest.mark.parametrize("microbatch_size", [1, 2])
def test_each_clipped_gradient_is_at_most_l2_clip_and_unclipped_ones_are_exact(microbatch_size):
    model = _dense_model()
    config = _config(dp_l2_clip=3.5, dp_microbatch_size=microbatch_size)
    private = PrivateGradients.for_training(model, keras.optimizers.SGD(), config.training, 8, 1)
    features, labels = _batch()
    losses_of = lambda outputs: keras.losses.sparse_categorical_crossentropy(  # noqa: E731
        labels, outputs["logits"], from_logits=True)
    with tf.GradientTape() as tape:
        losses = losses_of(model(features, training=True))
    clipped, norms = private.clipped_gradients(tape, losses)
    clipped_norms = np.sqrt(sum(np.sum(np.reshape(g.numpy(), (g.shape[0], -1)) ** 2, axis=1)
                                for g in clipped))
    assert clipped[0].shape[0] == 8 // microbatch_size
    assert np.all(clipped_norms <= 3.5 * (1 + 1e-6)), clipped_norms
    assert np.any(norms.numpy() > 3.5) and np.any(norms.numpy() < 3.5), norms  # both cases seen
    # Each microbatch's gradient, computed alone, is what was clipped (kept as is below the clip).
    for index in range(8 // microbatch_size):
        part = slice(index * microbatch_size, (index + 1) * microbatch_size)
        with tf.GradientTape() as alone:
            outputs = model({"x": features["x"][part]}, training=True)
            loss = tf.reduce_mean(keras.losses.sparse_categorical_crossentropy(
                labels[part], outputs["logits"], from_logits=True))
        exact = alone.gradient(loss, model.trainable_variables)
        norm = np.sqrt(sum(np.sum(g.numpy() ** 2) for g in exact))
        np.testing.assert_allclose(norms.numpy()[index], norm, rtol=1e-4)
        for kept, reference in zip(clipped, exact):
            np.testing.assert_allclose(kept[index].numpy(), reference.numpy() * min(1, 3.5 / norm),
                                       rtol=1e-4, atol=1e-6)


def test_noise_std_is_noise_multiplier_times_clip_and_drawn_once_per_step():
    # A model whose gradients are zero (no bias, zero inputs): what reaches the optimizer is the
    # noise divided by the batch.
    model = _dense_model(use_bias=False, width=64)
    config = _config(batch_size=4, dp_l2_clip=0.5, dp_noise_multiplier=1.3, clip_norm=0.0)
    optimizer = keras.optimizers.SGD()
    private = PrivateGradients.for_training(model, optimizer, config.training, 4, 1)
    private.noise_key.assign([2026, 12])
    features, labels = {"x": tf.zeros((4, 8))}, tf.constant([0, 1, 2, 0])

    @tf.function
    def handed_to_optimizer():
        with tf.GradientTape() as tape:
            outputs = model(features, training=True)
            losses = keras.losses.sparse_categorical_crossentropy(labels, outputs["logits"],
                                                                  from_logits=True)
        return private.noisy_mean(private.summed_clipped_gradients(tape, losses))

    draws = []
    for step in range(3):
        optimizer.iterations.assign(step)
        gradients = handed_to_optimizer()
        draws.append(np.concatenate([g.numpy().ravel() for g in gradients]) * 4)  # x batch
    values = np.concatenate(draws)
    assert values.size == 3 * (8 * 64 + 64 * 3)
    assert abs(np.mean(values)) < 0.05
    np.testing.assert_allclose(np.std(values), 1.3 * 0.5, rtol=0.04)
    assert np.corrcoef(draws[0], draws[1])[0, 1] < 0.1  # a new draw each step
    optimizer.iterations.assign(1)
    np.testing.assert_array_equal(
        np.concatenate([g.numpy().ravel() for g in handed_to_optimizer()]) * 4, draws[1])


@pytest.mark.parametrize("jit, dropout", [("false", 0.0), ("true", 0.3)])
def test_without_noise_and_a_clip_above_every_norm_dp_training_equals_ordinary(tmp_path, jit,
                                                                                dropout):
    """Same starting weights and masks: the same weights after 3 steps (XLA on: with dropout,
    whose masks the single forward pass draws as ordinary training does)."""
    batch = _batch()
    weights = {}
    for name, clip in (("plain", 0.0), ("private", 1e6)):
        model = _dense_model(dropout=dropout)
        trainer = Trainer.from_config(model, _config(jit=jit, dp_l2_clip=clip),
                                      tf.distribute.get_strategy(), 3, str(tmp_path / name),
                                      log=lambda line: None)
        assert (trainer.private is None) == (clip == 0)
        for _ in range(3):
            trainer.train_step(batch)
        weights[name] = [variable.numpy() for variable in model.trainable_variables]
    for plain, private in zip(weights["plain"], weights["private"]):
        assert np.max(np.abs(plain)) > 0
        np.testing.assert_allclose(private, plain, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("task", ["regression", "multilabel"])
def test_the_other_manifest_tasks_train_privately_as_ordinary_without_noise(tmp_path, task):
    """Each task's own per-example loss feeds the clipping: with no noise and a clip above every
    norm, one DP step of a regression / multilabel model equals the ordinary step."""
    features, labels = _batch()
    targets = (tf.constant(np.random.default_rng(1).normal(size=(8, 3)), tf.float32)
               if task == "regression" else tf.one_hot(labels, 3))
    key = "predictions" if task == "regression" else "logits"
    weights = {}
    for name, clip in (("plain", 0.0), ("private", 1e6)):
        model = _dense_model(output_key=key)
        config = _config(dp_l2_clip=clip)
        trainer = Trainer(model, task, config.training, tf.distribute.get_strategy(), 2,
                          str(tmp_path / name), 8, log=lambda line: None)
        trainer.train_step((features, targets))
        weights[name] = [variable.numpy() for variable in model.trainable_variables]
    for plain, private in zip(weights["plain"], weights["private"]):
        np.testing.assert_allclose(private, plain, rtol=1e-4, atol=1e-5)


def test_two_replicas_give_the_same_noisy_update_as_one():
    """MirroredStrategy on two logical CPUs (XLA off there) against the default strategy, same
    global batch, same noise key, clipping and noise active: equal weights after 3 steps; another
    noise key gives other weights (the noise reaches the update)."""
    result = tiny.run_python([os.path.join(HELPERS, "dp_replicas.py"),
                              os.path.join(os.environ.get("TMPDIR", "/tmp"),
                                           f"tfmm-dp-replicas-{os.getpid()}")], timeout=240)
    assert result.returncode == 0, result.stderr[-3000:]
    runs = json.loads(result.stdout.strip().splitlines()[-1])
    for one, two, other in zip(runs["one"], runs["two"], runs["one_other_key"]):
        np.testing.assert_allclose(np.array(two), np.array(one), rtol=1e-5, atol=1e-6)
        assert np.max(np.abs(np.array(other) - np.array(one))) > 1e-4


# ------------------------------------------------------------------------------------------------
# The config
@pytest.mark.parametrize("training, message", [
    ({"dp_noise_multiplier": 1.0}, r"`training.dp_noise_multiplier` needs `training.dp_l2_clip`"),
    ({"dp_l2_clip": -1.0}, r"`training.dp_l2_clip` must be >= 0. Received: -1.0"),
    ({"dp_l2_clip": 1.0, "dp_delta": 1.0}, r"`training.dp_delta` must be in \[0, 1\)"),
    ({"dp_l2_clip": 1.0, "dp_microbatch_size": 3},
     r"`data.batch_size` \(8\) must be divisible by `training.dp_microbatch_size`"),
    ({"dp_l2_clip": 1.0, "mixed_precision": "float16"}, r"'float16' \(loss scaling\)"),
])
def test_config_refuses_bad_dp_values(tiny_preset, tiny_manifest, tmp_path, training, message):
    values = tiny.tiny_config(tiny_preset, tiny_manifest, str(tmp_path), modalities=("text",),
                              **training)
    with pytest.raises(ConfigError, match=message):
        config_from_dict(values).validate()


@pytest.mark.parametrize("modality, encoder", [("audio", "the audio CNN encoder"),
                                               ("image", "the ResNet50 image encoder")])
def test_config_refuses_a_trainable_batchnorm_encoder_under_dp(tiny_preset, tiny_manifest,
                                                              tmp_path, modality, encoder):
    values = tiny.tiny_config(tiny_preset, tiny_manifest, str(tmp_path),
                              modalities=("text", modality), dp_l2_clip=1.0)
    with pytest.raises(ConfigError, match=f"cannot train {encoder}: its BatchNorm .* "
                                          f"`model.freeze_{modality}_encoder=true`"):
        config_from_dict(values).validate()
    values["model"][f"freeze_{modality}_encoder"] = True  # inference mode: allowed
    assert config_from_dict(values).validate().training.dp_l2_clip == 1.0
    values["training"]["dp_clip"] = 1.0
    with pytest.raises(ConfigError, match="unknown key 'training.dp_clip'"):
        config_from_dict(values)


def test_trainer_refuses_a_model_with_trainable_batch_normalization(tmp_path):
    inputs = keras.Input((8,), name="x")
    normalised = keras.layers.BatchNormalization(name="mixing_norm")(inputs)
    model = keras.Model({"x": inputs}, {"logits": keras.layers.Dense(3)(normalised)})
    with pytest.raises(ConfigError, match="BatchNormalization layer 'mixing_norm'"):
        Trainer.from_config(model, _config(dp_l2_clip=1.0), tf.distribute.get_strategy(), 2,
                            str(tmp_path / "a"), log=lambda line: None)
    model.get_layer("mixing_norm").trainable = False
    trainer = Trainer.from_config(model, _config(dp_l2_clip=1.0), tf.distribute.get_strategy(),
                                  2, str(tmp_path / "b"), log=lambda line: None)
    assert trainer.private is not None


# ------------------------------------------------------------------------------------------------
# The accounting
def test_epsilon_equals_dp_accountings_and_the_noise_search_meets_the_target():
    assert epsilon_spent(1.1, 0.01, 10000, 1e-5) == pytest.approx(
        _expected_epsilon(1.1, 0.01, 10000, 1e-5), rel=1e-12)
    assert epsilon_spent(1.1, 0.01, 10000, 1e-5) == pytest.approx(5.63, abs=0.01)  # textbook
    config = _config(batch_size=64, dp_l2_clip=1.0, dp_noise_multiplier=0.9)
    spent = privacy_spent(config.training, 64, 6400, 250)
    assert spent["delta"] == 1 / 6400 and spent["sampling_probability"] == 0.01
    assert spent["epsilon"] == pytest.approx(_expected_epsilon(0.9, 0.01, 250, 1 / 6400))
    assert privacy_spent(_config(dp_l2_clip=1.0).training, 64, 6400, 10)["epsilon"] is None
    assert privacy_spent(_config().training, 64, 6400, 10) == {}
    sigma = noise_multiplier_for_epsilon(3.0, 0.01, 2000, 1e-5)
    assert _expected_epsilon(sigma, 0.01, 2000, 1e-5) <= 3.0
    assert _expected_epsilon(sigma - 0.01, 0.01, 2000, 1e-5) > 3.0


def _scalars(log_dir, tag):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    accumulator = EventAccumulator(log_dir, size_guidance={"tensors": 0})
    accumulator.Reload()
    return [(event.step, float(tf.make_ndarray(event.tensor_proto)))
            for event in accumulator.Tensors(tag)]


@pytest.mark.slow  # two tiny-BERT runs (30-45 s)
def test_a_private_run_reports_epsilon_per_epoch_and_resume_counts_steps_once(tiny_preset,
                                                                              tiny_manifest,
                                                                              tmp_path):
    """A tiny text run (trainable BERT, dropout 0.1; XLA is covered above) for 1 epoch, then
    resumed to 2: epsilon in history.json, TensorBoard and the report equals dp-accounting's
    from the saved config and step count; the resumed epoch counts the first epoch's steps once;
    the noise key survives the resume."""
    from tfmm.training.runner import run_training

    run_dir = str(tmp_path / "run")
    values = tiny.tiny_config(tiny_preset, tiny_manifest, run_dir, modalities=("text",),
                              model={"dropout": 0.1}, epochs=1, jit_compile="false",
                              dp_l2_clip=0.5, dp_noise_multiplier=1.2, dp_microbatch_size=2)
    values["data"]["test_manifest"] = tiny_manifest
    path = tiny.write_config(str(tmp_path / "dp.json"), values)
    first = run_training(load_config(path), log=lambda line: None)
    key_path = "dp_noise_key/.ATTRIBUTES/VARIABLE_VALUE"
    first_key = tf.train.load_variable(RunFolder(run_dir).checkpoints, key_path)
    resumed = run_training(load_config(path, ["training.epochs=2"]), log=lambda line: None,
                           allow_config_change=True)
    assert tf.train.load_variable(RunFolder(run_dir).checkpoints,
                                  key_path).tolist() == first_key.tolist()

    folder = RunFolder(run_dir)
    saved = json.load(open(folder.config))
    info = json.load(open(folder.run_info))
    examples, steps_per_epoch = info["train_examples"], info["steps_per_epoch"]
    batch = saved["data"]["batch_size"]
    expected = [_expected_epsilon(saved["training"]["dp_noise_multiplier"], batch / examples,
                                  steps_per_epoch * epochs, 1 / examples) for epochs in (1, 2)]
    history = json.load(open(folder.history))
    assert [record["epsilon"] for record in history] == pytest.approx(expected, rel=1e-9)
    assert first["privacy"]["epsilon"] == pytest.approx(expected[0], rel=1e-9)
    assert resumed["privacy"]["epsilon"] == pytest.approx(expected[1], rel=1e-9)
    assert resumed["privacy"]["steps"] == 2 * steps_per_epoch
    report = json.load(open(folder.report("test")))
    assert report["privacy"]["epsilon"] == pytest.approx(expected[1], rel=1e-9)
    logged = _scalars(folder.training_logs, "epoch_epsilon")
    assert [value for _, value in logged] == pytest.approx(expected, rel=1e-5)


def test_question_answering_trains_privately(tiny_preset, tmp_path):
    """The span task (tiny BERT, start/end losses per window) through the runner under DP-SGD:
    3 steps with a finite loss, its epsilon in the history and the eval report."""
    from helpers.tiny_squad import write_squad_file
    from tfmm.training.runner import run_training

    squad_path = write_squad_file(tmp_path / "tiny.json")
    overrides = {"data.task": "qa", "data.batch_size": 2, "model.text_preset": tiny_preset,
                 "model.freeze_text_encoder": False, "qa.train_file": squad_path,
                 "qa.eval_fraction": 0.5, "qa.max_sequence_length": 16, "qa.doc_stride": 4,
                 "qa.max_query_length": 6, "training.epochs": 1, "training.steps_per_epoch": 3,
                 "training.jit_compile": "false", "training.export": False,
                 "training.run_dir": str(tmp_path / "run"), "training.dp_l2_clip": 1.0,
                 "training.dp_noise_multiplier": 1.0}
    config = load_config(None, [f"{key}={value}" for key, value in overrides.items()])
    result = run_training(config, log=lambda line: None)
    assert np.isfinite(result["history"]["loss"][0])
    assert result["privacy"]["steps"] == 3
    assert result["history"]["epsilon"] == [result["privacy"]["epsilon"]]
    assert result["report"]["privacy"] == result["privacy"]
