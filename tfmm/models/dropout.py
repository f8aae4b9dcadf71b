"""Cheaper dropout masks inside XLA-compiled training steps.

Profiled (`bench/profile_step.py`, `bench/README.md` "Where the time goes"), the random bits of
the dropout masks were about a fifth of a MiniLM training step on CPU (20.5% at 128 tokens).
Keras draws them with TensorFlow's default generator (Philox), and at 128 tokens that means a
[B, 12, 128, 128] mask for the attention probabilities of every layer. ThreeFry, the
counter-based generator JAX uses by default, drew one such mask in a third of the time or less
under XLA (20-33 ms against 70-120 ms), and the masks' share of the step fell to 8.3%.
TensorFlow runs ThreeFry only inside XLA, so the model itself keeps Keras' dropout;
`threefry_dropout` switches its layers to ThreeFry only while a step that XLA compiles is
traced, and switches them back afterwards.
"""

import contextlib

import keras
import tensorflow as tf

from tfmm.models.class_swap import swapped_class


class ThreefryDropout(keras.layers.Dropout):
    """`keras.layers.Dropout` whose mask comes from `tf.random.stateless_uniform(alg="threefry")`.

    The same mask distribution: each element kept with probability 1 - rate and scaled by
    1 / (1 - rate), seeded by the layer's own seed generator. Valid only inside an XLA-compiled
    function; `threefry_dropout` is the way to use it. Not registered for saving: a model never
    holds one outside that context.

    Input and output shape: any, unchanged.
    """

    def call(self, inputs, training=False):
        if not training or self.rate <= 0:
            return inputs
        seed = self.seed_generator.next()
        if seed.dtype != tf.int32:  # Keras keeps the state in int64; stateless ops want int32
            seed = tf.cast(tf.math.floormod(seed, tf.int32.max - 1), tf.int32)
        shape = tf.shape(inputs)
        if self.noise_shape is not None:
            shape = tf.stack([shape[axis] if size is None else size
                              for axis, size in enumerate(self.noise_shape)])
        uniform = tf.random.stateless_uniform(shape, seed=seed, dtype=inputs.dtype,
                                              alg="threefry")
        keep = uniform >= tf.cast(self.rate, inputs.dtype)
        return tf.where(keep, inputs / tf.cast(1.0 - self.rate, inputs.dtype),
                        tf.zeros_like(inputs))


@contextlib.contextmanager
def threefry_dropout(model: keras.layers.Layer):
    """While the context is open, every plain `keras.layers.Dropout` inside `model` (keras-hub's
    transformer blocks included) draws its masks with ThreeFry; afterwards they are plain
    `Dropout` again. Open it only around code that XLA compiles (the tracing of a
    `tf.function(jit_compile=True)`): outside XLA TensorFlow cannot run ThreeFry.

    Yields:
        The number of dropout layers switched.
    """
    # `_flatten_layers` is how Keras itself walks nested layers (weights, summaries).
    layers = [layer for layer in model._flatten_layers(include_self=True, recursive=True)
              if type(layer) is keras.layers.Dropout]
    with swapped_class(layers, ThreefryDropout) as count:
        yield count
