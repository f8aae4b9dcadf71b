"""Validated manifest rows -> tf.data pipelines with static shapes.

Files are read and decoded in parallel (AUTOTUNE) by the same `MultimodalPreprocessor` the
serving signature uses; decoded examples are cached in memory, then every epoch gets its own
seeded shuffle, so a resumed run can replay an epoch's order exactly and skip what it had done.
"""

import numpy as np
import tensorflow as tf

from tfmm.data.manifest import Manifest

AUTOTUNE = tf.data.AUTOTUNE


def encode_targets(manifest: Manifest, task: str) -> np.ndarray:
    """Manifest labels/targets -> the array the loss expects.

    Returns:
        multiclass: int32 [N] class indices into `manifest.labels`; multilabel: float32 [N, C]
        multi-hot; regression: float32 [N, T].
    """
    if task == "regression":
        return np.asarray([row.target for row in manifest.rows], np.float32)
    index = {label: position for position, label in enumerate(manifest.labels)}
    if task == "multiclass":
        return np.asarray([index[row.label] for row in manifest.rows], np.int32)
    multi_hot = np.zeros((len(manifest.rows), len(manifest.labels)), np.float32)
    for row_number, row in enumerate(manifest.rows):
        for label in row.label:
            multi_hot[row_number, index[label]] = 1.0
    return multi_hot


def _read_if_present(path: tf.Tensor) -> tf.Tensor:
    """File bytes, or "" (the missing-modality marker) for an empty path."""
    return tf.cond(tf.strings.length(path) > 0, lambda: tf.io.read_file(path),
                   lambda: tf.constant(b""))


class ExamplePipeline:
    """Decoded, cached examples of one manifest, batched per epoch.

    Args:
        manifest: a validated `tfmm.data.manifest.Manifest`.
        preprocessor: the `MultimodalPreprocessor` of the model.
        task: "multiclass" | "multilabel" | "regression".
        cache: keep decoded examples in memory after the first pass.
    """

    def __init__(self, manifest: Manifest, preprocessor, task: str, cache: bool = True):
        self.manifest = manifest
        self.num_examples = len(manifest.rows)
        modalities = preprocessor.modalities
        columns = {}
        if "text" in modalities:
            columns["text"] = [row.text or "" for row in manifest.rows]
        if "image" in modalities:
            columns["image"] = [row.image or "" for row in manifest.rows]
        if "audio" in modalities:
            columns["audio"] = [row.audio or "" for row in manifest.rows]
        targets = encode_targets(manifest, task)
        dataset = tf.data.Dataset.from_tensor_slices((columns, targets))

        def load(columns, target):
            raw = {name: (value if name == "text" else _read_if_present(value))
                   for name, value in columns.items()}
            return preprocessor(raw), target

        dataset = dataset.map(load, num_parallel_calls=AUTOTUNE, deterministic=True)
        self.examples = dataset.cache() if cache else dataset

    def batches(self, batch_size: int, *, shuffle: bool = False, seed: int = 0, epoch: int = 0,
                shuffle_buffer: int = 10000, drop_remainder: bool = False,
                skip_batches: int = 0) -> tf.data.Dataset:
        """One epoch of batches.

        Args:
            batch_size: global batch size.
            shuffle: shuffle with a seed derived from (seed, epoch): the same epoch always has the
                same order, and different epochs differ.
            drop_remainder: drop the last partial batch (static batch shape for XLA/TPU).
            skip_batches: batches of this epoch already trained on (resuming).

        Returns:
            A dataset of (features dict, targets) with static shapes except, when
            drop_remainder is False, the batch dimension.
        """
        dataset = self.examples
        if shuffle:
            dataset = dataset.shuffle(min(shuffle_buffer, self.num_examples),
                                      seed=seed * 100003 + epoch, reshuffle_each_iteration=False)
        dataset = dataset.batch(batch_size, drop_remainder=drop_remainder)
        if skip_batches:
            dataset = dataset.skip(skip_batches)
        options = tf.data.Options()
        options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
        options.deterministic = True
        return dataset.with_options(options).prefetch(AUTOTUNE)

    def steps_per_epoch(self, batch_size: int, drop_remainder: bool) -> int:
        if drop_remainder:
            return self.num_examples // batch_size
        return -(-self.num_examples // batch_size)
