"""Explaining a finished run's predictions on a manifest (what `explain.py` does).

For each selected example it writes `<id>.json` (the record of
`tfmm.explain.explain_examples.ExampleExplainer`) and `<id>.png` (`plot_explanation`); then
`explain_summary.json` (the settings, the per-class and per-group table of
`tfmm.explain.summary.summarize` and every record) and `explain_summary.png`.

    summary = explain_run("runs/av_digits/fused", "data/generated/av_digits/test.jsonl",
                          limit=20, out_dir="runs/av_digits/fused/explain")
"""

import dataclasses
import os
import re
import time

from tfmm.atomic_write import write_json
from tfmm.data.dataset import ExamplePipeline
from tfmm.data.manifest import read_manifest_for_config
from tfmm.errors import UserError
from tfmm.explain.explain_examples import ExampleExplainer
from tfmm.explain.figures import plot_explanation
from tfmm.explain.summary import plot_summary, summarize
from tfmm.preprocessing.multimodal_preprocessor import MultimodalPreprocessor
from tfmm.run_folder import load_finished_run
from tfmm.tasks import get_task

EXPLAINABLE_TASKS = ("multiclass", "multilabel", "regression")


class ExplainError(UserError):
    """A selection of examples or a run that cannot be explained."""


def select_rows(rows, path: str, ids=None, limit=None, id_of=lambda row: row.id) -> list:
    """The `rows` (of the file `path`) named by `ids` (in that order) or the first `limit` ones
    (all: None); `id_of` reads a row's id.

    Raises:
        ExplainError: an id the file lacks, both or a bad limit.
    """
    if ids and limit is not None:
        raise ExplainError("give --ids or --limit, not both")
    if ids:
        by_id = {str(id_of(row)): row for row in rows}
        missing = [name for name in ids if name not in by_id]
        if missing:
            raise ExplainError(f"{path}: no row with id {', '.join(missing)} "
                               f"(ids there look like {str(id_of(rows[0]))!r})")
        return [by_id[name] for name in dict.fromkeys(ids)]
    if limit is not None and limit < 1:
        raise ExplainError(f"--limit must be >= 1. Received: {limit}")
    return list(rows[:limit])


def file_stem(example_id: str) -> str:
    """A file name for an example id (characters other than letters, digits, '.-_' -> '_')."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", example_id)


def explain_run(path: str, data_path: str, ids=None, limit=None, out_dir=None,
                steps: int = 128, method: str = "integrated_gradients", batch_size: int = 16,
                figures: bool = True, log=print) -> dict:
    """Explains a run's model on manifest rows; writes the records, figures and summary.

    Args:
        path: run folder or the model file in one.
        data_path: a JSONL manifest of the run's kind (a SQuAD JSON file for a "qa" run: see
            `tfmm.explain.explain_span_run`; method is then integrated gradients).
        ids: row ids to explain; limit: explain the first rows only (default: all rows).
        out_dir: output folder (default: `explain/` in the run folder).
        steps, method: integrated gradients' intervals, or "gradient_x_input".
        batch_size: examples per forward pass (removal and attention).
        figures: also draw each example's PNG (the summary's is always drawn).

    Returns:
        The summary written to `explain_summary.json`.

    Raises:
        ExplainError, RunFolderError, ManifestError: mistakes in what was given (one line).
    """
    run = load_finished_run(path)
    config = run.config
    task = config.data.task
    out_dir = out_dir or os.path.join(run.folder.path, "explain")
    if not get_task(task).reads_jsonl_manifests:  # question answering: SQuAD files, spans
        from tfmm.explain.explain_span_run import explain_span_run

        os.makedirs(out_dir, exist_ok=True)
        return explain_span_run(run, data_path, ids, limit, out_dir, steps, figures, log)
    if task not in EXPLAINABLE_TASKS:
        raise ExplainError(f"{path}: explain.py explains runs of tasks "
                           f"{list(EXPLAINABLE_TASKS) + ['qa']}; this run's task is {task!r}")
    labels = tuple(run.run_info.get("labels", ()))
    manifest = read_manifest_for_config(data_path, config.data, labels=labels or None)
    manifest = dataclasses.replace(manifest, rows=select_rows(manifest.rows, manifest.path, ids,
                                                              limit))
    preprocessor = MultimodalPreprocessor.from_data_config(config.data, config.model.text_preset)
    tokenizer = getattr(preprocessor.text_preprocessor, "tokenizer", None)
    explainer = ExampleExplainer(run.model, task, tokenizer, steps=steps, method=method)
    os.makedirs(out_dir, exist_ok=True)
    pipeline = ExamplePipeline(manifest, preprocessor, task, cache=False, log=lambda line: None)
    records, started, done = [], time.perf_counter(), 0
    for features, _ in pipeline.batches(batch_size):
        rows = manifest.rows[done:done + len(features[next(iter(features))])]
        for explanation in explainer.explain_batch(features, rows, labels):
            stem = file_stem(str(explanation.record["id"]))
            write_json(os.path.join(out_dir, stem + ".json"), explanation.record)
            if figures:
                plot_explanation(explanation, explainer.paths.modalities,
                                 os.path.join(out_dir, stem + ".png"))
            records.append(explanation.record)
        done += len(rows)
        log(f"explained {done}/{len(manifest.rows)} examples")
    seconds = time.perf_counter() - started
    group_field = config.data.report_group_field
    modalities = list(explainer.paths.modalities)
    summary = {"run": path, "data": data_path, "method": method, "steps": steps,
               "num_examples": len(records), "seconds_per_example": seconds / len(records),
               "table": summarize(records, modalities, group_field), "records": records}
    write_json(os.path.join(out_dir, "explain_summary.json"), summary)
    plot_summary(summary["table"], modalities, os.path.join(out_dir, "explain_summary.png"))
    log(f"records, figures and explain_summary.json/.png in {out_dir}")
    return summary
