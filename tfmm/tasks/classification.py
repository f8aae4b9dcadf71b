"""Classification: one class per example (multiclass) or a set of classes (multilabel)."""

import os

import numpy as np
import tensorflow as tf

from tfmm.tasks.losses import balanced_class_weights, sigmoid_focal_loss, softmax_focal_loss
from tfmm.tasks.task import Task, as_float32, figure

# Probability at or above which a multilabel class counts as predicted (evaluation and serving).
MULTILABEL_THRESHOLD = 0.5


class _ClassificationTask(Task):
    """Args (all optional; the defaults are plain cross-entropy, what `get_task` returns):
        class_weights: float [C] weight of each class in index order (`training.class_weights`;
            see `class_weights_for`), or None.
        loss: "cross_entropy" | "focal" (`training.loss`).
        focal_gamma, focal_alpha: the focal loss's parameters (`tfmm.tasks.losses`).
    """

    output_keys = ("logits",)
    has_classes = True
    multilabel = False

    def __init__(self, class_weights=None, loss="cross_entropy", focal_gamma=2.0,
                 focal_alpha=0.0):
        self.class_weights = (None if class_weights is None
                              else np.asarray(class_weights, np.float32))
        self.loss = loss
        self.focal_gamma = float(focal_gamma)
        self.focal_alpha = float(focal_alpha)

    def with_loss(self, training, class_weights=None) -> "_ClassificationTask":
        """A task of the same kind whose loss follows `training` (a TrainingConfig)."""
        return type(self)(class_weights, training.loss, training.focal_gamma,
                          training.focal_alpha)

    def class_weights_for(self, setting, targets, labels) -> tuple:
        """The weights of `training.class_weights` for a training manifest's targets.

        Args:
            setting: "balanced" or {label: weight} (unlisted labels weigh 1).
            targets: what `encode_targets` returns for the training rows.
            labels: the C class names in index order.

        Returns:
            (float64 [C] weights, int [C] training examples of each class (multilabel:
            positives)).

        Raises:
            ValueError: a label of the dict is not a class of the data.
        """
        targets = np.asarray(targets)
        counts = (targets.sum(axis=0).astype(np.int64) if self.multilabel
                  else np.bincount(targets, minlength=len(labels)))
        if setting == "balanced":
            return balanced_class_weights(counts, len(targets), self.multilabel), counts
        unknown = sorted(set(setting) - set(labels))
        if unknown:
            raise ValueError(f"`training.class_weights` names labels the training data does not "
                             f"have: {unknown}; its labels are {list(labels)}")
        return np.asarray([setting.get(label, 1.0) for label in labels], np.float64), counts

    def num_outputs(self, labels, num_targets: int) -> int:
        return len(labels)

    def _logits(self, outputs):
        return as_float32(outputs["logits"])

    def explained_index(self, outputs):
        return tf.argmax(outputs, axis=-1, output_type=tf.int32)  # the predicted class

    @staticmethod
    def _label_index(labels) -> dict:
        """{class name: class index} in the vocabulary's order."""
        return {label: position for position, label in enumerate(labels)}


class MulticlassTask(_ClassificationTask):
    """Softmax over C classes; targets are int class indices [B]; the score is accuracy."""

    name = "multiclass"
    score_name = "accuracy"
    table_columns = (("num_examples", "test examples"), ("accuracy", "accuracy"),
                     ("macro_f1", "macro-F1"), ("auroc", "AUROC"))

    def read_answer(self, reader, record):
        return reader.read_label(record), None

    def label_names(self, row):
        return (row.label,)

    def encode_targets(self, rows, labels):
        index = self._label_index(labels)
        return np.asarray([index[row.label] for row in rows], np.int32)

    def per_example_loss(self, targets, outputs, label_smoothing=0.0):
        logits = self._logits(outputs)
        targets = tf.cast(targets, tf.int32)
        if self.loss == "focal":
            one_hot = tf.one_hot(targets, tf.shape(logits)[-1])
            if label_smoothing:
                one_hot = one_hot * (1.0 - label_smoothing) + label_smoothing / tf.cast(
                    tf.shape(logits)[-1], tf.float32)
            losses = softmax_focal_loss(one_hot, logits, self.focal_gamma, self.focal_alpha)
        elif label_smoothing:
            one_hot = tf.one_hot(targets, tf.shape(logits)[-1])
            losses = tf.keras.losses.categorical_crossentropy(
                one_hot, logits, from_logits=True, label_smoothing=label_smoothing)
        else:
            losses = tf.nn.sparse_softmax_cross_entropy_with_logits(targets, logits)
        if self.class_weights is not None:  # each example weighs as its true class
            losses *= tf.gather(tf.constant(self.class_weights), targets)
        return losses

    def per_example_score(self, targets, outputs):
        predicted = tf.argmax(self._logits(outputs), -1, output_type=tf.int32)
        return as_float32(tf.equal(predicted, tf.cast(targets, tf.int32)))

    def explained_scores(self, outputs):
        return tf.nn.softmax(as_float32(outputs), axis=-1)

    def explained_answer(self, output, index, labels, answer):
        probabilities = tf.nn.softmax(as_float32(output)).numpy()
        return labels[index], float(probabilities[index]), answer == labels[index]

    def probabilities(self, outputs) -> np.ndarray:
        """float [N, C] softmax probabilities of the collected logits."""
        logits = np.asarray(outputs["logits"], np.float64)
        exponentials = np.exp(logits - logits.max(axis=-1, keepdims=True))
        return exponentials / exponentials.sum(axis=-1, keepdims=True)

    def prediction_fields(self, outputs, rows, labels):
        probabilities = self.probabilities(outputs)
        best = probabilities.argmax(axis=-1)
        return [{"label": row.label, "predicted": labels[index],
                 "probability": round(float(row_probabilities[index]), 6),
                 "correct": row.label == labels[index]}
                for row, index, row_probabilities in zip(rows, best, probabilities)]

    def metrics(self, outputs, targets, labels):
        from tfmm.evaluation.metrics import classification_metrics

        return classification_metrics(targets, self.probabilities(outputs), list(labels))

    def write_plots(self, report, outputs, targets, labels, out_dir, name):
        from tfmm.evaluation.plots import plot_confusion_matrix

        path = os.path.join(out_dir, f"{name}_confusion_matrix.png")
        normalized = os.path.join(out_dir, f"{name}_confusion_matrix_normalized.png")
        return {"confusion_matrix": plot_confusion_matrix(
                    report["confusion_matrix"], list(labels), path,
                    title=f"Confusion matrix ({name})"),
                "confusion_matrix_normalized": plot_confusion_matrix(
                    report["confusion_matrix"], list(labels), normalized, normalized=True,
                    title=f"Confusion matrix, share of each true class ({name})")}

    def headline(self, report):
        return (f"accuracy {report['accuracy']:.4f}, macro-F1 {report['macro_f1']:.4f}, "
                f"balanced accuracy {report['balanced_accuracy']:.4f}, AUROC "
                f"{figure(report, 'auroc')} on {report['num_examples']} examples")

    def serving_outputs(self, outputs, label_table):
        probabilities = tf.nn.softmax(self._logits(outputs), axis=-1)
        best = tf.argmax(probabilities, axis=-1, output_type=tf.int32)
        return {"probabilities": probabilities, "label": tf.gather(label_table, best),
                "score": tf.reduce_max(probabilities, axis=-1)}


class MultilabelTask(_ClassificationTask):
    """One sigmoid per class; targets are multi-hot float [B, C]; the score is exact set match."""

    name = "multilabel"
    multilabel = True
    score_name = "subset_accuracy"
    table_columns = (("num_examples", "test examples"), ("subset_accuracy", "subset accuracy"),
                     ("macro_f1", "macro-F1"), ("micro_f1", "micro-F1"))

    def read_answer(self, reader, record):
        return reader.read_label_list(record), None

    def label_names(self, row):
        return tuple(row.label)

    def encode_targets(self, rows, labels):
        index = self._label_index(labels)
        multi_hot = np.zeros((len(rows), len(labels)), np.float32)
        for row_number, row in enumerate(rows):
            for label in row.label:
                multi_hot[row_number, index[label]] = 1.0
        return multi_hot

    def per_example_loss(self, targets, outputs, label_smoothing=0.0):
        targets = as_float32(targets)
        if label_smoothing:
            targets = targets * (1.0 - label_smoothing) + 0.5 * label_smoothing
        logits = self._logits(outputs)
        if self.loss == "focal":
            losses = sigmoid_focal_loss(targets, logits, self.focal_gamma, self.focal_alpha)
        else:
            losses = tf.nn.sigmoid_cross_entropy_with_logits(labels=targets, logits=logits)
        if self.class_weights is not None:  # the weight of each class's positive term
            losses *= 1.0 + (tf.constant(self.class_weights) - 1.0) * targets
        return tf.reduce_mean(losses, axis=-1)

    def per_example_score(self, targets, outputs):
        # A logit > 0 is a probability > 0.5 = MULTILABEL_THRESHOLD.
        predicted = as_float32(self._logits(outputs) > 0.0)
        return as_float32(tf.reduce_all(tf.equal(predicted, as_float32(targets)), -1))

    def explained_scores(self, outputs):
        return tf.math.sigmoid(as_float32(outputs))

    def explained_answer(self, output, index, labels, answer):
        predicted = [label for label, logit in zip(labels, output) if logit > 0]
        return predicted, float(1 / (1 + np.exp(-output[index]))), set(answer) == set(predicted)

    def probabilities(self, outputs) -> np.ndarray:
        return 1.0 / (1.0 + np.exp(-np.asarray(outputs["logits"], np.float64)))

    def prediction_fields(self, outputs, rows, labels):
        chosen = self.probabilities(outputs) >= MULTILABEL_THRESHOLD
        fields = []
        for row, row_chosen in zip(rows, chosen):
            predicted = [label for label, is_chosen in zip(labels, row_chosen) if is_chosen]
            fields.append({"label": list(row.label), "predicted": predicted,
                           "correct": set(predicted) == set(row.label)})
        return fields

    def metrics(self, outputs, targets, labels):
        from tfmm.evaluation.metrics import multilabel_metrics

        return multilabel_metrics(targets, self.probabilities(outputs), list(labels),
                                  threshold=MULTILABEL_THRESHOLD)

    def headline(self, report):
        return (f"subset accuracy {report['subset_accuracy']:.4f}, macro-F1 "
                f"{report['macro_f1']:.4f}, micro-F1 {report['micro_f1']:.4f} on "
                f"{report['num_examples']} examples")

    def serving_outputs(self, outputs, label_table):
        probabilities = tf.sigmoid(self._logits(outputs))
        best = tf.argmax(probabilities, axis=-1, output_type=tf.int32)
        above = probabilities >= MULTILABEL_THRESHOLD
        return {"probabilities": probabilities, "label": tf.gather(label_table, best),
                "score": tf.reduce_max(probabilities, axis=-1),
                "labels": tf.where(above, label_table[tf.newaxis, :], tf.constant(""))}
