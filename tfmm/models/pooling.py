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


@keras.saving.register_keras_serializable(package="tfmm")
class MaxPooling2x2(keras.layers.Layer):
    """`keras.layers.MaxPooling2D(2, padding="same")` written as a reshape and a max.

    Same outputs; the same gradients wherever a window's maximum is unique (ties, such as the
    zeros after a ReLU, share the gradient instead of giving it to one element; after a ReLU
    their gradient is zero either way). Why: XLA on CPU turns MaxPooling2D's gradient
    (select-and-scatter) into four int32 index tensors of the input's size, a variadic
    reduce-window and a scatter, which took most of the audio encoder's XLA training step
    (bench/profile_step.py); the gradient of a max over a reshaped axis is elementwise.

    Input: float [B, H, W, C] with static H, W, C. Output: [B, ceil(H/2), ceil(W/2), C].
    """

    def call(self, inputs):
        height, width, channels = inputs.shape[1], inputs.shape[2], inputs.shape[3]
        # "same" padding at the end of odd dimensions, with -inf so it never wins the max.
        padded = ops.pad(inputs, [[0, 0], [0, height % 2], [0, width % 2], [0, 0]],
                         constant_values=float("-inf"))
        windows = ops.reshape(padded, (-1, (height + 1) // 2, 2, (width + 1) // 2, 2, channels))
        return ops.max(windows, axis=(2, 4))

    def compute_output_shape(self, input_shape):
        batch, height, width, channels = input_shape
        return (batch, (height + 1) // 2, (width + 1) // 2, channels)
