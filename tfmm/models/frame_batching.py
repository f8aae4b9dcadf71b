"""Per-frame models over clips: frames of all clips as one batch, and back; padding frames blanked."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="tfmm")
class MergeFrames(keras.layers.Layer):
    """Clips [B, T, ...] -> frames [B * T, ...], so a per-frame model runs on one batch.

    Example:
        frames = MergeFrames()(clips)        # [B, T, S, S, 3] -> [B * T, S, S, 3]
        features = SplitFrames(T)(cnn(frames))  # [B * T, F] -> [B, T, F]
    """

    def call(self, clips):
        return ops.reshape(clips, (-1,) + tuple(clips.shape[2:]))

    def compute_output_shape(self, clips_shape):
        return (None,) + tuple(clips_shape[2:])


@keras.saving.register_keras_serializable(package="tfmm")
class SplitFrames(keras.layers.Layer):
    """Frames [B * T, ...] -> clips [B, T, ...] (the inverse of `MergeFrames`).

    Args:
        num_frames: T, frames per clip.
    """

    def __init__(self, num_frames, **kwargs):
        super().__init__(**kwargs)
        if num_frames < 1:
            raise ValueError(f"SplitFrames: `num_frames` must be >= 1. Received: {num_frames}")
        self.num_frames = num_frames

    def call(self, frames):
        return ops.reshape(frames, (-1, self.num_frames) + tuple(frames.shape[1:]))

    def compute_output_shape(self, frames_shape):
        return (None, self.num_frames) + tuple(frames_shape[1:])

    def get_config(self):
        config = super().get_config()
        config["num_frames"] = self.num_frames
        return config


@keras.saving.register_keras_serializable(package="tfmm")
class BlankPaddingFrames(keras.layers.Layer):
    """Sets the pixels of padding frames to 0, so what a padding frame holds never reaches the
    output (not even through the BatchNorm batch statistics of a trainable per-frame model).

    Call arguments:
        clips: float [B, T, S, S, C].
        frame_mask: float [B, T], 1 for real frames.

    Returns:
        float [B, T, S, S, C]: real frames unchanged, padding frames all 0.
    """

    def call(self, clips, frame_mask):
        keep = ops.cast(frame_mask, clips.dtype)
        return clips * ops.reshape(keep, tuple(ops.shape(keep)) + (1,) * (len(clips.shape) - 2))

    def compute_output_shape(self, clips_shape, frame_mask_shape=None):
        return clips_shape
