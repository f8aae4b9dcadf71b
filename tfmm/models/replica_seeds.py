"""One random stream per replica: dropout, modality dropout and augmentation under tf.distribute.

Keras layers draw their random numbers from a `keras.random.SeedGenerator`, whose state is one
variable. Built under a strategy's scope that variable is mirrored, so every replica reads the
same seed and draws the same masks: N replicas would repeat one replica's noise on N slices of
the batch instead of drawing fresh noise for each example as one replica does on the whole
batch. `replica_random_streams` folds the replica's id into every seed its layers draw, while a
step that the strategy runs is traced. The state variables still advance together (and are
checkpointed), so a run is reproducible for a given seed and replica count; replica r draws a
stream of its own, a deterministic function of (seed, step, r).
"""

import contextlib

import keras
import tensorflow as tf

from tfmm.models.class_swap import swapped_class


class ReplicaSeedGenerator(keras.random.SeedGenerator):
    """A `SeedGenerator` whose `next()` seed is folded with the replica id (in a replica context
    of more than one replica; elsewhere it is the plain seed). Used only through
    `replica_random_streams`, never saved."""

    def next(self, ordered=True):
        seed = super().next(ordered=ordered)
        context = tf.distribute.get_replica_context()
        if context is None or context.num_replicas_in_sync == 1:
            return seed
        replica = tf.cast(context.replica_id_in_sync_group, tf.int32)
        folded = tf.random.experimental.stateless_fold_in(tf.cast(seed, tf.int64), replica)
        return tf.cast(folded, seed.dtype)


def seed_generators(model: keras.layers.Layer) -> list:
    """Every SeedGenerator of `model`'s layers, nested ones (keras-hub blocks) included."""
    generators, seen = [], set()
    for layer in model._flatten_layers(include_self=True, recursive=True):
        for generator in getattr(layer, "_seed_generators", ()):
            if id(generator) not in seen:
                seen.add(id(generator))
                generators.append(generator)
    return generators


@contextlib.contextmanager
def replica_random_streams(model: keras.layers.Layer):
    """While open, every SeedGenerator of `model` gives each replica its own seeds. Open it
    around the tracing of `strategy.run(...)` (the draws happen when the step is traced).

    Yields:
        The number of generators switched.
    """
    generators = [generator for generator in seed_generators(model)
                  if type(generator) is keras.random.SeedGenerator]
    with swapped_class(generators, ReplicaSeedGenerator) as count:
        yield count
