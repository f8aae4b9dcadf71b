"""Per-example losses and the metric each task tracks while training."""

import tensorflow as tf

from tfmm.models.heads.task_head import HEAD_KINDS


def per_example_loss(task: str, targets, outputs, label_smoothing: float = 0.0, num_outputs=None):
    """Loss of each example (float32 [B]); averaging over the global batch is the caller's.

    Args:
        task: "multiclass" | "multilabel" | "regression" | "span".
        targets: int [B] class indices, float [B, C] multi-hot, float [B, T] targets, or for
            "span" {"start_positions": int [B], "end_positions": int [B]}.
        outputs: the model's output dict ("span": {"start_logits", "end_logits"} [B, L]).
        label_smoothing: for classification (not used by "span").
    """
    if task == "span":
        # The mean of the start and end cross-entropies (BERT's SQuAD loss).
        start_logits, end_logits = _span_logits(outputs)
        start_loss = tf.nn.sparse_softmax_cross_entropy_with_logits(
            tf.cast(targets["start_positions"], tf.int32), start_logits)
        end_loss = tf.nn.sparse_softmax_cross_entropy_with_logits(
            tf.cast(targets["end_positions"], tf.int32), end_logits)
        return 0.5 * (start_loss + end_loss)
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
    """The training metric per example: correct (multiclass), exact set match (multilabel),
    absolute error (regression) or both span positions right (span: the arg-max start and end
    tokens both equal the targets)."""
    if task == "span":
        start_logits, end_logits = _span_logits(outputs)
        start_right = tf.equal(tf.argmax(start_logits, -1, output_type=tf.int32),
                               tf.cast(targets["start_positions"], tf.int32))
        end_right = tf.equal(tf.argmax(end_logits, -1, output_type=tf.int32),
                             tf.cast(targets["end_positions"], tf.int32))
        return tf.cast(tf.logical_and(start_right, end_right), tf.float32)
    prediction = tf.cast(outputs[HEAD_KINDS[task]], tf.float32)
    if task == "multiclass":
        return tf.cast(tf.equal(tf.argmax(prediction, -1, output_type=tf.int32),
                                tf.cast(targets, tf.int32)), tf.float32)
    if task == "multilabel":
        predicted = tf.cast(prediction > 0.0, tf.float32)
        return tf.cast(tf.reduce_all(tf.equal(predicted, tf.cast(targets, tf.float32)), -1),
                       tf.float32)
    return tf.reduce_mean(tf.abs(prediction - tf.cast(targets, tf.float32)), axis=-1)


def _span_logits(outputs):
    start_key, end_key = HEAD_KINDS["span"]
    return tf.cast(outputs[start_key], tf.float32), tf.cast(outputs[end_key], tf.float32)


SCORE_NAMES = {"multiclass": "accuracy", "multilabel": "subset_accuracy", "regression": "mae",
               "span": "span_exact"}
