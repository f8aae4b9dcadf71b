"""Per-example losses and the metric each task tracks while training."""

import tensorflow as tf

from tfmm.models.heads.task_head import HEAD_KINDS


def per_example_loss(task: str, targets, outputs, label_smoothing: float = 0.0, num_outputs=None):
    """Loss of each example (float32 [B]); averaging over the global batch is the caller's.

    Args:
        task: "multiclass" | "multilabel" | "regression".
        targets: int [B] class indices, float [B, C] multi-hot, or float [B, T] targets.
        outputs: the model's output dict.
        label_smoothing: for classification.
    """
    prediction = tf.cast(outputs[HEAD_KINDS[task]], tf.float32)
    if task == "multiclass":
        if label_smoothing:
            one_hot = tf.one_hot(targets, tf.shape(prediction)[-1])
            return tf.keras.losses.categorical_crossentropy(
                one_hot, prediction, from_logits=True, label_smoothing=label_smoothing)
        return tf.nn.sparse_softmax_cross_entropy_with_logits(tf.cast(targets, tf.int32),
                                                              prediction)
    if task == "multilabel":
        targets = tf.cast(targets, tf.float32)
        if label_smoothing:
            targets = targets * (1.0 - label_smoothing) + 0.5 * label_smoothing
        return tf.reduce_mean(
            tf.nn.sigmoid_cross_entropy_with_logits(labels=targets, logits=prediction), axis=-1)
    return tf.reduce_mean(tf.square(prediction - tf.cast(targets, tf.float32)), axis=-1)


def per_example_score(task: str, targets, outputs):
    """The training metric per example: correct (multiclass), exact set match (multilabel) or
    absolute error (regression)."""
    prediction = tf.cast(outputs[HEAD_KINDS[task]], tf.float32)
    if task == "multiclass":
        return tf.cast(tf.equal(tf.argmax(prediction, -1, output_type=tf.int32),
                                tf.cast(targets, tf.int32)), tf.float32)
    if task == "multilabel":
        predicted = tf.cast(prediction > 0.0, tf.float32)
        return tf.cast(tf.reduce_all(tf.equal(predicted, tf.cast(targets, tf.float32)), -1),
                       tf.float32)
    return tf.reduce_mean(tf.abs(prediction - tf.cast(targets, tf.float32)), axis=-1)


SCORE_NAMES = {"multiclass": "accuracy", "multilabel": "subset_accuracy", "regression": "mae"}
