"""Magnitude pruning on Keras 3 (`training.pruning`, checked in tfmm/pruning_config.py).

The `Trainer` calls `after_step(step)` once per optimizer step, after the update, in the
cross-replica context of its train step. From `start_step` on, every `frequency` steps and at
`end_step`, each pruned kernel's mask is recomputed: its smallest-magnitude entries, a share
`sparsity(step)` of them, become 0. After every step from `start_step` on, the kernels are
multiplied by their masks, so a pruned weight stays exactly 0 although the optimizer updates it,
on every replica (the assignment in the cross-replica context reaches each replica's copy).

The schedule is polynomial (cubic), as in Zhu & Gupta (2017):

    sparsity(step) = target * (1 - (1 - (step - start_step) / (end_step - start_step)) ** 3)

Pruned: the trainable kernels of Dense, EinsumDense and convolution layers whose variable path
contains none of `exclude`. Never pruned: embeddings, normalisation weights, biases.

    pruning = MagnitudePruning.for_training(model, config.training, strategy)
    ...after each optimizer step: pruning.after_step(optimizer.iterations)
    kernel_sparsity(model)  # {"zeros": ..., "weights": ..., "sparsity": ...}
"""

import gzip
import os
import shutil
import tempfile

import keras
import numpy as np
import tensorflow as tf

PRUNABLE_LAYERS = (keras.layers.Dense, keras.layers.EinsumDense, keras.layers.Conv1D,
                   keras.layers.Conv2D, keras.layers.Conv3D)


def prunable_kernels(model, exclude=(), trainable_only: bool = True) -> list:
    """The kernels pruning applies to: Dense / EinsumDense / Conv kernels, in layer order.

    Args:
        model: a Keras model (nested models and layers are searched).
        exclude: substrings of variable paths to leave out (e.g. "text_encoder").
        trainable_only: skip kernels of frozen layers (they are not fine-tuned).
    """
    kernels, seen = [], set()
    for layer in model._flatten_layers(include_self=False, recursive=True):
        if not isinstance(layer, PRUNABLE_LAYERS) or not getattr(layer, "built", False):
            continue
        kernel = getattr(layer, "_kernel", None)  # Dense's `kernel` may be a LoRA product
        if kernel is None:
            kernel = getattr(layer, "kernel", None)
        if kernel is None or id(kernel) in seen:
            continue
        if trainable_only and not kernel.trainable:
            continue
        if any(part in kernel.path for part in exclude):
            continue
        seen.add(id(kernel))
        kernels.append(kernel)
    return kernels


def polynomial_sparsity(step, target: float, start_step: int, end_step: int):
    """float32 sparsity at `step`: 0 before start_step, target from end_step on (cubic)."""
    progress = (tf.cast(step, tf.float32) - start_step) / float(end_step - start_step)
    progress = tf.clip_by_value(progress, 0.0, 1.0)
    return target * (1.0 - (1.0 - progress) ** 3)


def magnitude_mask(kernel, sparsity):
    """float mask of `kernel`'s shape: 0 for the ceil(sparsity * size) smallest |entries| (at
    least the target share, so a kernel of 128 at 0.8 loses 103, not 102)."""
    magnitudes = tf.reshape(tf.abs(tf.convert_to_tensor(kernel)), [-1])
    size = tf.size(magnitudes)
    num_pruned = tf.cast(tf.math.ceil(sparsity * tf.cast(size, tf.float32) - 1e-3), tf.int32)
    threshold = tf.sort(magnitudes)[tf.maximum(num_pruned - 1, 0)]
    keep = tf.logical_or(num_pruned <= 0, tf.abs(kernel) > threshold)
    return tf.cast(keep, kernel.dtype)


class NoPruning:
    """`training.pruning` off: `after_step` does nothing."""

    kernels = ()

    def after_step(self, step):
        return None


class MagnitudePruning:
    """Masks over a model's prunable kernels, updated on the schedule and applied every step.

    Args:
        kernels: the variables to prune (`prunable_kernels`).
        target_sparsity, start_step, end_step, frequency: the schedule (`training.pruning`).
        strategy: the tf.distribute strategy the kernels live under (masks are made in its scope).
    """

    def __init__(self, kernels, target_sparsity, start_step, end_step, frequency,
                 strategy=None):
        self.kernels = list(kernels)
        self.target_sparsity = target_sparsity
        self.start_step, self.end_step, self.frequency = start_step, end_step, frequency
        strategy = strategy or tf.distribute.get_strategy()
        with strategy.scope():
            self.masks = [tf.Variable(tf.ones_like(kernel), trainable=False,
                                      name="pruning_mask") for kernel in self.kernels]
            # The masks are not checkpointed: the first step this process runs (a resumed run's
            # included) recomputes them from the weights at the schedule's sparsity.
            self.first_step = tf.Variable(True, trainable=False, name="pruning_first_step")

    @classmethod
    def for_training(cls, model, training, strategy=None):
        """The pruning a `TrainingConfig` asks for (`NoPruning` when `training.pruning` is {})."""
        settings = getattr(training, "pruning", None)
        if not settings:
            return NoPruning()
        return cls(prunable_kernels(model, settings.get("exclude", ())),
                   settings["target_sparsity"], settings["start_step"], settings["end_step"],
                   settings["frequency"], strategy)

    def after_step(self, step):
        """Updates the masks when the schedule says so, then applies them (graph-safe).

        Args:
            step: optimizer steps done so far (`optimizer.iterations`, after the update).
        """
        step = tf.cast(tf.convert_to_tensor(step), tf.int64)
        since_start = step - self.start_step
        update = tf.logical_or(self.first_step, tf.logical_and(
            step <= self.end_step, tf.logical_or(tf.equal(since_start % self.frequency, 0),
                                                 tf.equal(step, self.end_step))))
        sparsity = polynomial_sparsity(step, self.target_sparsity, self.start_step,
                                       self.end_step)

        def update_and_apply():
            for kernel, mask in zip(self.kernels, self.masks):
                mask.assign(tf.cond(update, lambda: magnitude_mask(kernel, sparsity),
                                    lambda: tf.convert_to_tensor(mask)))
                kernel.assign(kernel * mask)
            self.first_step.assign(False)
            return tf.constant(True)

        return tf.cond(since_start >= 0, update_and_apply, lambda: tf.constant(False))


def kernel_sparsity(model, exclude=(), trainable_only: bool = False) -> dict:
    """Zeros in a model's prunable kernels (all of them by default, frozen ones included).

    Returns:
        {"zeros": int, "weights": int, "sparsity": zeros / weights, "per_kernel": {path:
        sparsity}}.
    """
    zeros = weights = 0
    per_kernel = {}
    for kernel in prunable_kernels(model, exclude, trainable_only):
        values = keras.ops.convert_to_numpy(kernel)
        kernel_zeros = int(np.sum(values == 0))
        zeros, weights = zeros + kernel_zeros, weights + values.size
        per_kernel[kernel.path] = kernel_zeros / values.size
    return {"zeros": zeros, "weights": weights, "sparsity": zeros / max(weights, 1),
            "per_kernel": per_kernel}


def gzipped_size(path: str) -> int:
    """Bytes of a file (or of a folder's files, concatenated) after gzip -9: how much a sparse
    model shrinks once compressed for download."""
    files = [path] if os.path.isfile(path) else sorted(
        os.path.join(folder, name) for folder, _, names in os.walk(path) for name in names)
    with tempfile.TemporaryFile() as scratch:
        with gzip.GzipFile(fileobj=scratch, mode="wb", compresslevel=9) as packed:
            for name in files:
                with open(name, "rb") as handle:
                    shutil.copyfileobj(handle, packed)
        return scratch.tell()
