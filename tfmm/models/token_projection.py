"""The token outputs of an encoder: projection with learned positions, and the token mask."""

import math

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="tfmm")
class TokenProjection(keras.layers.Layer):
    """Projects every token to the shared width and adds learned position embeddings.

    Args:
        projection_dim: output width D.
        position_shape: () for no position embeddings (BERT's sequence output carries its own),
            (T,) for one embedding per position of a sequence (audio frames), or (rows, cols)
            for a grid flattened row by row (image feature map): a row embedding plus a column
            embedding per token (2-D positions).

    Input: float [B, T, F] with T = prod(position_shape) when position_shape is not ().
    Output: [B, T, D].
    """

    def __init__(self, projection_dim, position_shape=(), **kwargs):
        super().__init__(**kwargs)
        self.projection_dim = projection_dim
        self.position_shape = tuple(position_shape)
        if len(self.position_shape) > 2:
            raise ValueError("TokenProjection: `position_shape` must be (), (T,) or (rows, "
                             f"cols). Received: {position_shape}")
        self.dense = keras.layers.Dense(projection_dim, name="projection_dense",
                                        dtype=self.dtype_policy)

    def build(self, features_shape):
        if self.position_shape and features_shape[1] != math.prod(self.position_shape):
            raise ValueError(f"TokenProjection: {features_shape[1]} tokens do not fill the "
                             f"positions {self.position_shape}")
        self.dense.build(features_shape)
        self.position_embeddings = [
            self.add_weight(shape=(size, self.projection_dim), initializer="random_normal",
                            name=f"position_embeddings_{axis}")
            for axis, size in enumerate(self.position_shape)]
        self.built = True

    def positions(self):
        """float [T, D]: the embedding added at each token (row + column on a grid)."""
        if len(self.position_shape) == 1:
            return self.position_embeddings[0]
        rows, cols = self.position_embeddings
        grid = ops.expand_dims(rows, 1) + ops.expand_dims(cols, 0)  # [rows, cols, D]
        return ops.reshape(grid, (-1, self.projection_dim))

    def call(self, features):
        tokens = self.dense(features)
        if not self.position_shape:
            return tokens
        return tokens + ops.cast(ops.expand_dims(self.positions(), 0), tokens.dtype)

    def compute_output_shape(self, features_shape):
        return (*features_shape[:-1], self.projection_dim)

    def get_config(self):
        config = super().get_config()
        config.update({"projection_dim": self.projection_dim,
                       "position_shape": list(self.position_shape)})
        return config


@keras.saving.register_keras_serializable(package="tfmm")
class TokenMask(keras.layers.Layer):
    """float32 [B, T] token mask: the padding mask given, or all ones (every token is real).

    Call arguments:
        tokens: [B, T, ...].
        padding_mask: optional int or bool [B, T], 1 for real tokens.
    """

    def __init__(self, **kwargs):
        kwargs["dtype"] = "float32"
        super().__init__(**kwargs)

    def call(self, tokens, padding_mask=None):
        if padding_mask is not None:
            return ops.cast(padding_mask, "float32")
        return ops.ones(ops.shape(tokens)[:2], "float32")

    def compute_output_shape(self, tokens_shape, padding_mask_shape=None):
        return tuple(tokens_shape[:2])
