"""Missing modalities at test time: evaluation batches with a modality removed through its mask.

A modality is removed from an example by setting its `<modality>_mask` to 0, exactly what the
preprocessor does for a row without it (an optional modality) and what serving does for an
input given as "". The fusion then ignores that modality's vector (`ConcatFusion` replaces it,
`AttentionFusion` masks it). With a fraction below 1, each example loses the modality with that
probability, drawn from (seed, batch index): the same examples lose it on every call.

    batches = remove_modalities(pipeline.batches(64), ("image",), fraction=0.5)
"""

import tensorflow as tf

from tfmm.errors import UserError
from tfmm.preprocessing.multimodal_preprocessor import MASK_SUFFIX


class ModalityRemovalError(UserError):
    """A modality to remove that the model does not read, or removing all of them."""


def check_removable(model_modalities, removed) -> tuple:
    """The modalities to remove, checked against the model's; returns them as a tuple.

    Raises:
        ModalityRemovalError: a modality the model does not read, or every modality of the model.
    """
    removed = tuple(dict.fromkeys(removed))
    unknown = [name for name in removed if name not in model_modalities]
    if unknown:
        raise ModalityRemovalError(f"--drop-modality {', '.join(unknown)}: the model reads "
                                   f"{list(model_modalities)}")
    if removed and set(removed) >= set(model_modalities):
        raise ModalityRemovalError(f"--drop-modality would remove every modality the model reads "
                                   f"({list(model_modalities)}); keep at least one")
    return removed


def remove_modalities(dataset: tf.data.Dataset, removed, fraction: float = 1.0,
                      seed: int = 0) -> tf.data.Dataset:
    """Batches of (features, targets) with the `removed` modalities' masks set to 0.

    Args:
        dataset: batches whose features hold `<modality>_mask` float [B] entries.
        removed: modality names.
        fraction: share of examples that lose each removed modality, in (0, 1].
        seed: seed of the per-example draw (per batch index).

    Returns:
        The same batches; removed modalities' masks are 0 where dropped, unchanged elsewhere.
    """
    if not 0.0 < fraction <= 1.0:
        raise ModalityRemovalError(f"--drop-fraction must be in (0, 1]. Received: {fraction}")
    removed = tuple(removed)
    if not removed:
        return dataset

    def remove(index, batch):
        features, targets = batch
        features = dict(features)
        for position, name in enumerate(removed):
            mask = features[name + MASK_SUFFIX]
            draw = tf.random.stateless_uniform(tf.shape(mask), seed=tf.stack(
                [tf.cast(seed + position, tf.int64), index]))
            keep = tf.cast(draw >= fraction, mask.dtype)
            features[name + MASK_SUFFIX] = mask * keep
        return features, targets

    return dataset.enumerate().map(remove)
