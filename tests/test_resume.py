"""A run stopped mid-epoch and resumed by a new Trainer (a new process would do the same) ends
where an uninterrupted run ends, under XLA with ThreeFry dropout masks and dropout > 0. Kill-free
and fast; tests/test_fault_tolerance.py has the SIGKILL version (slow)."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from helpers import tiny
from tfmm.config import config_from_dict
from tfmm.data.dataset import ExamplePipeline
from tfmm.data.manifest import read_manifest_for_config
from tfmm.models.multimodal_model import build_multimodal_model
from tfmm.preprocessing.multimodal_preprocessor import MultimodalPreprocessor
from tfmm.training.trainer import Trainer


class CrashingPipeline:
    """The training pipeline, except that epoch `crash_epoch` fails when its batch number
    `crash_batch` is read (an input error standing in for a preemption)."""

    def __init__(self, pipeline, crash_epoch: int, crash_batch: int):
        self.pipeline, self.crash_epoch, self.crash_batch = pipeline, crash_epoch, crash_batch
        self.num_examples = pipeline.num_examples

    def steps_per_epoch(self, batch_size, drop_remainder):
        return self.pipeline.steps_per_epoch(batch_size, drop_remainder)

    def batches(self, batch_size, **epoch):
        dataset = self.pipeline.batches(batch_size, **epoch)
        if epoch.get("epoch") != self.crash_epoch:
            return dataset
        limit = tf.constant(self.crash_batch, tf.int64)

        def fail_at_the_limit(index, batch):
            check = tf.debugging.assert_less(index, limit, message="simulated crash")
            with tf.control_dependencies([check]):
                return tf.nest.map_structure(tf.identity, batch)
        return dataset.enumerate().map(fail_at_the_limit)


def _model_and_pipeline(config):
    keras.utils.set_random_seed(config.training.seed)
    manifest = read_manifest_for_config(config.data.train_manifest, config.data)
    preprocessor = MultimodalPreprocessor.from_data_config(config.data, config.model.text_preset)
    pipeline = ExamplePipeline(manifest, preprocessor, config.data.task, config.data.cache)
    return build_multimodal_model(config, len(manifest.labels)), pipeline


def test_resume_under_xla_with_threefry_masks_matches_an_uninterrupted_run(
        tiny_preset, tiny_manifest, tmp_path):
    def config_for(name):
        # Audio only keeps the three XLA compilations short; dropout acts in the audio
        # encoder, the attention fusion and the head.
        values = tiny.tiny_config(tiny_preset, tiny_manifest, str(tmp_path / name),
                                  modalities=("audio",), model={"dropout": 0.2},
                                  epochs=2, jit_compile="true", dropout_masks="threefry",
                                  checkpoint_every_steps=1, decay="cosine",
                                  warmup_fraction=0.25)
        return config_from_dict(values).validate()

    def trainer_for(config, model):
        return Trainer.from_config(model, config, tf.distribute.get_strategy(), 4,
                       config.training.run_dir, log=lambda line: None)

    # Uninterrupted: 2 epochs of 4 steps.
    config = config_for("uninterrupted")
    model, pipeline = _model_and_pipeline(config)
    expected_history = trainer_for(config, model).fit(pipeline)
    expected = [weight.numpy() for weight in model.weights]

    # Stopped in epoch 2 after its second step (checkpoint ckpt-6), then resumed by a new
    # model and Trainer from the run folder.
    config = config_for("resumed")
    model, pipeline = _model_and_pipeline(config)
    with pytest.raises(tf.errors.InvalidArgumentError, match="simulated crash"):
        trainer_for(config, model).fit(CrashingPipeline(pipeline, crash_epoch=1, crash_batch=2))
    assert tf.train.latest_checkpoint(config.training.run_dir + "/checkpoints").endswith(
        "ckpt-6")
    model, pipeline = _model_and_pipeline(config)
    lines = []
    trainer = Trainer.from_config(model, config, tf.distribute.get_strategy(), 4, config.training.run_dir,
                      log=lines.append)
    history = trainer.fit(pipeline)
    assert any("ckpt-6 (epoch 2, step 2 of 4)" in line for line in lines), lines

    # The masks are drawn by ThreeFry inside XLA: the resumed run must restore the generator
    # states to draw the masks the uninterrupted run drew.
    for key in ("loss", "accuracy"):
        np.testing.assert_allclose(history[key], expected_history[key], rtol=1e-5)
    weights = [weight.numpy() for weight in model.weights]
    assert len(weights) == len(expected) > 20
    for got, want, weight in zip(weights, expected, model.weights):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6, err_msg=weight.path)
