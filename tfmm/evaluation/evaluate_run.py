"""Evaluating a finished run folder on any manifest (what `evaluate.py` does)."""

import json
import os

import keras
import tensorflow as tf

from tfmm.config import config_from_dict
from tfmm.data.dataset import ExamplePipeline
from tfmm.data.manifest import read_manifest_for_config
from tfmm.errors import UserError
from tfmm.evaluation.report import evaluate_pipeline, headline
from tfmm.preprocessing.multimodal_preprocessor import MultimodalPreprocessor
from tfmm.training.history import history_by_metric, load_history

# Registers tfmm's layers so the .keras file loads without custom_objects.
import tfmm.models.multimodal_model  # noqa: F401  pylint: disable=unused-import
import tfmm.models.span_model  # noqa: F401  (registers the span layers that load_model needs)


class RunFolderError(UserError):
    """A path that is not a tfmm run folder or model."""


def load_run(path: str):
    """Loads (config, run_info, model) from a run folder or its model.keras."""
    run_dir = os.path.dirname(path) if path.endswith(".keras") else path
    model_path = path if path.endswith(".keras") else os.path.join(run_dir, "model.keras")
    for required in (model_path, os.path.join(run_dir, "config.json"),
                     os.path.join(run_dir, "run_info.json")):
        if not tf.io.gfile.exists(required):
            raise RunFolderError(f"{path} is not a finished tfmm run: {required} is missing "
                                 "(train.py writes it when training ends)")
    with tf.io.gfile.GFile(os.path.join(run_dir, "config.json")) as handle:
        config = config_from_dict(json.load(handle), source=os.path.join(run_dir, "config.json"))
    with tf.io.gfile.GFile(os.path.join(run_dir, "run_info.json")) as handle:
        run_info = json.load(handle)
    model = keras.saving.load_model(model_path)
    return run_dir, config, run_info, model


def evaluate_run(path: str, manifest_path: str, out_dir=None, name=None, batch_size=64,
                 skip_invalid=False, log=print) -> dict:
    """Evaluates a run's model on a manifest and writes the report next to it.

    A question-answering run (task "span") takes a SQuAD v1.1/v2.0 JSON file instead of a
    manifest and writes `<name>_report.json` (exact match, F1) and `<name>_predictions.json`
    (see `tfmm.evaluation.evaluate_squad.evaluate_squad_run`).

    Args:
        path: run folder or its model.keras.
        manifest_path: JSONL manifest (labels must be among the run's labels), or a SQuAD JSON
            file for a "span" run.
        out_dir: report folder (default: the run folder).
        name: file prefix (default: the manifest's file name without extension).
        batch_size: evaluation batch size.
        skip_invalid: skip invalid rows instead of stopping at the first.

    Returns:
        The report dict.
    """
    run_dir, config, run_info, model = load_run(path)
    if run_info.get("task") == "qa":
        from tfmm.evaluation.evaluate_squad import evaluate_squad_run

        return evaluate_squad_run(run_dir, config, model, manifest_path, out_dir=out_dir,
                                  name=name, batch_size=batch_size, skip_invalid=skip_invalid,
                                  log=log)
    config.data.skip_invalid = skip_invalid
    labels = tuple(run_info["labels"])
    manifest = read_manifest_for_config(manifest_path, config.data,
                                        labels=labels if run_info["task"] != "regression" else None)
    log(manifest.summary())
    preprocessor = MultimodalPreprocessor.from_data_config(config.data, config.model.text_preset)
    pipeline = ExamplePipeline(manifest, preprocessor, run_info["task"], cache=False)
    history = history_by_metric(load_history(run_dir)) or None
    name = name or os.path.splitext(os.path.basename(manifest_path))[0]
    report = evaluate_pipeline(model, pipeline, run_info["task"], labels, out_dir or run_dir,
                               batch_size, history=history, name=name)
    log(f"{name}: {headline(report)}")
    log(f"report: {os.path.join(out_dir or run_dir, name + '_report.json')}")
    return report
