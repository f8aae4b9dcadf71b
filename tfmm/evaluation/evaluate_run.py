"""Evaluating a finished run folder on a data file (what `evaluate.py` does).

The run's task picks its recipe (`tfmm.recipes.recipe_for`, the same as train.py's): a JSONL
manifest for classification and regression, a SQuAD v1.1/v2.0 JSON file for question answering.
"""

import os

from tfmm.recipes import recipe_for
from tfmm.run_folder import RunFolder, load_finished_run


def evaluate_run(path: str, data_path: str, out_dir=None, name=None, batch_size=64,
                 skip_invalid=False, log=print) -> dict:
    """Evaluates a run's model on a data file and writes the report next to it.

    Args:
        path: run folder or the model file in one.
        data_path: JSONL manifest (labels must be among the run's labels), or a SQuAD JSON file
            for a question-answering run.
        out_dir: report folder (default: the run folder).
        name: report name (default: the data file's name without extension).
        batch_size: evaluation batch size (windows for question answering).
        skip_invalid: skip invalid rows or questions instead of stopping at the first.

    Returns:
        The report dict.

    Raises:
        RunFolderError: `path` is not a finished run.
    """
    run = load_finished_run(path)
    recipe = recipe_for(run.config.data.task)
    reports = RunFolder(out_dir) if out_dir else run.folder
    name = name or os.path.splitext(os.path.basename(data_path))[0]
    report = recipe.evaluate_file(run, data_path, reports.path, name, batch_size, skip_invalid,
                                  log)
    log(f"{name}: {recipe.task.headline(report)}")
    written = f"report: {reports.report(name)}"
    if report.get("predictions_file"):
        written += f"; predictions: {reports.predictions(name)}"
    log(written)
    return report
