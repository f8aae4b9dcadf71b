"""Concatenation fusion with a learned stand-in for each missing modality."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="tfmm")
class ConcatFusion(keras.layers.Layer):
    """Concatenates one vector per modality; a masked-out modality is replaced, not zero-filled.

    Where an example lacks a modality, its slot holds a learned "absent" vector of that modality
    (one per modality), so the head sees an explicit "missing" signal instead of a zero vector
    that looks like data, and the placeholder tensor of the missing input is never read.

    Call arguments:
        embeddings: float [B, M, D], one row per modality.
        masks: float [B, M], 1 where the modality is present.

    Returns:
        float [B, M * D].
    """

    def build(self, embeddings_shape, masks_shape=None):
        _, num_modalities, width = embeddings_shape
        self.absent_embeddings = self.add_weight(
            shape=(num_modalities, width), initializer="zeros", name="absent_embeddings")
        self.built = True

    def call(self, embeddings, masks):
        present = ops.cast(ops.expand_dims(masks, -1), embeddings.dtype) > 0
        absent = ops.cast(ops.expand_dims(self.absent_embeddings, 0), embeddings.dtype)
        chosen = ops.where(present, embeddings, absent)
        return ops.reshape(chosen, (-1, chosen.shape[1] * chosen.shape[2]))

    def compute_output_shape(self, embeddings_shape, masks_shape=None):
        return (embeddings_shape[0], embeddings_shape[1] * embeddings_shape[2])
