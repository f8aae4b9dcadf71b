"""ThreeFry dropout masks inside XLA-compiled steps (tfmm/models/dropout.py)."""

import keras
import numpy as np
import tensorflow as tf

from helpers.tiny import write_bert_preset
from tfmm.models.dropout import ThreefryDropout, threefry_dropout
from tfmm.models.text_encoder import load_bert_backbone


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
