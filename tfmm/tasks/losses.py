"""Per-example classification losses for imbalanced data: focal loss and class weights.

Focal loss (Lin et al., 2017, "Focal Loss for Dense Object Detection") scales each class term of
the cross-entropy by (1 - p)^gamma, p being the probability the model gives that term's target,
so well-classified examples count less and the rare, hard ones more. gamma = 0 is the
cross-entropy itself.
"""

import numpy as np
import tensorflow as tf


def softmax_focal_loss(one_hot, logits, gamma: float, alpha: float = 0.0):
    """Multiclass focal loss: -sum_k q_k (1 - p_k)^gamma log p_k per example.

    Args:
        one_hot: float32 [B, C] target distribution q (one-hot, or label-smoothed).
        logits: float32 [B, C].
        gamma: focusing parameter (>= 0; 0 is the cross-entropy).
        alpha: 0 (off) or a factor in (0, 1] every example's loss is scaled by (with one softmax
            over the classes it is a constant; per-class weights are `training.class_weights`).

    Returns:
        float32 [B].
    """
    log_probabilities = tf.nn.log_softmax(logits, axis=-1)
    modulation = tf.pow(1.0 - tf.exp(log_probabilities), gamma)
    losses = -tf.reduce_sum(one_hot * modulation * log_probabilities, axis=-1)
    return losses * alpha if alpha else losses


def sigmoid_focal_loss(targets, logits, gamma: float, alpha: float = 0.0):
    """Multilabel focal loss per (example, class): BCE * (1 - p_t)^gamma * alpha_t.

    p_t = y p + (1 - y)(1 - p) is the probability of the target, alpha_t = y alpha +
    (1 - y)(1 - alpha) when alpha is set (0: off, alpha_t = 1).

    Args:
        targets: float32 [B, C] in [0, 1].
        logits: float32 [B, C].

    Returns:
        float32 [B, C].
    """
    cross_entropy = tf.nn.sigmoid_cross_entropy_with_logits(labels=targets, logits=logits)
    probabilities = tf.sigmoid(logits)
    target_probability = targets * probabilities + (1.0 - targets) * (1.0 - probabilities)
    losses = cross_entropy * tf.pow(1.0 - target_probability, gamma)
    if alpha:
        losses *= targets * alpha + (1.0 - targets) * (1.0 - alpha)
    return losses


def balanced_class_weights(counts, num_examples: int, multilabel: bool) -> np.ndarray:
    """The "balanced" weight of each class from its training count.

    Multiclass: N / (C * n_c), scikit-learn's definition (C: the classes that occur), so every
    class carries the same total weight and the mean weight per example is 1. Multilabel: the
    weight of a class's positive term, (N - n_c) / n_c (its negatives per positive), so a class's
    positives and negatives weigh the same in total. A class with no training example (multilabel: or no negative) gets 1.

    Args:
        counts: int [C] training examples of each class (multilabel: positives).
        num_examples: N, the training examples.

    Returns:
        float64 [C].
    """
    counts = np.asarray(counts, np.float64)
    weights = np.ones_like(counts)
    if multilabel:
        present = (counts > 0) & (counts < num_examples)  # a class with both values
        weights[present] = (num_examples - counts[present]) / counts[present]
    else:
        present = counts > 0
        weights[present] = num_examples / (present.sum() * counts[present])
    return weights
