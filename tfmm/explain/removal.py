"""Modality importance by removal: how much the explained score drops without each modality.

A modality is removed exactly as `tfmm.evaluation.modality_removal` does, by setting its
`<modality>_mask` to 0 (what a row without it gets), so the importance of modality m is

    score(all present modalities) - score(the same with m removed),

positive when m supports the explained class. Exact for the model, one forward pass per
modality, model-agnostic. A modality absent from the example, or the only present one (removing
it would leave nothing), gets None.
"""

import numpy as np
import tensorflow as tf

from tfmm.explain.integrated_gradients import task_score
from tfmm.preprocessing.multimodal_preprocessor import MASK_SUFFIX


def removal_importance(model, features, task_name: str, indices, forward=None) -> dict:
    """Importance of each modality for a batch.

    Args:
        model: a tfmm `MultimodalModel`.
        forward: features -> the model's output dict in inference mode (e.g. a compiled
            `model(features, training=False)`); default: the model called eagerly.
        features: the model's input features of B examples.
        task_name: the run's task ("multiclass", "multilabel", "regression").
        indices: int [B], the class (or target) explained per example.

    Returns:
        {modality: float64 [B] with NaN where the importance is undefined}.
    """
    indices = tf.constant(np.asarray(indices, np.int32))

    forward = forward or (lambda batch: model(batch, training=False))

    def scores(batch):
        (output,) = forward(batch).values()
        output = tf.cast(output, tf.float32)
        rows = tf.range(tf.shape(output)[0])
        chosen = tf.gather_nd(_as_scores(task_name, output), tf.stack([rows, indices], 1))
        return chosen.numpy().astype(np.float64)

    masks = {name: np.asarray(features[name + MASK_SUFFIX], np.float32)
             for name in model.modalities}
    present = np.stack(list(masks.values()), 1) > 0  # [B, M]
    full = scores(features)
    importance = {}
    for position, name in enumerate(model.modalities):
        others_present = np.delete(present, position, axis=1).any(axis=1)
        defined = present[:, position] & others_present
        if not defined.any():
            importance[name] = np.full(len(full), np.nan)
            continue
        removed = dict(features)
        removed[name + MASK_SUFFIX] = tf.zeros_like(features[name + MASK_SUFFIX])
        importance[name] = np.where(defined, full - scores(removed), np.nan)
    return importance


def _as_scores(task_name, output):
    """[B, K] scores of every class (or target), as `task_score` computes them."""
    num_outputs = output.shape[-1]
    return tf.stack([task_score(task_name, output, index) for index in range(num_outputs)], 1)
