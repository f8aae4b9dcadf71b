"""ThreeFry dropout masks inside XLA-compiled steps (tfmm/models/dropout.py)."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from helpers.tiny import write_bert_preset
from tfmm.config import Config
from tfmm.models.dropout import ThreefryDropout, threefry_dropout
from tfmm.models.text_encoder import load_bert_backbone
from tfmm.training.trainer import Trainer


def _nested_model(rate):
    inputs = keras.Input((500,))
    block = keras.Sequential([keras.layers.Dense(500, kernel_initializer="identity",
                                                 use_bias=False),
                              keras.layers.Dropout(rate, seed=3)])
    return keras.Model(inputs, block(inputs))


def test_masks_have_the_rate_and_scaling_and_change_per_step():
    model = _nested_model(0.25)
    inputs = tf.ones((200, 500))

    @tf.function(jit_compile=True)
    def step(x):
        with threefry_dropout(model) as switched:
            assert switched == 1
            assert isinstance(model.layers[1].layers[1], ThreefryDropout)
            return model(x, training=True)

    first, second = step(inputs).numpy(), step(inputs).numpy()
    assert type(model.layers[1].layers[1]) is keras.layers.Dropout  # switched back
    dropped = np.mean(first == 0)
    assert abs(dropped - 0.25) < 0.01, dropped
    np.testing.assert_allclose(first[first != 0], 1 / 0.75, rtol=1e-6)
    assert np.mean((first == 0) != (second == 0)) > 0.2  # a new mask each step
    # Inference and code outside the context are untouched.
    np.testing.assert_allclose(model(inputs, training=False).numpy(), 1.0)
    assert abs(np.mean(model(inputs, training=True).numpy() == 0) - 0.25) < 0.01


def test_every_dropout_of_a_keras_hub_backbone_is_switched_and_restored(tmp_path):
    backbone = load_bert_backbone(write_bert_preset(str(tmp_path)))
    plain = [layer for layer in backbone._flatten_layers(recursive=True)
             if type(layer) is keras.layers.Dropout]
    with threefry_dropout(backbone) as switched:
        assert switched == len(plain) > 0
        assert all(isinstance(layer, ThreefryDropout) for layer in plain)
    assert all(type(layer) is keras.layers.Dropout for layer in plain)


def test_noise_shape_masks_whole_rows():
    # noise_shape (None, 1, 64): one draw per (example, feature), shared along axis 1.
    model = keras.Sequential([keras.Input((4, 64)),
                              keras.layers.Dropout(0.5, noise_shape=(None, 1, 64), seed=1)])

    @tf.function(jit_compile=True)
    def step(x):
        with threefry_dropout(model):
            return model(x, training=True)

    outputs = step(tf.ones((50, 4, 64))).numpy()
    np.testing.assert_array_equal(outputs, np.repeat(outputs[:, :1], 4, axis=1))
    assert abs(np.mean(outputs == 0) - 0.5) < 0.05
    np.testing.assert_allclose(outputs[outputs != 0], 2.0)


@pytest.mark.parametrize("masks, expected", [("threefry", ThreefryDropout),
                                             ("keras", keras.layers.Dropout)])
def test_trainer_draws_masks_as_configured(tmp_path, masks, expected):
    dropout = keras.layers.Dropout(0.5, seed=2)
    seen = []  # the dropout layer's class while the step is traced

    def probe(values):
        seen.append(type(dropout))
        return values

    inputs = keras.Input((8,), name="x")
    hidden = keras.layers.Lambda(probe)(dropout(keras.layers.Dense(8)(inputs)))
    model = keras.Model({"x": inputs}, {"logits": keras.layers.Dense(3)(hidden)})
    config = Config()
    config.training.jit_compile = "true"
    config.training.dropout_masks = masks
    trainer = Trainer.from_config(model, config, tf.distribute.get_strategy(), 4, str(tmp_path),
                      log=lambda line: None)
    seen.clear()
    loss, _ = trainer.train_step(({"x": tf.ones((4, 8))}, tf.constant([0, 1, 2, 0])))
    assert np.isfinite(float(loss))
    assert seen and all(kind is expected for kind in seen), seen
    assert type(dropout) is keras.layers.Dropout
