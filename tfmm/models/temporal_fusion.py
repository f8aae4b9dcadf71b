"""Temporal fusion: per-frame vectors [B, T, D] and a frame mask [B, T] -> one clip vector [B, D]."""

import keras
import keras_hub

from tfmm.models.fusion.attention_fusion import AttentionFusion
from tfmm.models.fusion.attention_pooling import AttentionPooling
from tfmm.models.pooling import MaskedMeanPooling


def time_positions(frames, name: str):
    """Frames [B, T, D] plus a learned embedding per time step (keras-hub PositionEmbedding)."""
    positions = keras_hub.layers.PositionEmbedding(frames.shape[1], name=f"{name}_time_positions")
    return keras.layers.Add(name=f"{name}_with_time")([frames, positions(frames)])


def temporal_fusion(frames, frame_mask, temporal: str, num_heads: int = 4, num_layers: int = 1,
                    dropout: float = 0.0, name: str = "video"):
    """Pools frames over time, ignoring padding frames (symbolic Keras tensors in and out).

    Args:
        frames: float [B, T, D] per-frame vectors.
        frame_mask: float [B, T], 1 for real frames.
        temporal: "mean": masked mean (blind to the order of the frames); "attention": learned
            time positions, then a learned query attends over the real frames
            (`AttentionPooling`); "transformer": `AttentionFusion` over the frames (its learned
            per-token embedding is a time-position embedding; padding frames are masked as
            attention keys in every layer and in the pooling).
        num_heads: attention heads ("attention", "transformer"); must divide D.
        num_layers: transformer layers ("transformer").
        dropout: dropout inside the transformer layers.
        name: prefix of the layer names.

    Returns:
        float [B, D]. Padding frames get zero weight: their values never change the output.
        A clip whose frames are all padding (an absent video, masked out by the model's
        modality mask) gives a finite vector.
    """
    if temporal == "mean":
        return MaskedMeanPooling(name=f"{name}_temporal_mean")(frames, frame_mask)
    if temporal == "attention":
        return AttentionPooling(num_heads, name=f"{name}_temporal_attention")(
            time_positions(frames, name), frame_mask)
    if temporal == "transformer":
        return AttentionFusion(num_heads=num_heads, num_layers=num_layers, dropout=dropout,
                               name=f"{name}_temporal_transformer")(frames, frame_mask)
    raise ValueError("temporal_fusion: `temporal` must be one of ['mean', 'attention', "
                     f"'transformer']. Received: {temporal!r}")
