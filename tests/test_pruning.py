"""Magnitude pruning (tfmm/training/pruning.py, `training.pruning`): the schedule, masks that stay
applied after optimizer steps, the target sparsity on a trained run's saved kernels (one replica
with XLA, and two replicas), and the config checks."""

import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from helpers import tiny
from tfmm.config import ConfigError, config_from_dict
from tfmm.training.pruning import (MagnitudePruning, gzipped_size, kernel_sparsity,
                                   polynomial_sparsity, prunable_kernels)
from tfmm.training.runner import run_training

HELPERS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "helpers")
PRUNING = {"target_sparsity": 0.8, "start_step": 1, "end_step": 5, "frequency": 2}


def test_polynomial_schedule_goes_from_zero_to_the_target():
    values = [float(polynomial_sparsity(step, 0.8, 2, 10)) for step in (0, 2, 6, 10, 50)]
    assert values[0] == values[1] == 0.0
    assert values[2] == pytest.approx(0.8 * (1 - 0.5 ** 3))
    assert values[3] == values[4] == pytest.approx(0.8)


def _small_model():
    keras.utils.set_random_seed(3)
    inputs = keras.Input((6,), dtype="int32")
    hidden = keras.layers.Embedding(20, 8, name="embedding")(inputs)
    hidden = keras.layers.Conv1D(8, 3, name="conv")(hidden)
    hidden = keras.layers.LayerNormalization(name="norm")(hidden)
    hidden = keras.layers.GlobalAveragePooling1D()(hidden)
    hidden = keras.layers.Dense(16, activation="relu", name="hidden")(hidden)
    outputs = keras.layers.Dense(2, name="out")(hidden)
    return keras.Model(inputs, outputs)


def test_only_dense_and_conv_kernels_are_pruned_and_exclude_works():
    model = _small_model()
    paths = [kernel.path for kernel in prunable_kernels(model)]
    assert paths == ["conv/kernel", "hidden/kernel", "out/kernel"]
    assert [kernel.path for kernel in prunable_kernels(model, exclude=("hidden",))] == [
        "conv/kernel", "out/kernel"]


def test_masks_stay_applied_after_optimizer_steps():
    model = _small_model()
    pruning = MagnitudePruning(prunable_kernels(model), **PRUNING)
    optimizer = keras.optimizers.AdamW(1e-2)
    optimizer.build(model.trainable_variables)
    random = np.random.default_rng(0)
    features = random.integers(0, 20, (16, 6)).astype("int32")
    labels = random.integers(0, 2, 16)

    @tf.function
    def step():
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(keras.losses.sparse_categorical_crossentropy(
                labels, model(features, training=True), from_logits=True))
        gradients = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(gradients, model.trainable_variables))
        pruning.after_step(optimizer.iterations)

    embedding_before = model.get_layer("embedding").embeddings.numpy().copy()
    for number in range(1, 12):
        step()
        for kernel, mask in zip(pruning.kernels, pruning.masks):
            # Every masked weight is exactly 0 after the update that moved it.
            assert np.all(kernel.numpy()[mask.numpy() == 0] == 0), (number, kernel.path)
        if number >= PRUNING["end_step"]:
            for kernel in pruning.kernels:
                assert np.mean(kernel.numpy() == 0) >= 0.8 - 1e-6, (number, kernel.path)
    # Weights outside the masks kept training; embeddings and norms were never pruned.
    assert not np.array_equal(model.get_layer("embedding").embeddings.numpy(), embedding_before)
    assert np.mean(model.get_layer("embedding").embeddings.numpy() == 0) == 0
    assert np.all(model.get_layer("norm").gamma.numpy() != 0)


def _pruning_config(tiny_preset, tiny_manifest, run_dir, **training):
    values = tiny.tiny_config(tiny_preset, tiny_manifest, run_dir, epochs=3,
                              model={"dropout": 0.1},
                              pruning={**PRUNING, "end_step": 8}, **training)
    return values


@pytest.mark.slow
def test_a_tiny_run_reaches_the_target_on_its_saved_kernels(tiny_preset, tiny_manifest,
                                                            tmp_path):
    run_dir = str(tmp_path / "run")
    values = _pruning_config(tiny_preset, tiny_manifest, run_dir, jit_compile="true")
    run_training(config_from_dict(values).validate(), log=lambda line: None)
    saved = keras.saving.load_model(os.path.join(run_dir, "model.keras"))
    # BERT's pooler is frozen in training (no tfmm model reads it) and reloads trainable.
    report = kernel_sparsity(saved, exclude=("pooled_dense",), trainable_only=True)
    assert report["weights"] > 1000 and report["sparsity"] >= 0.8
    assert min(report["per_kernel"].values()) >= 0.8 - 1e-3
    embeddings = [weight for weight in saved.weights if "embeddings" in weight.path]
    assert embeddings and all(np.mean(weight.numpy() == 0) < 0.01 for weight in embeddings)
    assert 0 < gzipped_size(os.path.join(run_dir, "model.keras")) < os.path.getsize(
        os.path.join(run_dir, "model.keras"))


@pytest.mark.parametrize("value, message", [
    ({"target_sparsity": 1.5}, "target_sparsity"),
    ({"target_sparsity": 0.5, "start_step": 10, "end_step": 5}, "end_step > start_step"),
    ({"sparsity": 0.5}, "unknown keys"),
    ("half", "must be a dict"),
])
def test_bad_pruning_settings_are_config_errors(value, message):
    with pytest.raises(ConfigError, match=message):
        config_from_dict({"training": {"pruning": value}})


def test_pruning_settings_take_defaults_and_survive_the_saved_config(tmp_path):
    config = config_from_dict({"training": {"pruning": {"target_sparsity": 0.5}}})
    assert config.training.pruning["end_step"] == 1000 and config.training.pruning["exclude"] == []
    again = config_from_dict(json.loads(json.dumps(config.to_dict())))
    assert again.training.pruning == config.training.pruning
    assert config_from_dict({}).training.pruning == {}


@pytest.mark.slow
def test_two_replicas_reach_the_target_sparsity(tiny_preset, tiny_manifest, tmp_path):
    """MirroredStrategy over two logical CPUs (XLA off there): every replica's copy is masked."""
    config = tiny.write_config(str(tmp_path / "config.json"), _pruning_config(
        tiny_preset, tiny_manifest, str(tmp_path / "run")))
    out = str(tmp_path / "weights.npz")
    result = tiny.run_python([os.path.join(HELPERS, "compare_replicas.py"), config, out],
                             timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    arrays = np.load(out)
    assert int(arrays["two/replicas"]) == 2
    # Every Dense / EinsumDense / Conv kernel of the tiny run trains, so every one is pruned
    # (but BERT's pooler, frozen because no tfmm model reads it).
    kernels = [key for key in arrays.files if key.startswith("two/") and key.endswith("/kernel")
               and "pooled_dense" not in key]
    assert len(kernels) > 5
    for key in kernels:
        assert np.mean(arrays[key] == 0) >= 0.8 - 1e-3, key
