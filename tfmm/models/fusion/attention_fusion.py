"""Attention fusion: modality tokens, transformer layers across them, attention pooling."""

import keras
import keras_hub
from keras import ops

from tfmm.models.fusion.attention_pooling import AttentionPooling


@keras.saving.register_keras_serializable(package="tfmm")
class AttentionFusion(keras.layers.Layer):
    """Each modality is one token; tokens attend to each other, then a learned query pools them.

    A learned modality-type embedding is added to each token so the layers know which token is
    which. Masked-out modalities are excluded as attention keys in every layer and in the
    pooling, so an absent modality never contributes to the output.

    Args:
        num_heads: attention heads (the token width must be divisible by it).
        num_layers: pre-LayerNorm transformer encoder layers (keras-hub TransformerEncoder).
        intermediate_dim: width of each layer's feed-forward block; 0 means 2x the token width.
        dropout: dropout inside the transformer layers.

    Call arguments:
        embeddings: float [B, M, D], one token per modality.
        masks: float [B, M], 1 where present; every example needs at least one present modality.

        return_attention_scores: also return the attention weights (for explanations; the
            default output, and so the saved model, are unchanged).

    Returns:
        float [B, D]; with return_attention_scores, (that, {"fusion_transformer_<i>": float
        [B, heads, M, M] (query token, key token), "fusion_pooling": float [B, heads, 1, M]}).
        Each row of weights sums to 1 over the present modalities and is 0 on masked ones.
    """

    def __init__(self, num_heads=4, num_layers=1, intermediate_dim=0, dropout=0.1, **kwargs):
        super().__init__(**kwargs)
        self.num_heads = num_heads
        self.num_layers = num_layers
        self.intermediate_dim = intermediate_dim
        self.dropout = dropout

    def build(self, embeddings_shape, masks_shape=None):
        _, num_modalities, width = embeddings_shape
        self.modality_embeddings = self.add_weight(
            shape=(num_modalities, width), initializer="random_normal",
            name="modality_type_embeddings")
        self.encoder_layers = []
        for index in range(self.num_layers):
            layer = keras_hub.layers.TransformerEncoder(
                intermediate_dim=self.intermediate_dim or 2 * width, num_heads=self.num_heads,
                dropout=self.dropout, activation="gelu", normalize_first=True,
                name=f"fusion_transformer_{index}", dtype=self.dtype_policy)
            layer.build(embeddings_shape)
            self.encoder_layers.append(layer)
        self.final_norm = keras.layers.LayerNormalization(epsilon=1e-6, name="fusion_norm",
                                                          dtype=self.dtype_policy)
        self.final_norm.build(embeddings_shape)
        self.pooling = AttentionPooling(self.num_heads, name="fusion_pooling",
                                        dtype=self.dtype_policy)
        self.pooling.build(embeddings_shape)
        self.built = True

    def call(self, embeddings, masks, training=None, return_attention_scores=False):
        tokens = embeddings + ops.cast(ops.expand_dims(self.modality_embeddings, 0),
                                       embeddings.dtype)
        padding_mask = ops.cast(masks, "bool")
        weights = {}
        for layer in self.encoder_layers:
            if not return_attention_scores:
                tokens = layer(tokens, padding_mask=padding_mask, training=training)
                continue
            tokens, weights[layer.name] = layer(tokens, padding_mask=padding_mask,
                                                training=training, return_attention_scores=True)
        tokens = self.final_norm(tokens)
        if not return_attention_scores:
            return self.pooling(tokens, masks)
        pooled, weights[self.pooling.name] = self.pooling(tokens, masks,
                                                          return_attention_scores=True)
        return pooled, weights

    def compute_output_shape(self, embeddings_shape, masks_shape=None):
        return (embeddings_shape[0], embeddings_shape[2])

    def get_config(self):
        config = super().get_config()
        config.update({"num_heads": self.num_heads, "num_layers": self.num_layers,
                       "intermediate_dim": self.intermediate_dim, "dropout": self.dropout})
        return config
