"""Token-level cross-modal attention: every modality's tokens in one transformer, or text tokens
attending over the other modalities' tokens (co-attention)."""

import keras
import keras_hub
from keras import ops

from tfmm.models.fusion.attention_pooling import AttentionPooling

MODES = ("single_stream", "co_attention")
POOLINGS = ("cls", "attention")


@keras.saving.register_keras_serializable(package="tfmm")
class CoAttentionBlock(keras.layers.Layer):
    """Pre-LayerNorm block: queries attend to each other, then over the key tokens, then a
    feed-forward layer (each with a residual connection).

    Args:
        num_heads: attention heads (the width must be divisible by it).
        intermediate_dim: feed-forward width.
        dropout: dropout of the attention weights and after each sub-block.

    Call arguments:
        queries: [B, Q, D]; query_mask: bool [B, Q] (False: never attended to).
        keys: [B, K, D]; key_mask: bool [B, K] (at least one True per example).
        return_attention_scores: also return (self [B, heads, Q, Q], cross [B, heads, Q, K]).
    """

    def __init__(self, num_heads=4, intermediate_dim=256, dropout=0.1, **kwargs):
        super().__init__(**kwargs)
        self.num_heads = num_heads
        self.intermediate_dim = intermediate_dim
        self.dropout = dropout

    def build(self, queries_shape, query_mask_shape=None, keys_shape=None, key_mask_shape=None):
        width = queries_shape[-1]
        policy = self.dtype_policy
        self.self_attention = keras.layers.MultiHeadAttention(
            self.num_heads, width // self.num_heads, dropout=self.dropout,
            name="self_attention", dtype=policy)
        self.self_attention.build(queries_shape, queries_shape)
        self.cross_attention = keras.layers.MultiHeadAttention(
            self.num_heads, width // self.num_heads, dropout=self.dropout,
            name="cross_attention", dtype=policy)
        self.cross_attention.build(queries_shape, keys_shape)
        self.norms = []
        for name in ("self_norm", "query_norm", "key_norm", "feedforward_norm"):
            norm = keras.layers.LayerNormalization(epsilon=1e-6, name=name, dtype=policy)
            norm.build(keys_shape if name == "key_norm" else queries_shape)
            self.norms.append(norm)
        self.feedforward_in = keras.layers.Dense(self.intermediate_dim, activation="gelu",
                                                 name="feedforward_in", dtype=policy)
        self.feedforward_in.build(queries_shape)
        self.feedforward_out = keras.layers.Dense(width, name="feedforward_out", dtype=policy)
        self.feedforward_out.build((*queries_shape[:-1], self.intermediate_dim))
        self.output_dropout = keras.layers.Dropout(self.dropout, dtype=policy)
        self.built = True

    def call(self, queries, query_mask, keys, key_mask, training=None,
             return_attention_scores=False):
        self_norm, query_norm, key_norm, feedforward_norm = self.norms
        normed = self_norm(queries)
        attended, self_scores = self.self_attention(
            normed, normed, attention_mask=ops.expand_dims(query_mask, 1), training=training,
            return_attention_scores=True)
        queries = queries + self.output_dropout(attended, training=training)
        attended, cross_scores = self.cross_attention(
            query_norm(queries), key_norm(keys), attention_mask=ops.expand_dims(key_mask, 1),
            training=training, return_attention_scores=True)
        queries = queries + self.output_dropout(attended, training=training)
        hidden = self.feedforward_out(self.feedforward_in(feedforward_norm(queries)))
        queries = queries + self.output_dropout(hidden, training=training)
        if return_attention_scores:
            return queries, (self_scores, cross_scores)
        return queries

    def compute_output_shape(self, queries_shape, *shapes):
        return queries_shape

    def get_config(self):
        config = super().get_config()
        config.update({"num_heads": self.num_heads, "intermediate_dim": self.intermediate_dim,
                       "dropout": self.dropout})
        return config


@keras.saving.register_keras_serializable(package="tfmm")
class CrossAttentionFusion(keras.layers.Layer):
    """Fuses the token sequences of all modalities with attention across them.

    A learned modality-type embedding (one per modality, in the model's order) is added to
    every token of that modality. A token takes part only where its token mask and its
    modality's mask are both 1: padding and every token of an absent (or dropped) modality get
    exactly zero attention weight in every layer and in the pooling, so they cannot change the
    output.

    With `summary_tokens`, each modality's sequence starts with a summary token: the mean of its
    real tokens plus a learned summary embedding (masked like the modality). Encoders trained
    pooled (`model.init_encoders_from`) hand over their projection, so that mean is the pooled
    vector they were trained to give (plus the mean position embedding): the fusion starts
    from what a pooled method sees and can still attend to single tokens.

    With `pooled_skip`, those per-modality means also bypass the transformer: the output is a
    learned projection of [pooled output; mean of modality 0's tokens; ...], each absent
    modality's mean replaced by a learned "absent" vector (as concat fusion does). The head
    then always sees the pooled vectors a pooled method sees, plus what attention over the
    tokens adds.

    mode "single_stream" (ViLT-like): all modalities' tokens are concatenated (with a learned
    fusion token in front for pooling "cls") and pass `num_layers` transformer encoder layers.
    mode "co_attention": the tokens of modality `query_index` (text) and a learned fusion token
    are the queries; each `CoAttentionBlock` lets them attend to each other and then over the
    other modalities' tokens and a learned "nothing" token (so a query always has something to
    attend to when every other modality is absent).

    Args:
        num_heads: attention heads (the width must be divisible by it).
        num_layers: transformer (or co-attention) layers.
        intermediate_dim: feed-forward width; 0 means 2x the token width.
        dropout: dropout inside the layers.
        mode: "single_stream" or "co_attention".
        pooling: "cls" (the fusion token's final state) or "attention" (a learned query
            attends over the final tokens; single_stream then has no fusion token).
        query_index: co_attention only: which modality gives the queries.
        summary_tokens: put a summary token (the mean of the real tokens) in front of each
            modality's tokens.
        pooled_skip: project the pooled output together with each modality's token mean.

    Call arguments:
        tokens: list of M float tensors [B, T_m, D], one per modality.
        token_masks: list of M float [B, T_m], 1 for real tokens.
        masks: float [B, M], 1 where the modality is present (after modality dropout).
        return_attention_scores: also return the attention weights.

    Returns:
        float [B, D]; with return_attention_scores, (that, {layer name: float [B, heads,
        queries, keys]}). single_stream: "fusion_transformer_<i>" over the token sequence
        ([fusion token,] modality 0's tokens, modality 1's tokens, ...); co_attention:
        "fusion_co_attention_<i>_self" and "_cross" (keys: the "nothing" token, then the other
        modalities' tokens in order); pooling "attention": "fusion_pooling" [B, heads, 1, T].
        With summary_tokens, every modality's tokens are preceded by its summary token.
    """

    def __init__(self, num_heads=4, num_layers=1, intermediate_dim=0, dropout=0.1,
                 mode="single_stream", pooling="cls", query_index=0, summary_tokens=False,
                 pooled_skip=False, **kwargs):
        super().__init__(**kwargs)
        if mode not in MODES or pooling not in POOLINGS:
            raise ValueError(f"CrossAttentionFusion: `mode` must be one of {MODES} and `pooling` "
                             f"one of {POOLINGS}. Received: mode={mode!r}, pooling={pooling!r}")
        self.num_heads = num_heads
        self.num_layers = num_layers
        self.intermediate_dim = intermediate_dim
        self.dropout = dropout
        self.mode = mode
        self.pooling = pooling
        self.query_index = query_index
        self.summary_tokens = summary_tokens
        self.pooled_skip = pooled_skip

    def build(self, tokens_shape, token_masks_shape=None, masks_shape=None):
        num_modalities, width = len(tokens_shape), tokens_shape[0][-1]
        if self.mode == "co_attention" and not (num_modalities > 1
                                                and 0 <= self.query_index < num_modalities):
            raise ValueError("CrossAttentionFusion: co_attention needs >= 2 modalities and a "
                             f"query_index among them. Received: {num_modalities} modalities, "
                             f"query_index={self.query_index}")
        sequence_shape = (None, None, width)
        self.modality_embeddings = self.add_weight(
            shape=(num_modalities, width), initializer="random_normal",
            name="modality_type_embeddings")
        if self.summary_tokens:
            self.summary_embeddings = self.add_weight(
                shape=(num_modalities, width), initializer="random_normal",
                name="modality_summary_embeddings")
        self.fusion_token = self.add_weight(shape=(1, 1, width), initializer="random_normal",
                                            name="fusion_token")
        if self.mode == "co_attention":
            self.nothing_token = self.add_weight(shape=(1, 1, width),
                                                 initializer="random_normal", name="nothing_token")
        self.fusion_layers = []
        for index in range(self.num_layers):
            intermediate_dim = self.intermediate_dim or 2 * width
            if self.mode == "single_stream":
                layer = keras_hub.layers.TransformerEncoder(
                    intermediate_dim=intermediate_dim, num_heads=self.num_heads,
                    dropout=self.dropout, activation="gelu", normalize_first=True,
                    name=f"fusion_transformer_{index}", dtype=self.dtype_policy)
                layer.build(sequence_shape)
            else:
                layer = CoAttentionBlock(self.num_heads, intermediate_dim, self.dropout,
                                         name=f"fusion_co_attention_{index}",
                                         dtype=self.dtype_policy)
                layer.build(sequence_shape, None, sequence_shape, None)
            self.fusion_layers.append(layer)
        self.final_norm = keras.layers.LayerNormalization(epsilon=1e-6, name="fusion_norm",
                                                          dtype=self.dtype_policy)
        self.final_norm.build(sequence_shape)
        if self.pooling == "attention":
            self.attention_pooling = AttentionPooling(self.num_heads, name="fusion_pooling",
                                                      dtype=self.dtype_policy)
            self.attention_pooling.build(sequence_shape)
        if self.pooled_skip:
            self.absent_means = self.add_weight(shape=(num_modalities, width),
                                                initializer="zeros", name="absent_means")
            self.skip_projection = keras.layers.Dense(width, name="fusion_skip_projection",
                                                      dtype=self.dtype_policy)
            self.skip_projection.build((None, (num_modalities + 1) * width))
        self.built = True

    def _learned_token(self, weight, like):
        """A learned [1, 1, D] token repeated over the batch of `like` [B, ...]."""
        return ops.broadcast_to(ops.cast(weight, self.compute_dtype),
                                (ops.shape(like)[0], 1, weight.shape[-1]))

    def _sequence(self, tokens, token_masks, masks, indices, means):
        """Tokens of the modalities `indices` with their type embeddings (each modality's
        summary token first, with `summary_tokens`: its token mean of `means` plus its summary
        embedding), concatenated, and their masks (token mask x modality mask)."""
        sequences, sequence_masks = [], []
        for index in indices:
            embedding = ops.cast(self.modality_embeddings[index], self.compute_dtype)
            values = ops.cast(tokens[index], self.compute_dtype)
            token_mask = ops.cast(token_masks[index], "float32")
            modality_mask = ops.cast(masks[:, index:index + 1], "float32")
            if self.summary_tokens:
                mean, present = means[index]
                summary = mean + ops.cast(self.summary_embeddings[index], self.compute_dtype)
                sequences.append(summary + embedding)
                sequence_masks.append(present * modality_mask)
            sequences.append(values + embedding)
            sequence_masks.append(token_mask * modality_mask)
        return ops.concatenate(sequences, 1), ops.concatenate(sequence_masks, 1)

    @staticmethod
    def _token_mean(values, token_mask):
        """([B, 1, D] mean of the real tokens, float32 [B, 1]: 1 where there is one)."""
        count = ops.sum(token_mask, axis=1, keepdims=True)  # [B, 1]
        weights = ops.cast(token_mask / ops.maximum(count, 1.0), values.dtype)
        mean = ops.sum(values * ops.expand_dims(weights, -1), axis=1, keepdims=True)
        return mean, ops.cast(count > 0, "float32")

    def _token_means(self, tokens, token_masks):
        """Each modality's `_token_mean` (the summary tokens and the pooled skip share them)."""
        return [self._token_mean(ops.cast(values, self.compute_dtype),
                                 ops.cast(token_mask, "float32"))
                for values, token_mask in zip(tokens, token_masks)]

    def _with_pooled_skip(self, fused, means, masks):
        """[B, D]: the projection of [fused; each modality's token mean of `means`, or its
        absent vector where the modality (or every token of it) is masked]."""
        parts = [fused]
        for index, (mean, present) in enumerate(means):
            present = present * ops.cast(masks[:, index:index + 1], "float32")  # [B, 1]
            absent = ops.cast(self.absent_means[index], self.compute_dtype)
            parts.append(ops.where(present > 0, mean[:, 0, :], absent))
        return self.skip_projection(ops.concatenate(parts, -1))

    def _with_token(self, weight, sequence, sequence_mask):
        """`sequence` with a learned token in front; that token is always attended to."""
        ones = ops.ones((ops.shape(sequence)[0], 1), "float32")
        return (ops.concatenate([self._learned_token(weight, sequence), sequence], 1),
                ops.concatenate([ones, sequence_mask], 1))

    def call(self, tokens, token_masks, masks, training=None, return_attention_scores=False):
        tokens, token_masks = list(tokens), list(token_masks)
        means = (self._token_means(tokens, token_masks)
                 if self.summary_tokens or self.pooled_skip else None)
        weights = {}
        if self.mode == "single_stream":
            sequence, sequence_mask = self._sequence(tokens, token_masks, masks,
                                                     range(len(tokens)), means)
            if self.pooling == "cls":
                sequence, sequence_mask = self._with_token(self.fusion_token, sequence,
                                                           sequence_mask)
            padding_mask = ops.cast(sequence_mask, "bool")
            for layer in self.fusion_layers:
                if return_attention_scores:
                    sequence, weights[layer.name] = layer(
                        sequence, padding_mask=padding_mask, training=training,
                        return_attention_scores=True)
                else:
                    sequence = layer(sequence, padding_mask=padding_mask, training=training)
        else:
            others = [index for index in range(len(tokens)) if index != self.query_index]
            sequence, sequence_mask = self._with_token(
                self.fusion_token, *self._sequence(tokens, token_masks, masks,
                                                   [self.query_index], means))
            keys, key_mask = self._with_token(
                self.nothing_token, *self._sequence(tokens, token_masks, masks, others, means))
            query_mask, key_mask = ops.cast(sequence_mask, "bool"), ops.cast(key_mask, "bool")
            for layer in self.fusion_layers:
                if return_attention_scores:
                    sequence, (weights[layer.name + "_self"], weights[layer.name + "_cross"]) = \
                        layer(sequence, query_mask, keys, key_mask, training=training,
                              return_attention_scores=True)
                else:
                    sequence = layer(sequence, query_mask, keys, key_mask, training=training)
        sequence = self.final_norm(sequence)
        if self.pooling == "cls":
            fused = sequence[:, 0, :]
        elif return_attention_scores:
            fused, weights["fusion_pooling"] = self.attention_pooling(
                sequence, sequence_mask, return_attention_scores=True)
        else:
            fused = self.attention_pooling(sequence, sequence_mask)
        if self.pooled_skip:
            fused = self._with_pooled_skip(fused, means, masks)
        return (fused, weights) if return_attention_scores else fused

    def compute_output_shape(self, tokens_shape, token_masks_shape=None, masks_shape=None):
        return (tokens_shape[0][0], tokens_shape[0][-1])

    def get_config(self):
        config = super().get_config()
        config.update({"num_heads": self.num_heads, "num_layers": self.num_layers,
                       "intermediate_dim": self.intermediate_dim, "dropout": self.dropout,
                       "mode": self.mode, "pooling": self.pooling,
                       "query_index": self.query_index,
                       "summary_tokens": self.summary_tokens,
                       "pooled_skip": self.pooled_skip})
        return config
