"""The attention fusion's weights over the modality tokens, read from the layer itself."""

import tensorflow as tf

from tfmm.models.fusion.cross_attention_fusion import CrossAttentionFusion
from tfmm.preprocessing.multimodal_preprocessor import MASK_SUFFIX


def attention_weights(paths, features) -> dict:
    """The weights `AttentionFusion` (or `CrossAttentionFusion`) computes for a batch
    (inference mode).

    Args:
        paths: the model's `ModalityPaths` (its fusion must be an `AttentionFusion` or a
            `CrossAttentionFusion`).
        features: the model's input features of B examples.

    Returns:
        {"fusion_transformer_<i>": float32 tensor [B, heads, M, M] (query modality, key modality),
        "fusion_pooling": float32 [B, heads, M] (the pooling query's weights)}, modalities in
        `paths.modalities` order; every row sums to 1 over the present modalities and is 0 on
        the masked ones. For a `CrossAttentionFusion`, the weights over tokens that
        `token_attention_weights` returns.
    """
    if isinstance(paths.model.fusion, CrossAttentionFusion):
        return token_attention_weights(paths.model, features)
    values = paths.attribution_inputs(features)
    _, weights = paths.predict(values, features, paths.masks(features), return_attention=True)
    return _squeezed({name: tf.cast(value, tf.float32) for name, value in weights.items()})


def token_attention_weights(model, features) -> dict:
    """The token-level weights of a model whose fusion is a `CrossAttentionFusion`.

    Args:
        model: a `MultimodalModel` with token encoders.
        features: its input features of B examples.

    Returns:
        {layer name: float32 [B, heads, queries, keys]} as `CrossAttentionFusion` returns them
        (the pooling's single query squeezed: [B, heads, keys]); padding and absent modalities'
        tokens have weight 0. `token_positions(model)` names the keys of the single-stream
        layers.
    """
    outputs = [encoder({name: features[name] for name in encoder.input}
                       if isinstance(encoder.input, dict) else features[encoder.input.name],
                       training=False)
               for encoder in model.encoders.values()]
    masks = tf.stack([tf.cast(features[modality + MASK_SUFFIX], tf.float32)
                      for modality in model.modalities], axis=1)
    _, weights = model.fusion([output["tokens"] for output in outputs],
                              [output["token_mask"] for output in outputs], masks,
                              training=False, return_attention_scores=True)
    return _squeezed({name: tf.cast(value, tf.float32) for name, value in weights.items()})


def token_positions(model) -> list:
    """(modality, token index) of each token of a single-stream `CrossAttentionFusion`'s
    sequence, in order ("fusion", 0) first when it has a fusion token (pooling "cls"), and
    (modality, "summary") before a modality's tokens when the fusion has summary tokens."""
    positions = [("fusion", 0)] if model.fusion.pooling == "cls" else []
    for modality, encoder in model.encoders.items():
        if getattr(model.fusion, "summary_tokens", False):
            positions.append((modality, "summary"))
        positions += [(modality, index) for index in range(encoder.output["tokens"].shape[1])]
    return positions


def _squeezed(weights: dict) -> dict:
    for name, value in weights.items():
        if len(value.shape) == 4 and value.shape[2] == 1:  # the pooling's single query
            weights[name] = value[:, :, 0, :]
    return weights
