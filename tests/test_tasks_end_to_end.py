"""Multi-label and regression trained through train.py, evaluated with evaluate.py, exported
and served on raw inputs (the multiclass path is tests/test_end_to_end.py)."""

import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from helpers import tiny
from tfmm.config import config_from_dict
from tfmm.preprocessing.multimodal_preprocessor import MultimodalPreprocessor


@pytest.mark.parametrize("task", ["multilabel", "regression"])
def test_task_trains_evaluates_and_serves_raw_inputs(task, tiny_preset, tmp_path, capsys):
    import evaluate
    import train

    data_dir = str(tmp_path / "data")
    manifest = tiny.write_manifest(data_dir, num_rows=16, task=task,
                                   modalities=("text", "audio"))
    run_dir = str(tmp_path / "run")
    data = {"task": task, "test_manifest": manifest}
    if task == "regression":
        data.update(labels=[], num_targets=1)
    values = tiny.tiny_config(tiny_preset, manifest, run_dir, data=data, epochs=1, export=True,
                              model={"dropout": 0.1})
    config_path = tiny.write_config(str(tmp_path / "config.json"), values)

    assert train.main([config_path]) == 0, capsys.readouterr().err
    report = json.load(open(os.path.join(run_dir, "test_report.json")))
    key = "subset_accuracy" if task == "multilabel" else "mae"
    assert report["task"] == task and report["num_examples"] == 16 and key in report

    out = str(tmp_path / "eval")
    assert evaluate.main([run_dir, "--data", manifest, "--out", out, "--name", "again"]) == 0
    again = json.load(open(os.path.join(out, "again_report.json")))
    assert again[key] == pytest.approx(report[key], abs=1e-6)
    # One line per example, in manifest order, agreeing with the report's score.
    lines = tiny.read_jsonl(os.path.join(out, again["predictions_file"]))
    assert [line["line"] for line in lines] == list(range(1, 17))
    if task == "multilabel":
        assert np.mean([line["correct"] for line in lines]) == pytest.approx(again[key])
    else:
        assert np.mean([line["absolute_error"] for line in lines]) == pytest.approx(
            again[key], abs=1e-5)

    rows = tiny.read_jsonl(manifest)[:4]
    raw = {"text": tf.constant([row["text"] for row in rows]),
           "audio": tf.constant([open(os.path.join(data_dir, row["audio"]), "rb").read()
                                 for row in rows])}
    served = tf.saved_model.load(os.path.join(run_dir, "export", "1")).signatures[
        "serving_default"](**raw)
    config = config_from_dict(values)
    model = keras.saving.load_model(os.path.join(run_dir, "model.keras"))
    preprocessor = MultimodalPreprocessor.from_data_config(config.data, config.model.text_preset)
    outputs = model(preprocessor(raw))
    if task == "multilabel":
        expected = tf.sigmoid(outputs["logits"]).numpy()
        np.testing.assert_allclose(served["probabilities"].numpy(), expected, atol=1e-4)
    else:
        expected = outputs["predictions"].numpy()
        np.testing.assert_allclose(served["predictions"].numpy(), expected, atol=1e-4)
    assert np.all(np.isfinite(expected))
