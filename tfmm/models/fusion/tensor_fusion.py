"""Tensor fusion (TFN, Zadeh et al. 2017): the outer product of every modality's [h; 1]."""

import string

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="tfmm")
class TensorFusion(keras.layers.Layer):
    """Each modality's vector is projected to `tensor_dim` values h_m and extended with a 1; the
    outer product of those M vectors (all unimodal, bimodal, ... M-modal products of their
    values) is flattened and projected to `output_dim`.

    An absent modality's h_m is 0, so its [h_m; 1] is [0, ..., 0, 1]: the product keeps only the
    terms of the present modalities, and the absent input cannot change the output.

    Args:
        tensor_dim: width of each h_m; the product has (tensor_dim + 1) ** M values.
        output_dim: output width.
        dropout: dropout on the flattened product.

    Call arguments:
        embeddings: float [B, M, D]; masks: float [B, M], 1 where present.

    Returns:
        float [B, output_dim].
    """

    def __init__(self, tensor_dim=16, output_dim=128, dropout=0.1, **kwargs):
        super().__init__(**kwargs)
        self.tensor_dim = tensor_dim
        self.output_dim = output_dim
        self.dropout = dropout

    def build(self, embeddings_shape, masks_shape=None):
        _, num_modalities, width = embeddings_shape
        if num_modalities > len(string.ascii_lowercase) - 2:
            raise ValueError(f"TensorFusion: too many modalities ({num_modalities})")
        self.num_modalities = num_modalities
        self.modality_projections = []
        for index in range(num_modalities):
            layer = keras.layers.Dense(self.tensor_dim, name=f"modality_projection_{index}",
                                       dtype=self.dtype_policy)
            layer.build((None, width))
            self.modality_projections.append(layer)
        self.product_dropout = keras.layers.Dropout(self.dropout, dtype=self.dtype_policy)
        self.output_projection = keras.layers.Dense(self.output_dim, activation="relu",
                                                    name="output_projection",
                                                    dtype=self.dtype_policy)
        self.output_projection.build((None, (self.tensor_dim + 1) ** num_modalities))
        self.built = True

    def call(self, embeddings, masks, training=None):
        masks = ops.cast(masks, self.compute_dtype)
        product = None
        letters = string.ascii_lowercase[1:]  # "a" is the batch axis
        for index, projection in enumerate(self.modality_projections):
            hidden = projection(embeddings[:, index, :]) * masks[:, index:index + 1]
            extended = ops.concatenate([hidden, ops.ones_like(hidden[:, :1])], axis=-1)
            if product is None:
                product = extended
                continue
            axes = letters[:index]
            product = ops.einsum(f"a{axes},a{letters[index]}->a{axes}{letters[index]}",
                                 product, extended)
        flat = ops.reshape(product, (-1, (self.tensor_dim + 1) ** self.num_modalities))
        return self.output_projection(self.product_dropout(flat, training=training))

    def compute_output_shape(self, embeddings_shape, masks_shape=None):
        return (embeddings_shape[0], self.output_dim)

    def get_config(self):
        config = super().get_config()
        config.update({"tensor_dim": self.tensor_dim, "output_dim": self.output_dim,
                       "dropout": self.dropout})
        return config
