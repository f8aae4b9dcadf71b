"""Image augmentation inside the model: crop-and-resize, flips, 90-degree rotations, shift, colour.

Every geometric change is a gather-free product with per-example matrices or a selection
between whole-batch flips/transposes, so XLA compiles it (`keras.layers.RandomCrop`,
`RandomRotation` and `RandomTranslation` use ops XLA cannot compile or resize per batch).
"""

import keras
from keras import ops

from tfmm.models.random_shift import RandomShift


@keras.saving.register_keras_serializable(package="tfmm")
class ImageAugmentation(keras.layers.Layer):
    """Random crop-and-resize, flips, 90-degree rotations, shift and colour jitter, in training.

    In this order, per example: a square crop of side s * S (s uniform in [crop_scale, 1], its
    corner uniform), resized back to S x S bilinearly; a left-right flip and a top-bottom flip,
    each with probability 1/2 when on; a rotation by k * 90 degrees, k uniform in {0, 1, 2, 3};
    a whole-pixel shift of up to `shift` * S, zero-filled (`RandomShift`); brightness + d * 255,
    d uniform in [-brightness, brightness]; contrast: the mean plus f * (pixel - mean), f
    uniform in [1 - contrast, 1 + contrast], over each image's pixels; clipped to [0, 255].

    Args:
        shift, horizontal_flip, vertical_flip, rotate90, crop_scale, brightness, contrast: as
            `tfmm.augmentation_config.ImageAugmentation` describes them.
        seed: seed of the draws.

    Input/output shape: float [B, S, S, C] in [0, 255] (rotate90 and crop need square images).
    At inference the images pass through unchanged.
    """

    def __init__(self, shift=0.0, horizontal_flip=False, vertical_flip=False, rotate90=False,
                 crop_scale=1.0, brightness=0.0, contrast=0.0, seed=None, **kwargs):
        super().__init__(**kwargs)
        if not 0.0 < crop_scale <= 1.0:
            raise ValueError(f"`crop_scale` must be in (0, 1]. Received: {crop_scale}")
        if brightness < 0 or not 0.0 <= contrast < 1.0:
            raise ValueError("`brightness` must be >= 0 and `contrast` in [0, 1). Received: "
                             f"brightness={brightness}, contrast={contrast}")
        self.shift, self.crop_scale = float(shift), float(crop_scale)
        self.horizontal_flip, self.vertical_flip = bool(horizontal_flip), bool(vertical_flip)
        self.rotate90 = bool(rotate90)
        self.brightness, self.contrast = float(brightness), float(contrast)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.random_shift = RandomShift(self.shift, seed=None if seed is None else seed + 1,
                                        name="random_shift") if self.shift > 0 else None

    def build(self, input_shape):
        if self.random_shift is not None:
            self.random_shift.build(input_shape)

    def _uniform(self, batch_size, low=0.0, high=1.0):
        return keras.random.uniform((batch_size, 1, 1, 1), low, high, seed=self.seed_generator)

    def call(self, images, training=None):
        if not training:
            return images
        batch_size = ops.shape(images)[0]
        if self.crop_scale < 1.0:
            images = self._crop_and_resize(images, batch_size)
        if self.horizontal_flip:
            images = ops.where(self._uniform(batch_size) < 0.5, ops.flip(images, axis=2), images)
        if self.vertical_flip:
            images = ops.where(self._uniform(batch_size) < 0.5, ops.flip(images, axis=1), images)
        if self.rotate90:
            images = self._rotate(images, batch_size)
        if self.random_shift is not None:
            images = self.random_shift(images, training=True)
        if self.brightness > 0:
            images = images + 255.0 * self._uniform(batch_size, -self.brightness, self.brightness)
        if self.contrast > 0:
            mean = ops.mean(images, axis=(1, 2, 3), keepdims=True)
            factor = self._uniform(batch_size, 1.0 - self.contrast, 1.0 + self.contrast)
            images = mean + factor * (images - mean)
        if self.brightness > 0 or self.contrast > 0:
            images = ops.clip(images, 0.0, 255.0)
        return images

    def _rotate(self, images, batch_size):
        """Each image turned counter-clockwise by k * 90 degrees, k drawn per example."""
        if images.shape[1] != images.shape[2]:
            raise ValueError(f"rotate90 needs square images. Received shape {images.shape}")
        turned = ops.flip(ops.transpose(images, (0, 2, 1, 3)), axis=1)  # np.rot90 on (H, W)
        rotations = ops.stack([images, turned, ops.flip(ops.flip(images, 1), 2),
                               ops.flip(ops.flip(turned, 1), 2)], axis=1)
        turns = keras.random.randint((batch_size,), 0, 4, seed=self.seed_generator)
        choice = ops.one_hot(turns, 4, dtype=images.dtype)[:, :, None, None, None]
        return ops.sum(choice * rotations, axis=1)

    def _crop_and_resize(self, images, batch_size):
        size = images.shape[1]
        if size != images.shape[2]:
            raise ValueError(f"crop_scale needs square images. Received shape {images.shape}")
        crop = self._uniform(batch_size, self.crop_scale, 1.0)[:, :, 0, 0] * size  # [B, 1]
        rows = resize_matrices(crop, keras.random.uniform((batch_size, 1), seed=self.seed_generator)
                               * (size - crop), size)
        columns = resize_matrices(crop, keras.random.uniform(
            (batch_size, 1), seed=self.seed_generator) * (size - crop), size)
        images = ops.einsum("bij,bjwc->biwc", ops.cast(rows, images.dtype), images)
        return ops.einsum("bkw,biwc->bikc", ops.cast(columns, images.dtype), images)

    def get_config(self):
        config = super().get_config()
        config.update({"shift": self.shift, "horizontal_flip": self.horizontal_flip,
                       "vertical_flip": self.vertical_flip, "rotate90": self.rotate90,
                       "crop_scale": self.crop_scale, "brightness": self.brightness,
                       "contrast": self.contrast, "seed": self.seed})
        return config


def resize_matrices(crop, offset, size):
    """Bilinear resampling matrices [B, size, size]: output pixel i reads the crop [offset,
    offset + crop) of the input (float [B, 1] each) at source position
    offset + (i + 0.5) * crop / size - 0.5, interpolated between its two neighbours. A crop of
    the whole image (crop = size, offset 0) gives the identity."""
    outputs = ops.cast(ops.arange(size), "float32")[None, :]
    source = offset + (outputs + 0.5) * crop / size - 0.5
    source = ops.clip(source, 0.0, size - 1.0)[:, :, None]  # [B, size, 1]
    inputs = ops.cast(ops.arange(size), "float32")[None, None, :]
    return ops.maximum(0.0, 1.0 - ops.abs(source - inputs))
