"""Running a model over a dataset and collecting outputs, targets and the mean loss."""

import weakref

import numpy as np
import tensorflow as tf

from tfmm.models.heads.task_head import HEAD_KINDS
from tfmm.models.heads.task_losses import per_example_loss


# One compiled inference step per (model, task): the Trainer validates every epoch, and a new
# tf.function per call would trace the whole model again each time.
_PREDICT_STEPS = weakref.WeakKeyDictionary()


def predict_step(model, task: str):
    """The cached tf.function (features, targets) -> (selected outputs, per-example loss)."""
    steps = _PREDICT_STEPS.setdefault(model, {})
    if task not in steps:
        output_key = HEAD_KINDS[task]
        model_ref = weakref.ref(model)  # a strong reference here would keep the cache entry alive

        # reduce_retracing: the last, smaller batch of a dataset does not add a trace per size.
        @tf.function(reduce_retracing=True)
        def step(features, targets):
            outputs = model_ref()(features, training=False)
            if isinstance(output_key, str):
                selected = tf.cast(outputs[output_key], tf.float32)
            else:
                selected = {key: tf.cast(outputs[key], tf.float32) for key in output_key}
            return selected, per_example_loss(task, targets, outputs)

        steps[task] = step
    return steps[task]


def predict_dataset(model, dataset: tf.data.Dataset, task: str):
    """Outputs of `model` in inference mode over every batch of `dataset`.

    Args:
        model: a tfmm model (dict in, dict out).
        dataset: batches of (features, targets).
        task: "multiclass" | "multilabel" | "regression" | "span".

    Returns:
        (outputs, targets, mean_loss): outputs float32 [N, K] (the logits or predictions),
        targets as encoded in the dataset, and the loss averaged over the N examples. For a task
        with several outputs ("span") outputs is a dict {output key: float32 [N, ...]} and the
        targets keep the dataset's structure (a dict of [N] arrays), rows concatenated.
    """
    step = predict_step(model, task)
    all_outputs, all_targets, all_losses = [], [], []
    for features, targets in dataset:
        outputs, losses = step(features, targets)
        all_outputs.append(tf.nest.map_structure(lambda tensor: tensor.numpy(), outputs))
        all_targets.append(tf.nest.map_structure(lambda tensor: tensor.numpy(), targets))
        all_losses.append(losses.numpy())
    concatenate = lambda *arrays: np.concatenate(arrays)  # noqa: E731
    outputs = tf.nest.map_structure(concatenate, *all_outputs)
    targets = tf.nest.map_structure(concatenate, *all_targets)
    return outputs, targets, float(np.concatenate(all_losses).mean())


def to_probabilities(task: str, outputs: np.ndarray) -> np.ndarray:
    """Logits -> softmax (multiclass) or sigmoid (multilabel) probabilities; regression as is."""
    if task == "multiclass":
        shifted = outputs - outputs.max(axis=-1, keepdims=True)
        exponentials = np.exp(shifted)
        return exponentials / exponentials.sum(axis=-1, keepdims=True)
    if task == "multilabel":
        return 1.0 / (1.0 + np.exp(-outputs))
    return outputs
