"""MaxPooling2x2: keras MaxPooling2D(2, padding="same") as reshape + max (fast XLA gradient)."""

import numpy as np
import pytest


@pytest.mark.parametrize("shape", [(2, 7, 5, 3), (3, 8, 6, 2), (1, 61, 64, 4)])
def test_max_pooling_2x2_matches_keras_max_pooling(shape):
    import keras
    import tensorflow as tf

    from tfmm.models.pooling import MaxPooling2x2

    inputs = tf.constant(np.random.default_rng(0).normal(size=shape), tf.float32)
    ours, reference = MaxPooling2x2(), keras.layers.MaxPooling2D(2, padding="same")
    for jit in (False, True):
        @tf.function(jit_compile=jit)
        def outputs_and_gradients(layer, x):
            with tf.GradientTape() as tape:
                tape.watch(x)
                y = layer(x)
                loss = tf.reduce_sum(y * tf.cos(y))  # a gradient that differs per element
            return y, tape.gradient(loss, x)

        y, dx = outputs_and_gradients(ours, inputs)
        y_ref, dx_ref = outputs_and_gradients(reference, inputs)
        assert y.shape == y_ref.shape == ours.compute_output_shape(shape)
        np.testing.assert_array_equal(y, y_ref)
        np.testing.assert_allclose(dx, dx_ref, atol=1e-6)


def test_audio_encoder_gradients_unchanged_by_the_pooling():
    """After a ReLU, tied zeros get no gradient either way: the encoder's gradients match."""
    import keras
    import tensorflow as tf

    from tfmm.models.audio_encoder import build_audio_encoder
    from tfmm.models.pooling import MaxPooling2x2

    keras.utils.set_random_seed(0)
    encoder = build_audio_encoder(800, 8000, 8, frame_length=128, frame_step=64,
                                  num_mel_bins=16, conv_filters=(4, 8), dropout=0.0)
    assert any(isinstance(layer, MaxPooling2x2) for layer in encoder._flatten_layers())
    reference = keras.models.clone_model(  # recursive: the pooling sits in `audio_features`
        encoder, clone_function=lambda layer: (
            keras.layers.MaxPooling2D(2, padding="same", name=layer.name)
            if isinstance(layer, MaxPooling2x2) else layer.__class__.from_config(
                layer.get_config())), recursive=True)
    assert not any(isinstance(layer, MaxPooling2x2) for layer in reference._flatten_layers())
    assert any(isinstance(layer, keras.layers.MaxPooling2D)
               for layer in reference._flatten_layers())
    reference.set_weights(encoder.get_weights())
    waves = tf.constant(np.random.default_rng(1).uniform(-0.5, 0.5, (4, 800)), tf.float32)

    def gradients(model):
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(tf.square(model(waves, training=True)))
        return tape.gradient(loss, model.trainable_variables)

    for ours, theirs in zip(gradients(encoder), gradients(reference)):
        np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-6)
