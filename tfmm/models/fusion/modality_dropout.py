"""Modality dropout: hide whole modalities at random during training."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="tfmm")
class ModalityDropout(keras.layers.Layer):
    """Sets each present modality's mask to 0 with probability `rate`, in training only.

    An example never loses its last present modality: where every present one would be
    dropped, its masks are kept as they were. At inference the masks pass through unchanged.

    Args:
        rate: drop probability per modality and example, in [0, 1).
        seed: seed of the random draws.

    Call arguments:
        masks: float [B, M], 1 where present.

    Returns:
        float [B, M].
    """

    def __init__(self, rate=0.0, seed=None, **kwargs):
        super().__init__(**kwargs)
        if not 0.0 <= rate < 1.0:
            raise ValueError(f"ModalityDropout: `rate` must be in [0, 1). Received: rate={rate}")
        self.rate = rate
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, masks, training=None):
        if not training or self.rate == 0.0:
            return masks
        keep = keras.random.uniform(ops.shape(masks), seed=self.seed_generator) >= self.rate
        dropped = masks * ops.cast(keep, masks.dtype)
        nothing_left = ops.sum(dropped, axis=-1, keepdims=True) == 0
        return ops.where(nothing_left, masks, dropped)

    def get_config(self):
        config = super().get_config()
        config.update({"rate": self.rate, "seed": self.seed})
        return config
