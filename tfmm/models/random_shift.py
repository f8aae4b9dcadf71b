"""Random whole-pixel translation of images, written with matrix products so XLA compiles it."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="tfmm")
class RandomShift(keras.layers.Layer):
    """Shifts each image by a random whole number of pixels, filling with zeros, in training.

    `keras.layers.RandomTranslation` uses an op (ImageProjectiveTransformV3) that XLA cannot
    compile; an integer shift is a product with two shift matrices, which it can.

    Args:
        max_fraction: largest shift as a fraction of the height/width (e.g. 0.1 of 32 = 3 px).
        seed: seed of the random draws.

    Input/output shape: [B, H, W, C]. At inference the images pass through unchanged.
    """

    def __init__(self, max_fraction=0.1, seed=None, **kwargs):
        super().__init__(**kwargs)
        if not 0.0 <= max_fraction < 1.0:
            raise ValueError(f"RandomShift: `max_fraction` must be in [0, 1). "
                             f"Received: {max_fraction}")
        self.max_fraction = max_fraction
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def _shift_matrices(self, batch_size, size, max_shift):
        shifts = keras.random.randint((batch_size, 1, 1), -max_shift, max_shift + 1,
                                      seed=self.seed_generator)
        rows = ops.reshape(ops.arange(size), (1, size, 1))
        columns = ops.reshape(ops.arange(size), (1, 1, size))
        # matrix[b, i, j] = 1 where output position i takes input position j = i - shift.
        return ops.cast(ops.equal(columns, rows - shifts), self.compute_dtype)

    def call(self, images, training=None):
        height, width = images.shape[1], images.shape[2]
        max_rows = int(self.max_fraction * height)
        max_columns = int(self.max_fraction * width)
        if not training or (max_rows == 0 and max_columns == 0):
            return images
        batch_size = ops.shape(images)[0]
        vertical = self._shift_matrices(batch_size, height, max_rows)
        horizontal = self._shift_matrices(batch_size, width, max_columns)
        shifted = ops.einsum("bij,bjwc->biwc", vertical, images)
        return ops.einsum("bkw,biwc->bikc", horizontal, shifted)

    def get_config(self):
        config = super().get_config()
        config.update({"max_fraction": self.max_fraction, "seed": self.seed})
        return config
