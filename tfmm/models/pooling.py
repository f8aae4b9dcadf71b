"""Masked mean pooling over a sequence."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="tfmm")
class MaskedMeanPooling(keras.layers.Layer):
    """Mean of the vectors whose mask is 1.

    Call arguments:
        sequence: float [B, L, D].
        mask: int or bool [B, L], 1 for real positions.

    Returns:
        float [B, D]; an all-zero mask gives zeros (no division by zero).
    """

    def call(self, sequence, mask):
        weights = ops.cast(ops.expand_dims(mask, -1), sequence.dtype)
        total = ops.sum(sequence * weights, axis=1)
        count = ops.maximum(ops.sum(weights, axis=1), ops.cast(1.0, sequence.dtype))
        return total / count

    def compute_output_shape(self, sequence_shape, mask_shape=None):
        return (sequence_shape[0], sequence_shape[2])
