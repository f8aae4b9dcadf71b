"""The evaluation report of a manifest: metrics JSON plus the plots a person looks at."""

import os

import numpy as np
import tensorflow as tf

from tfmm.atomic_write import write_json, write_jsonl
from tfmm.evaluation.metrics import reading_order
from tfmm.evaluation.modality_removal import remove_modalities
from tfmm.evaluation.plots import plot_training_curves
from tfmm.evaluation.predict import predict_dataset
from tfmm.run_folder import RunFolder
from tfmm.tasks import get_task


def evaluate_pipeline(model, pipeline, task, labels, out_dir: str, batch_size: int = 64,
                      history=None, name: str = "test", group_field: str = "",
                      drop_modalities=(), drop_fraction: float = 1.0, extra=None) -> dict:
    """Runs `model` over a pipeline and writes the report and its plots to out_dir.

    Args:
        model: the trained tfmm model.
        pipeline: `tfmm.data.dataset.ExamplePipeline` of the manifest to evaluate.
        task: a classification or regression `tfmm.tasks.Task` (or its name).
        labels: class names (classification) or target names (regression, may be empty).
        out_dir: folder of the report and its plots (a run folder, or evaluate.py's --out).
        batch_size: evaluation batch size.
        history: optional {metric: [per epoch]} for the training-curve plot.
        name: prefix of the files written.
        group_field: a manifest field (e.g. "question_type"); the report then also holds the
            task's score (accuracy, subset accuracy or MAE) for each of its values.
        drop_modalities: modalities removed (mask 0) from a `drop_fraction` share of the
            examples (`tfmm.evaluation.modality_removal`); recorded in the report.
        extra: optional {key: value} added to the report (e.g. the noise level it was run at).

    Returns:
        The report dict (metrics, the loss, file names of the plots).
    """
    task = get_task(task)
    batches = remove_modalities(pipeline.batches(batch_size), drop_modalities, drop_fraction)
    outputs, targets, loss = predict_dataset(model, batches, task)
    metrics = task.metrics(outputs, targets, labels)
    report = {"manifest": pipeline.manifest.path, "task": task.name, "loss": loss, **metrics}
    if drop_modalities:
        report["dropped_modalities"] = {"modalities": list(drop_modalities),
                                        "fraction": drop_fraction}
    rows = pipeline.manifest.rows
    # Shards read with skip_invalid drop records the source's rows still list: the rows then no
    # longer line up with the predictions, so no per-group or per-example figures rather than
    # wrong ones.
    aligned = len(rows) == len(outputs[task.output_keys[0]])
    if group_field:
        report["by_" + group_field] = (grouped_scores(
            task, [row.extra.get(group_field) for row in rows], outputs, targets)
            if aligned else None)
    tf.io.gfile.makedirs(out_dir)
    folder = RunFolder(out_dir)
    if aligned:
        lines = example_prediction_lines(task, outputs, rows, labels, group_field)
        write_jsonl(folder.example_predictions(name), lines)
        report["predictions_file"] = os.path.basename(folder.example_predictions(name))
    plots = task.write_plots(report, outputs, targets, labels, out_dir, name)
    if history:
        plots["training_curves"] = plot_training_curves(
            history, folder.training_curves)
    report["plots"] = {key: os.path.basename(path) for key, path in plots.items()}
    report.update(extra or {})
    write_json(folder.report(name), report)
    return report


def headline(report: dict) -> str:
    """One line with the metrics a community reports for the report's task."""
    return get_task(report["task"]).headline(report)


def example_prediction_lines(task, outputs: dict, rows, labels, group_field: str = "") -> list:
    """One dict per example for `{name}_predictions.jsonl`: the row's "id" and manifest "line",
    its `group_field` value (when one is set), then the task's answer and prediction fields
    (`Task.prediction_fields`)."""
    lines = []
    for row, fields in zip(rows, get_task(task).prediction_fields(outputs, rows, labels)):
        line = {"id": row.id, "line": row.line}
        if group_field:
            line[group_field] = row.extra.get(group_field)
        lines.append({**line, **fields})
    return lines


def grouped_scores(task, groups, outputs: dict, targets) -> dict:
    """The task's score (`Task.score`) per group value, groups in reading order."""
    task = get_task(task)
    groups = np.asarray([str(group) for group in groups])
    scores = {}
    names = sorted(set(groups.tolist()))
    for group in [names[index] for index in reading_order(names)]:
        chosen = groups == group
        value = task.score({key: array[chosen] for key, array in outputs.items()},
                           targets[chosen])
        scores[group] = {task.score_name: value, "num_examples": int(chosen.sum())}
    return scores
