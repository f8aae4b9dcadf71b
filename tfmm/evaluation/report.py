"""The evaluation report: metrics JSON plus the plots a person looks at."""

import os

import tensorflow as tf

from tfmm.atomic_write import write_json
from tfmm.evaluation.metrics import (classification_metrics, multilabel_metrics,
                                     reading_order, regression_metrics)
from tfmm.evaluation.plots import (plot_confusion_matrix, plot_regression_scatter,
                                   plot_training_curves)
from tfmm.evaluation.predict import predict_dataset, to_probabilities


def evaluate_pipeline(model, pipeline, task: str, labels, out_dir: str, batch_size: int = 64,
                      history=None, name: str = "test", group_field: str = "") -> dict:
    """Runs `model` over a pipeline and writes `{name}_report.json` and its plots to out_dir.

    Args:
        model: the trained tfmm model.
        pipeline: `tfmm.data.dataset.ExamplePipeline` of the manifest to evaluate.
        task: "multiclass" | "multilabel" | "regression".
        labels: class names (classification) or target names (regression, may be empty).
        out_dir: folder for the report and plots.
        batch_size: evaluation batch size.
        history: optional {metric: [per epoch]} for the training-curve plot.
        name: prefix of the files written.
        group_field: a manifest field (e.g. "question_type"); the report then also holds the
            accuracy (classification) or MAE (regression) of each of its values.

    Returns:
        The report dict (metrics, the loss, file paths of the plots).
    """
    outputs, targets, loss = predict_dataset(model, pipeline.batches(batch_size), task)
    probabilities = to_probabilities(task, outputs)
    if task == "multiclass":
        metrics = classification_metrics(targets, probabilities, list(labels))
    elif task == "multilabel":
        metrics = multilabel_metrics(targets, probabilities, list(labels))
    else:
        metrics = regression_metrics(targets, probabilities, list(labels) or None)
    report = {"manifest": pipeline.manifest.path, "task": task, "loss": loss, **metrics}
    if group_field:
        report["by_" + group_field] = grouped_scores(
            task, [row.extra.get(group_field) for row in pipeline.manifest.rows], outputs, targets)
    tf.io.gfile.makedirs(out_dir)
    plots = {}
    if task == "multiclass":
        plots["confusion_matrix"] = plot_confusion_matrix(
            metrics["confusion_matrix"], list(labels),
            os.path.join(out_dir, f"{name}_confusion_matrix.png"),
            title=f"Confusion matrix ({name})")
    elif task == "regression":
        plots["scatter"] = plot_regression_scatter(
            targets, probabilities, os.path.join(out_dir, f"{name}_predictions.png"))
    if history:
        plots["training_curves"] = plot_training_curves(
            history, os.path.join(out_dir, "training_curves.png"))
    report["plots"] = {key: os.path.basename(path) for key, path in plots.items()}
    write_json(os.path.join(out_dir, f"{name}_report.json"), report)
    return report


def headline(report: dict) -> str:
    """One line with the metrics a community reports for the task."""
    task = report["task"]
    if task == "multiclass":
        auroc = report.get("auroc")
        auroc_text = f"{auroc:.4f}" if auroc is not None else "n/a"
        return (f"accuracy {report['accuracy']:.4f}, macro-F1 {report['macro_f1']:.4f}, "
                f"AUROC {auroc_text} on {report['num_examples']} examples")
    if task == "multilabel":
        return (f"subset accuracy {report['subset_accuracy']:.4f}, macro-F1 "
                f"{report['macro_f1']:.4f}, micro-F1 {report['micro_f1']:.4f} on "
                f"{report['num_examples']} examples")
    pearson = report.get("pearson_r")
    pearson_text = f"{pearson:.4f}" if pearson is not None else "n/a"
    return (f"MAE {report['mae']:.4f}, RMSE {report['rmse']:.4f}, Pearson r {pearson_text} on "
            f"{report['num_examples']} examples")


def grouped_scores(task: str, groups, outputs, targets) -> dict:
    """Accuracy (classification: exact match for multi-label) or MAE per group value."""
    import numpy as np

    groups = np.asarray([str(group) for group in groups])
    scores = {}
    names = sorted(set(groups.tolist()))
    for group in [names[index] for index in reading_order(names)]:
        chosen = groups == group
        if task == "multiclass":
            value = float(np.mean(outputs[chosen].argmax(-1) == targets[chosen]))
            key = "accuracy"
        elif task == "multilabel":
            value = float(np.mean(np.all((outputs[chosen] > 0) == (targets[chosen] > 0.5), -1)))
            key = "subset_accuracy"
        else:
            value = float(np.mean(np.abs(outputs[chosen] - targets[chosen])))
            key = "mae"
        scores[group] = {key: value, "num_examples": int(chosen.sum())}
    return scores
