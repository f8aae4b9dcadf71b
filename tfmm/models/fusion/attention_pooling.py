"""Attention pooling: a learned query attends over a masked set of tokens."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="tfmm")
class AttentionPooling(keras.layers.Layer):
    """Pools [B, M, D] tokens into [B, D] with multi-head attention from a learned query.

    Args:
        num_heads: attention heads; D must be divisible by it.

    Call arguments:
        tokens: float [B, M, D].
        masks: float [B, M], 1 for tokens that may be attended to (at least one per example).
        return_attention_scores: also return the weights [B, num_heads, 1, M].
    """

    def __init__(self, num_heads=4, **kwargs):
        super().__init__(**kwargs)
        self.num_heads = num_heads

    def build(self, tokens_shape, masks_shape=None):
        width = tokens_shape[-1]
        if width % self.num_heads:
            raise ValueError(f"AttentionPooling: token width must be divisible by num_heads. "
                             f"Received: width={width}, num_heads={self.num_heads}")
        self.query = self.add_weight(shape=(1, 1, width), initializer="random_normal",
                                     name="query_embeddings")
        self.attention = keras.layers.MultiHeadAttention(
            self.num_heads, width // self.num_heads, name="pooling_attention", dtype=self.dtype_policy)
        self.attention.build((None, 1, width), (None, tokens_shape[1], width))
        self.built = True

    def call(self, tokens, masks, return_attention_scores=False):
        batch_size = ops.shape(tokens)[0]
        query = ops.broadcast_to(ops.cast(self.query, tokens.dtype), (batch_size, 1, tokens.shape[-1]))
        attention_mask = ops.cast(ops.expand_dims(masks, 1), "bool")  # [B, 1, M]
        pooled, scores = self.attention(query, tokens, attention_mask=attention_mask,
                                        return_attention_scores=True)
        pooled = ops.squeeze(pooled, 1)
        return (pooled, scores) if return_attention_scores else pooled

    def compute_output_shape(self, tokens_shape, masks_shape=None):
        return (tokens_shape[0], tokens_shape[2])

    def get_config(self):
        config = super().get_config()
        config["num_heads"] = self.num_heads
        return config
