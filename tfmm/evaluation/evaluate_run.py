"""Evaluating a finished run folder on a data file (what `evaluate.py` does).

The run's task picks its recipe (`tfmm.recipes.recipe_for`, the same as train.py's): a JSONL
manifest for classification and regression, a SQuAD v1.1/v2.0 JSON file for question answering.
"""

import json
import os

import tensorflow as tf

from tfmm.atomic_write import write_json
from tfmm.errors import UserError
from tfmm.recipes import recipe_for
from tfmm.run_folder import RunFolder, load_finished_run


def evaluate_run(path: str, data_path: str, out_dir=None, name=None, batch_size=64,
                 skip_invalid=False, log=print, drop_modalities=(),
                 drop_fraction: float = 1.0) -> dict:
    """Evaluates a run's model on a data file and writes the report next to it.

    Args:
        path: run folder or the model file in one.
        data_path: JSONL manifest (labels must be among the run's labels), or a SQuAD JSON file
            for a question-answering run.
        out_dir: report folder (default: the run folder).
        name: report name (default: the data file's name without extension).
        batch_size: evaluation batch size (windows for question answering).
        skip_invalid: skip invalid rows or questions instead of stopping at the first.
        drop_modalities: modalities removed from a `drop_fraction` share of the examples
            through their masks (`tfmm.evaluation.modality_removal`).

    Returns:
        The report dict.

    Raises:
        RunFolderError: `path` is not a finished run.
    """
    return evaluate_finished_run(load_finished_run(path), data_path, out_dir, name, batch_size,
                                 skip_invalid, log, drop_modalities, drop_fraction)


def evaluate_finished_run(run, data_path: str, out_dir=None, name=None, batch_size=64,
                          skip_invalid=False, log=print, drop_modalities=(),
                          drop_fraction: float = 1.0) -> dict:
    """`evaluate_run` for a loaded `tfmm.run_folder.FinishedRun` (its model may be a Keras
    model or a `tfmm.export.litert_runner.LiteRTModel`); the same arguments and report."""
    recipe = recipe_for(run.config.data.task)
    reports = RunFolder(out_dir) if out_dir else run.folder
    name = name or os.path.splitext(os.path.basename(data_path))[0]
    check_not_another_files_report(reports.report(name), data_path)
    report = recipe.evaluate_file(run, data_path, reports.path, name, batch_size, skip_invalid,
                                  log, drop_modalities=drop_modalities,
                                  drop_fraction=drop_fraction)
    log(f"{name}: {recipe.task.headline(report)}")
    written = f"report: {reports.report(name)}"
    if report.get("predictions_file"):
        written += f"; predictions: {os.path.join(reports.path, report['predictions_file'])}"
    log(written)
    return report


class ReportOverwriteError(UserError, FileExistsError):
    """The report an evaluation would write holds the report of another data file."""


def check_not_another_files_report(report_path: str, data_path: str) -> None:
    """Refuses to overwrite a report of another manifest (e.g. the run's test_report.json by
    evaluating some other `test.jsonl`); the same manifest's report is rewritten.

    Raises:
        ReportOverwriteError: naming both files and the flags that avoid it.
    """
    if not tf.io.gfile.exists(report_path):
        return
    with tf.io.gfile.GFile(report_path) as handle:
        try:
            evaluated = json.load(handle).get("manifest")
        except (ValueError, AttributeError):
            return
    if evaluated and os.path.realpath(evaluated) != os.path.realpath(data_path):
        raise ReportOverwriteError(
            f"{report_path} is the report of {evaluated}; evaluating {data_path} would overwrite "
            "it. Give the report another name (--name) or folder (--out).")


def sweep_modality_removal(path: str, data_path: str, out_dir=None, name=None, batch_size=64,
                           skip_invalid=False, drop_fraction: float = 1.0, log=print) -> dict:
    """Scores a run with nothing removed, then with each modality removed, then (three or more
    modalities) with each one kept alone; writes each report and a summary report.

    Returns:
        The summary: {"rows": [{"removed": [...], score name: value, ...}], "fraction"}.
    """
    run = load_finished_run(path)
    modalities = tuple(run.config.data.modalities)
    name = name or os.path.splitext(os.path.basename(data_path))[0]
    settings = [()] + [(modality,) for modality in modalities]
    if len(modalities) >= 3:
        settings += [tuple(other for other in modalities if other != kept)
                     for kept in modalities]
    task = recipe_for(run.config.data.task).task
    rows = []
    for removed in settings:
        suffix = "_without_" + "_".join(removed) if removed else ""
        report = evaluate_run(path, data_path, out_dir, name + suffix, batch_size, skip_invalid,
                              log, drop_modalities=removed, drop_fraction=drop_fraction)
        row = {"removed": list(removed), task.score_name: report[task.score_name]}
        row.update({key: report[key] for key in ("macro_f1",) if key in report})
        rows.append(row)
    summary = {"data": data_path, "task": task.name, "fraction": drop_fraction, "rows": rows}
    reports = RunFolder(out_dir) if out_dir else run.folder
    write_json(reports.report(name + "_modality_sweep"), summary)
    log(sweep_table(summary, task.score_name))
    return summary


def sweep_table(summary: dict, score_name: str) -> str:
    """A Markdown table of a modality sweep: removed modalities -> score (and macro-F1)."""
    has_f1 = all("macro_f1" in row for row in summary["rows"])
    header = ["removed", score_name] + (["macro-F1"] if has_f1 else [])
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    for row in summary["rows"]:
        cells = [" + ".join(row["removed"]) or "nothing", f"{row[score_name]:.4f}"]
        if has_f1:
            cells.append(f"{row['macro_f1']:.4f}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
