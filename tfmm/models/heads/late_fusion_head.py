"""The head of late fusion: one task head per modality, outputs averaged over present ones."""

import keras
from keras import ops

from tfmm.models.heads.task_head import TaskHead


@keras.saving.register_keras_serializable(package="tfmm")
class LateFusionHead(keras.layers.Layer):
    """A `TaskHead` per modality; the output is the mean of the present modalities' outputs
    (logits for classification, predictions for regression), in float32.

    Args:
        task, num_outputs, hidden_dim, dropout: as `TaskHead` (each modality's head).
        num_modalities: M.

    Call arguments:
        per_modality: float [B, M, D] (`LateFusion`'s output).
        masks: float [B, M], 1 where present (at least one per example).

    Returns:
        float32 [B, num_outputs]; an absent modality's head does not contribute.
    """

    reads_masks = True  # `fuse_and_predict` passes the modality masks

    def __init__(self, task="multiclass", num_outputs=2, num_modalities=1, hidden_dim=256,
                 dropout=0.1, **kwargs):
        super().__init__(**kwargs)
        self.task = task
        self.num_outputs = num_outputs
        self.num_modalities = num_modalities
        self.hidden_dim = hidden_dim
        self.dropout = dropout
        self.modality_heads = [
            TaskHead(task, num_outputs, hidden_dim=hidden_dim, dropout=dropout,
                     name=f"modality_head_{index}", dtype=self.dtype_policy)
            for index in range(num_modalities)]

    def build(self, per_modality_shape, masks_shape=None):
        for head in self.modality_heads:
            head.build((per_modality_shape[0], per_modality_shape[2]))
        self.built = True

    def call(self, per_modality, masks, training=None):
        outputs = ops.stack([head(per_modality[:, index, :], training=training)
                             for index, head in enumerate(self.modality_heads)], axis=1)
        weights = ops.expand_dims(ops.cast(masks, "float32"), -1)  # [B, M, 1]
        total = ops.sum(ops.where(weights > 0, outputs, 0.0), axis=1)
        return total / ops.maximum(ops.sum(weights, axis=1), 1.0)

    def compute_output_shape(self, per_modality_shape, masks_shape=None):
        return (per_modality_shape[0], self.num_outputs)

    def get_config(self):
        config = super().get_config()
        config.update({"task": self.task, "num_outputs": self.num_outputs,
                       "num_modalities": self.num_modalities, "hidden_dim": self.hidden_dim,
                       "dropout": self.dropout})
        return config
