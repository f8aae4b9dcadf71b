"""Running a model over a dataset and collecting outputs, targets and the mean loss."""

import weakref

import numpy as np
import tensorflow as tf

from tfmm.tasks import get_task


# One compiled inference step per (model, task): the Trainer validates every epoch, and a new
# tf.function per call would trace the whole model again each time.
_PREDICT_STEPS = weakref.WeakKeyDictionary()


def predict_step(model, task):
    """The cached tf.function (features, targets) -> (task outputs, per-example loss)."""
    task = get_task(task)
    steps = _PREDICT_STEPS.setdefault(model, {})
    if task.name not in steps:
        model_ref = weakref.ref(model)  # a strong reference here would keep the cache entry alive

        # reduce_retracing: the last, smaller batch of a dataset does not add a trace per size.
        @tf.function(reduce_retracing=True)
        def step(features, targets):
            outputs = model_ref()(features, training=False)
            return task.select_outputs(outputs), task.per_example_loss(targets, outputs)

        steps[task.name] = step
    return steps[task.name]


def predict_dataset(model, dataset: tf.data.Dataset, task, step=None):
    """Outputs of `model` in inference mode over every batch of `dataset`.

    Args:
        model: a tfmm model (dict in, dict out).
        dataset: batches of (features, targets).
        task: a `tfmm.tasks.Task` (or its name).
        step: function (features, targets) -> (selected outputs, per-example losses [B]) run on
            each batch; `predict_step(model, task)` (the plain forward pass) when None.

    Returns:
        (outputs, targets, mean_loss): outputs {output key: float32 [N, ...]} for the task's
        `output_keys`, targets as encoded in the dataset (arrays, or a dict of arrays, rows
        concatenated), and the loss averaged over the N examples.
    """
    step = step or predict_step(model, task)
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
