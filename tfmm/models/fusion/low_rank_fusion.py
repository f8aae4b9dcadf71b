"""Low-rank multimodal fusion (LMF, Liu et al. 2018): tensor fusion with a rank-r weight."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="tfmm")
class LowRankFusion(keras.layers.Layer):
    """Tensor fusion whose weight tensor W [(d+1)^M, output_dim] is a sum of `rank` outer
    products of per-modality factors, computed without forming the product:

        output = sum_r prod_m ([h_m; 1] @ factor_m[r]) * rank_weights[r] + bias

    where h_m is modality m's vector projected to `tensor_dim` values. An absent modality's h_m
    is 0 (its [h_m; 1] = [0, ..., 0, 1]), so the absent input cannot change the output.

    Args:
        tensor_dim: width d of each h_m.
        output_dim: output width.
        rank: r, the rank of the fusion tensor (`full_weight_tensor` rebuilds it).

    Call arguments:
        embeddings: float [B, M, D]; masks: float [B, M], 1 where present.

    Returns:
        float [B, output_dim].
    """

    def __init__(self, tensor_dim=16, output_dim=128, rank=4, **kwargs):
        super().__init__(**kwargs)
        self.tensor_dim = tensor_dim
        self.output_dim = output_dim
        self.rank = rank

    def build(self, embeddings_shape, masks_shape=None):
        _, num_modalities, width = embeddings_shape
        self.modality_projections, self.factors = [], []
        for index in range(num_modalities):
            layer = keras.layers.Dense(self.tensor_dim, name=f"modality_projection_{index}",
                                       dtype=self.dtype_policy)
            layer.build((None, width))
            self.modality_projections.append(layer)
            self.factors.append(self.add_weight(
                shape=(self.rank, self.tensor_dim + 1, self.output_dim),
                initializer="glorot_normal", name=f"modality_factor_{index}"))
        self.rank_weights = self.add_weight(shape=(self.rank,), initializer="glorot_normal",
                                            name="rank_weights")
        self.bias = self.add_weight(shape=(self.output_dim,), initializer="zeros", name="bias")
        self.built = True

    def extended_vectors(self, embeddings, masks):
        """[h_m; 1] of every modality: a list of M tensors [B, tensor_dim + 1]."""
        masks = ops.cast(masks, self.compute_dtype)
        vectors = []
        for index, projection in enumerate(self.modality_projections):
            hidden = projection(embeddings[:, index, :]) * masks[:, index:index + 1]
            vectors.append(ops.concatenate([hidden, ops.ones_like(hidden[:, :1])], axis=-1))
        return vectors

    def call(self, embeddings, masks):
        fused = None
        for vector, factor in zip(self.extended_vectors(embeddings, masks), self.factors):
            projected = ops.einsum("bi,rio->bro", vector, ops.cast(factor, vector.dtype))
            fused = projected if fused is None else fused * projected
        rank_weights = ops.cast(self.rank_weights, fused.dtype)
        return ops.einsum("bro,r->bo", fused, rank_weights) + ops.cast(self.bias, fused.dtype)

    def full_weight_tensor(self):
        """The fusion tensor the factors define: [d+1, ..., d+1 (M axes), output_dim], of
        rank <= `rank` (for checks; TFN's weight has this shape with no rank limit)."""
        tensor = None
        for factor in self.factors:
            factor = ops.convert_to_tensor(factor)
            tensor = factor if tensor is None else (
                ops.expand_dims(tensor, -2) * ops.reshape(
                    factor, (self.rank,) + (1,) * (len(tensor.shape) - 2) + tuple(factor.shape[1:])))
        tensor = ops.einsum("r...,r->...", tensor, ops.convert_to_tensor(self.rank_weights))
        return tensor

    def compute_output_shape(self, embeddings_shape, masks_shape=None):
        return (embeddings_shape[0], self.output_dim)

    def get_config(self):
        config = super().get_config()
        config.update({"tensor_dim": self.tensor_dim, "output_dim": self.output_dim,
                       "rank": self.rank})
        return config
