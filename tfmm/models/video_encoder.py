"""Video encoder: keras.applications.InceptionV3 on every frame (its own preprocess_input), a
per-frame projection to the shared width, then temporal fusion over the real frames."""

import keras
import tensorflow as tf

from tfmm.errors import UserError
from tfmm.models.encoder_features import EncoderFeatures
from tfmm.models.frame_batching import BlankPaddingFrames, MergeFrames, SplitFrames
from tfmm.models.temporal_fusion import temporal_fusion, time_positions

MIN_FRAME_SIZE = 75  # InceptionV3's smallest input
FRAME_MASK = "video_frame_mask"


class VideoEncoderError(UserError, ValueError):
    """Video encoder settings that cannot be built (weights, frame size, heads)."""


@keras.saving.register_keras_serializable(package="tfmm")
class InceptionInputNormalization(keras.layers.Layer):
    """`keras.applications.inception_v3.preprocess_input` as a layer: RGB [0, 255] -> [-1, 1].

    Being a layer (not a Lambda) it is saved with the model and runs in the serving graph.
    """

    def call(self, images):
        return keras.applications.inception_v3.preprocess_input(images)


def load_inception_v3(frame_size: int, weights: str) -> keras.Model:
    """InceptionV3 without its top, average-pooled ([N, S, S, 3] -> [N, 2048]).

    Args:
        frame_size: static height and width (>= 75).
        weights: "" or "none" (random init), "imagenet" (downloads when online), or a local
            weights file of InceptionV3 without its top (`*_notop.h5` or `.weights.h5`).

    Raises:
        VideoEncoderError: a missing local file, or "imagenet" whose download failed (offline).
    """
    local_file = weights not in ("", "none", None, "imagenet")
    if local_file and not tf.io.gfile.exists(weights):
        raise VideoEncoderError("`model.video_encoder.weights` must be '', 'imagenet' or a local "
                                f"InceptionV3 weights file. File not found: {weights}")
    try:
        inception = keras.applications.InceptionV3(
            include_top=False, weights="imagenet" if weights == "imagenet" else None,
            input_shape=(frame_size, frame_size, 3), pooling="avg")
    except Exception as error:  # keras' get_file raises a bare Exception("URL fetch failure...")
        if weights != "imagenet" or not (isinstance(error, OSError)
                                         or "URL fetch failure" in str(error)):
            raise
        reason = " ".join(str(error).split())[:200]
        raise VideoEncoderError(
            f"model.video_encoder.weights='imagenet': downloading the InceptionV3 ImageNet "
            f"weights failed ({reason}); offline, set it to a local InceptionV3 weights file "
            "without its top (inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5, from "
            "~/.keras/models/ of a machine that downloaded it) or to '' (random "
            "initialisation)") from None
    if local_file:
        inception.load_weights(weights)
    return inception


def build_video_encoder(num_frames: int, frame_size: int, projection_dim: int, weights: str = "",
                        freeze: bool = False, temporal: str = "mean", temporal_layers: int = 1,
                        temporal_heads: int = 4, dropout: float = 0.0,
                        batchnorm_momentum: float = 0.99, output_tokens: bool = False,
                        seed: int = 0) -> keras.Model:
    """Clips of frames -> one [projection_dim] vector per clip (or per-frame tokens).

    Args:
        num_frames: T, static frames per clip (padding frames included).
        frame_size: S, static frame height and width (>= 75, InceptionV3's smallest input).
        projection_dim: output width D.
        weights: see `load_inception_v3`.
        freeze: keep InceptionV3 fixed and run it in inference mode.
        temporal: "mean" | "attention" | "transformer" (see `temporal_fusion`).
        temporal_layers, temporal_heads: transformer layers and attention heads of the fusion.
        dropout: dropout inside the temporal transformer layers.
        batchnorm_momentum: momentum of InceptionV3's BatchNorm moving statistics.
        output_tokens: return the per-frame tokens (for token-level fusion) instead of a pooled
            vector.
        seed: unused (no random layer yet); kept like the other encoder builders.

    Padding frames (mask 0) are blanked before InceptionV3 and get zero weight in the temporal
    fusion: what they hold never changes the output. InceptionV3 runs once on the B * T frames.
    The frozen part is `video_features` (input normalisation and InceptionV3, an
    `EncoderFeatures`, [B, T, S, S, 3] -> [B, T, 2048]; it does not read the mask, so
    `training.cache_frozen_features` caches per-frame features); `video_temporal` (the per-frame
    projection `video_projection` and the temporal fusion) reads the features and the frame mask
    and always learns. A trainable InceptionV3 in training computes its BatchNorm batch
    statistics over all B * T frames, the blanked padding frames included.

    Returns:
        A functional model: {"video": float32 [B, T, S, S, 3] in [0, 255], "video_frame_mask":
        float32 [B, T]} -> [B, D]; with output_tokens, -> {"tokens": [B, T, D] (per-frame
        projections plus learned time positions), "token_mask": the frame mask [B, T]}.
    """
    del seed
    if frame_size < MIN_FRAME_SIZE:
        raise VideoEncoderError(f"the video encoder (InceptionV3) needs frames of at least "
                                f"{MIN_FRAME_SIZE}x{MIN_FRAME_SIZE} (`data.video_size`). "
                                f"Received: {frame_size}")
    if temporal not in ("mean", "attention", "transformer"):
        raise VideoEncoderError("`model.video_encoder.temporal` must be one of ['mean', "
                                f"'attention', 'transformer']. Received: {temporal!r}")
    if temporal != "mean" and not output_tokens and projection_dim % temporal_heads:
        raise VideoEncoderError(
            "`model.projection_dim` must be divisible by `model.video_encoder.temporal_heads`. "
            f"Received: projection_dim={projection_dim}, temporal_heads={temporal_heads}")
    clip_shape = (num_frames, frame_size, frame_size, 3)

    # The frozen part: frames -> per-frame InceptionV3 features, no mask.
    clips = keras.Input(clip_shape, name="video")
    frames = MergeFrames(name="video_merge_frames")(clips)
    frames = InceptionInputNormalization(name="inception_input_normalization")(frames)
    inception = load_inception_v3(frame_size, weights)
    for layer in inception.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = batchnorm_momentum
    per_frame = SplitFrames(num_frames, name="video_split_frames")(inception(frames))
    video_features = EncoderFeatures(clips, per_frame, name="video_features")
    video_features.trainable = not freeze

    # The learning part: per-frame features and the frame mask -> clip vector (or tokens).
    feature_input = keras.Input(per_frame.shape[1:], name="video_features")
    mask_input = keras.Input((num_frames,), name=FRAME_MASK)
    projected = keras.layers.Dense(projection_dim, name="video_projection")(feature_input)
    if output_tokens:
        output = {"tokens": time_positions(projected, "video"), "token_mask": mask_input}
    else:
        output = temporal_fusion(projected, mask_input, temporal, num_heads=temporal_heads,
                                 num_layers=temporal_layers, dropout=dropout, name="video")
    video_temporal = keras.Model({"video_features": feature_input, FRAME_MASK: mask_input},
                                 output, name="video_temporal")

    encoder_inputs = {"video": keras.Input(clip_shape, name="video"),
                      FRAME_MASK: keras.Input((num_frames,), name=FRAME_MASK)}
    blanked = BlankPaddingFrames(name="video_blank_padding")(encoder_inputs["video"],
                                                             encoder_inputs[FRAME_MASK])
    output = video_temporal({"video_features": video_features(blanked),
                             FRAME_MASK: encoder_inputs[FRAME_MASK]})
    return keras.Model(encoder_inputs, output, name="video_encoder")
