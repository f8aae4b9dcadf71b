"""Gated fusion (a gated multimodal unit, Arevalo et al. 2017) over the present modalities."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="tfmm")
class GatedFusion(keras.layers.Layer):
    """A gate per modality and feature decides how much of each modality's transformed vector
    enters the output:

        value_m = tanh(W_m x_m),  gates = softmax over present modalities of G_m [x~_1; ...; x~_M]
        output = sum_m gates_m * value_m

    where x~ holds each present modality's vector and a learned "absent" vector for an absent
    one (as `ConcatFusion`). An absent modality gets gate 0 and its input is never read.

    Call arguments:
        embeddings: float [B, M, D]; masks: float [B, M], 1 where present (at least one).

    Returns:
        float [B, D].
    """

    def build(self, embeddings_shape, masks_shape=None):
        _, num_modalities, width = embeddings_shape
        self.absent_embeddings = self.add_weight(
            shape=(num_modalities, width), initializer="zeros", name="absent_embeddings")
        self.value_layers = []
        for index in range(num_modalities):
            layer = keras.layers.Dense(width, activation="tanh", name=f"modality_value_{index}",
                                       dtype=self.dtype_policy)
            layer.build((None, width))
            self.value_layers.append(layer)
        self.gate_layer = keras.layers.Dense(num_modalities * width, name="modality_gates",
                                             dtype=self.dtype_policy)
        self.gate_layer.build((None, num_modalities * width))
        self.built = True

    def call(self, embeddings, masks, return_gates=False):
        num_modalities, width = embeddings.shape[1], embeddings.shape[2]
        present = ops.cast(ops.expand_dims(masks, -1), "float32") > 0  # [B, M, 1]
        absent = ops.cast(ops.expand_dims(self.absent_embeddings, 0), embeddings.dtype)
        chosen = ops.where(present, embeddings, absent)
        logits = ops.reshape(self.gate_layer(ops.reshape(chosen, (-1, num_modalities * width))),
                             (-1, num_modalities, width))
        logits = ops.where(present, ops.cast(logits, "float32"), -1e9)
        gates = ops.softmax(logits, axis=1)  # [B, M, D], 0 on absent modalities
        values = ops.stack([layer(chosen[:, index, :])
                            for index, layer in enumerate(self.value_layers)], axis=1)
        fused = ops.sum(ops.cast(gates, values.dtype) * values, axis=1)
        return (fused, gates) if return_gates else fused

    def compute_output_shape(self, embeddings_shape, masks_shape=None):
        return (embeddings_shape[0], embeddings_shape[2])
