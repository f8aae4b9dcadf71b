"""The attention fusion's weights over the modality tokens, read from the layer itself."""

import tensorflow as tf


def attention_weights(paths, features) -> dict:
    """The weights `AttentionFusion` computes for a batch (inference mode).

    Args:
        paths: the model's `ModalityPaths` (its fusion must be an `AttentionFusion`).
        features: the model's input features of B examples.

    Returns:
        {"fusion_transformer_<i>": float32 tensor [B, heads, M, M] (query modality, key modality),
        "fusion_pooling": float32 [B, heads, M] (the pooling query's weights)}, modalities in
        `paths.modalities` order; every row sums to 1 over the present modalities and is 0 on
        the masked ones.
    """
    values = paths.attribution_inputs(features)
    _, weights = paths.predict(values, features, paths.masks(features), return_attention=True)
    weights = {name: tf.cast(value, tf.float32) for name, value in weights.items()}
    for name, value in weights.items():
        if len(value.shape) == 4 and value.shape[2] == 1:  # the pooling's single query
            weights[name] = value[:, :, 0, :]
    return weights
