"""Evaluation metrics for the three tasks, computed in numpy / scikit-learn.

Every function takes numpy arrays and returns a dict of plain Python values (int, float, None,
str, lists and dicts of them), so the result can be written with `json.dump` as it is.
A metric that is undefined for the given data (an AUROC with only one class present, a Pearson
correlation of a constant) is `None`, with a `<metric>_note` key that says why.

Example:
    report = classification_metrics(labels, probabilities, class_names=["cat", "dog"])
    json.dump(report, file)
"""

import re
from typing import Optional, Sequence

import numpy as np
from sklearn import metrics as sklearn_metrics


def reading_order(names: Sequence[str]) -> list:
    """Indices of `names` in the order a person reads them: numbers by value ("2" before "10"),
    runs of digits inside names likewise ("class2" before "class10"), other text alphabetically.

    Reports and plots list classes in this order; the model's class indices stay as they are.
    """
    def key(index):
        parts = re.split(r"(\d+)", str(names[index]))
        return [(0, int(part), "") if part.isdigit() else (1, 0, part) for part in parts if part]

    return sorted(range(len(names)), key=key)


def confusion_in_reading_order(confusion_matrix, class_names: Sequence[str]):
    """(C x C counts, names) with rows and columns both permuted into `reading_order`."""
    order = reading_order(class_names)
    counts = np.asarray(confusion_matrix)[np.ix_(order, order)]
    return counts, [str(class_names[index]) for index in order]


def classification_metrics(labels: np.ndarray, probabilities: np.ndarray,
                           class_names: Sequence[str]) -> dict:
    """Metrics of a single-label (multiclass) classifier.

    The predicted class is the argmax of `probabilities`.

    Args:
        labels: Integer class indices, shape `[N]`, each in `[0, C)`.
        probabilities: Class scores (probabilities or logits), shape `[N, C]`.
        class_names: The `C` class names, in index order.

    Returns:
        A dict with:
            "num_examples": N.
            "accuracy": share of examples whose argmax equals the label.
            "macro_f1": unweighted mean F1 over the classes that occur in the labels or the
                predictions (a class absent from both has no defined F1 and is left out).
            "balanced_accuracy": mean recall over the classes present in the labels (what
                accuracy would be if every class had as many examples; scikit-learn's).
            "auroc": mean one-vs-rest ROC AUC over the classes present in the labels, or None
                with an "auroc_note" when fewer than 2 classes are present.
            "per_class": {name: {"precision", "recall", "f1", "support"}} for every class name
                (0.0 where a ratio is undefined, e.g. precision of a class never predicted),
                in `reading_order`.
            "confusion_matrix": C x C list of counts, rows = true class, columns = predicted,
                over all class names in index order.
            "confusion_matrix_normalized": the same matrix with each row divided by its total
                (row c: where the examples of true class c went; the diagonal is the per-class
                recall); a row of None for a class without examples.

    Raises:
        ValueError: If the shapes disagree, there are no examples, or a label is out of range.
    """
    class_names = [str(name) for name in class_names]
    num_classes = len(class_names)
    labels = np.asarray(labels)
    probabilities = np.asarray(probabilities, dtype=np.float64)
    if labels.ndim != 1:
        raise ValueError(f"`labels` must have shape [N]. Received shape: {labels.shape}")
    if probabilities.ndim != 2 or probabilities.shape != (labels.shape[0], num_classes):
        raise ValueError(f"`probabilities` must have shape [N, C] = [{labels.shape[0]}, "
                         f"{num_classes}] (C = len(class_names)). Received shape: "
                         f"{probabilities.shape}")
    _check_not_empty(labels)
    labels = labels.astype(np.int64)
    if labels.min() < 0 or labels.max() >= num_classes:
        raise ValueError(f"`labels` must lie in [0, {num_classes}). Received values from "
                         f"{labels.min()} to {labels.max()}")

    predictions = np.argmax(probabilities, axis=1)
    all_classes = list(range(num_classes))
    precision, recall, f1, support = sklearn_metrics.precision_recall_fscore_support(
        labels, predictions, labels=all_classes, zero_division=0)
    occurring = sorted(set(labels.tolist()) | set(predictions.tolist()))
    report = {
        "num_examples": int(labels.shape[0]),
        "accuracy": float(sklearn_metrics.accuracy_score(labels, predictions)),
        "macro_f1": float(np.mean(f1[occurring])),
        "balanced_accuracy": float(np.mean(recall[sorted(set(labels.tolist()))])),
    }

    present = sorted(set(labels.tolist()))
    if len(present) < 2:
        report["auroc"] = None
        report["auroc_note"] = (f"AUROC needs at least 2 classes in the labels; only "
                                f"{[class_names[index] for index in present]} present.")
    else:
        per_class_auroc = [
            sklearn_metrics.roc_auc_score(labels == index, probabilities[:, index])
            for index in present]
        report["auroc"] = float(np.mean(per_class_auroc))

    report["per_class"] = {
        class_names[index]: {"precision": float(precision[index]), "recall": float(recall[index]),
                             "f1": float(f1[index]), "support": int(support[index])}
        for index in reading_order(class_names)}
    confusion = sklearn_metrics.confusion_matrix(labels, predictions, labels=all_classes)
    report["confusion_matrix"] = confusion.astype(int).tolist()
    report["confusion_matrix_normalized"] = normalize_rows(confusion)
    return report


def normalize_rows(confusion_matrix) -> list:
    """C x C counts -> each row divided by its total (nested lists; a row of None where the
    total is 0)."""
    counts = np.asarray(confusion_matrix, np.float64)
    totals = counts.sum(axis=1)
    return [(row / total).tolist() if total > 0 else [None] * len(row)
            for row, total in zip(counts, totals)]


def multilabel_metrics(labels: np.ndarray, probabilities: np.ndarray,
                       class_names: Sequence[str], threshold: float = 0.5) -> dict:
    """Metrics of a multi-label classifier (independent yes/no per class).

    A class is predicted when its probability is `>= threshold`.

    Args:
        labels: 0/1 indicators, shape `[N, C]`.
        probabilities: Per-class probabilities, shape `[N, C]`.
        class_names: The `C` class names, in column order.
        threshold: Probability at or above which a class counts as predicted.

    Returns:
        A dict with:
            "num_examples": N.
            "threshold": the threshold used.
            "subset_accuracy": share of examples whose whole predicted label set is exact.
            "macro_f1": unweighted mean F1 over the classes positive in the labels or the
                predictions of at least one example (others have no defined F1).
            "micro_f1": F1 of all (example, class) decisions pooled.
            "macro_auroc": mean ROC AUC over the classes that have both 0 and 1 in the labels,
                or None when there is no such class; "macro_auroc_note" names the classes left
                out whenever any are.
            "per_class": {name: {"precision", "recall", "f1", "support", "auroc"}}, support =
                number of positive labels, auroc None where the class has only one value.

    Raises:
        ValueError: If the shapes disagree, there are no examples, or a label is not 0 or 1.
    """
    class_names = [str(name) for name in class_names]
    num_classes = len(class_names)
    labels = np.asarray(labels)
    probabilities = np.asarray(probabilities, dtype=np.float64)
    if labels.ndim != 2 or labels.shape[1] != num_classes:
        raise ValueError(f"`labels` must have shape [N, C] with C = len(class_names) = "
                         f"{num_classes}. Received shape: {labels.shape}")
    if probabilities.shape != labels.shape:
        raise ValueError(f"`probabilities` must have the shape of `labels` {labels.shape}. "
                         f"Received shape: {probabilities.shape}")
    _check_not_empty(labels)
    if not np.all((labels == 0) | (labels == 1)):
        raise ValueError("`labels` must hold only 0 and 1. Received values: "
                         f"{sorted(set(np.unique(labels).tolist()))[:10]}")
    labels = labels.astype(np.int64)
    predictions = (probabilities >= threshold).astype(np.int64)

    precision, recall, f1, support = sklearn_metrics.precision_recall_fscore_support(
        labels, predictions, average=None, zero_division=0)
    occurring = np.flatnonzero(labels.any(axis=0) | predictions.any(axis=0))
    report = {
        "num_examples": int(labels.shape[0]),
        "threshold": float(threshold),
        "subset_accuracy": float(sklearn_metrics.accuracy_score(labels, predictions)),
        "macro_f1": float(np.mean(f1[occurring])) if occurring.size else 0.0,
        "micro_f1": float(sklearn_metrics.f1_score(labels, predictions, average="micro",
                                                   zero_division=0)),
    }

    per_class_auroc = []
    for index in range(num_classes):
        column = labels[:, index]
        if column.min() == column.max():
            per_class_auroc.append(None)
        else:
            per_class_auroc.append(
                float(sklearn_metrics.roc_auc_score(column, probabilities[:, index])))
    defined = [value for value in per_class_auroc if value is not None]
    skipped = [name for name, value in zip(class_names, per_class_auroc) if value is None]
    report["macro_auroc"] = float(np.mean(defined)) if defined else None
    if skipped:
        report["macro_auroc_note"] = (
            f"AUROC needs both 0 and 1 in a class's labels; left out {len(skipped)} of "
            f"{num_classes} classes: {skipped}.")

    report["per_class"] = {
        class_names[index]: {"precision": float(precision[index]), "recall": float(recall[index]),
                             "f1": float(f1[index]), "support": int(support[index]),
                             "auroc": per_class_auroc[index]}
        for index in reading_order(class_names)}
    return report


def regression_metrics(targets: np.ndarray, predictions: np.ndarray,
                       target_names: Optional[Sequence[str]] = None) -> dict:
    """Metrics of a regressor with one or more outputs.

    Args:
        targets: True values, shape `[N]` or `[N, T]`.
        predictions: Predicted values, the same shape as `targets` (`[N, 1]` and `[N]` are
            interchangeable).
        target_names: Names of the `T` outputs; default "target_0", "target_1", ...

    Returns:
        A dict with:
            "num_examples": N.
            "mae": mean absolute error over all outputs.
            "rmse": root mean squared error over all outputs.
            "pearson_r": Pearson correlation of prediction and target; with T > 1 the mean of
                the per-target values that are defined. None with a "pearson_r_note" when it is
                undefined (a constant target or prediction, or fewer than 2 examples).
            "per_target" (only when T > 1): {name: {"mae", "rmse", "pearson_r"}}.

    Raises:
        ValueError: If the shapes disagree or there are no examples.
    """
    targets = _as_matrix(np.asarray(targets, dtype=np.float64), "targets")
    predictions = _as_matrix(np.asarray(predictions, dtype=np.float64), "predictions")
    if predictions.shape != targets.shape:
        raise ValueError(f"`predictions` must have the shape of `targets` {targets.shape}. "
                         f"Received shape: {predictions.shape}")
    _check_not_empty(targets)
    num_targets = targets.shape[1]
    if target_names is None:
        target_names = [f"target_{index}" for index in range(num_targets)]
    target_names = [str(name) for name in target_names]
    if len(target_names) != num_targets:
        raise ValueError(f"`target_names` must have {num_targets} entries (one per target). "
                         f"Received: {target_names}")

    correlations = [_pearson(targets[:, index], predictions[:, index])
                    for index in range(num_targets)]
    report = {
        "num_examples": int(targets.shape[0]),
        "mae": float(sklearn_metrics.mean_absolute_error(targets, predictions)),
        "rmse": float(np.sqrt(sklearn_metrics.mean_squared_error(targets, predictions))),
    }
    defined = [value for value in correlations if value is not None]
    undefined = [name for name, value in zip(target_names, correlations) if value is None]
    report["pearson_r"] = float(np.mean(defined)) if defined else None
    if undefined:
        reason = ("fewer than 2 examples" if targets.shape[0] < 2
                  else "the target or the prediction is constant")
        if num_targets == 1:
            report["pearson_r_note"] = f"Pearson r is undefined: {reason}."
        else:
            report["pearson_r_note"] = (f"Pearson r is undefined for {undefined} ({reason}); "
                                        "the mean is over the other targets.")
    if num_targets > 1:
        report["per_target"] = {
            name: {
                "mae": float(np.mean(np.abs(targets[:, index] - predictions[:, index]))),
                "rmse": float(np.sqrt(np.mean((targets[:, index] - predictions[:, index]) ** 2))),
                "pearson_r": correlations[index],
            }
            for index, name in enumerate(target_names)}
    return report


def _check_not_empty(array: np.ndarray) -> None:
    if array.shape[0] == 0:
        raise ValueError("Cannot compute metrics of 0 examples.")


def _as_matrix(array: np.ndarray, name: str) -> np.ndarray:
    """Returns `array` as `[N, T]`: `[N]` becomes `[N, 1]`."""
    if array.ndim == 1:
        return array[:, None]
    if array.ndim == 2:
        return array
    raise ValueError(f"`{name}` must have shape [N] or [N, T]. Received shape: {array.shape}")


def _pearson(first: np.ndarray, second: np.ndarray) -> Optional[float]:
    """Pearson correlation of two vectors, or None when either is constant or too short."""
    if first.shape[0] < 2:
        return None
    first_centered = first - first.mean()
    second_centered = second - second.mean()
    first_norm = np.sqrt(np.sum(first_centered ** 2))
    second_norm = np.sqrt(np.sum(second_centered ** 2))
    scale = max(np.max(np.abs(first)), np.max(np.abs(second)), 1.0)
    tolerance = 1e-12 * scale * np.sqrt(first.shape[0])
    if first_norm <= tolerance or second_norm <= tolerance:
        return None
    value = float(np.sum(first_centered * second_centered) / (first_norm * second_norm))
    return float(np.clip(value, -1.0, 1.0))
