"""Late fusion: no fusion layer at all; each modality's vector goes to its own head."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="tfmm")
class LateFusion(keras.layers.Layer):
    """Passes each modality's vector on unchanged, absent modalities' rows set to 0.

    The model's head is a `LateFusionHead` (one `TaskHead` per modality, outputs averaged over
    the present modalities), which reads the masks too.

    Call arguments:
        embeddings: float [B, M, D]; masks: float [B, M], 1 where present.

    Returns:
        float [B, M, D].
    """

    def call(self, embeddings, masks):
        present = ops.cast(ops.expand_dims(masks, -1), "float32") > 0
        return ops.where(present, embeddings, ops.zeros_like(embeddings))

    def compute_output_shape(self, embeddings_shape, masks_shape=None):
        return tuple(embeddings_shape)
