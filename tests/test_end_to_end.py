"""A tiny run end to end: train -> .keras -> evaluate.py -> SavedModel that matches on raw bytes."""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from helpers.tiny import read_jsonl, tiny_config, write_config, write_jsonl, write_manifest
from tfmm.config import config_from_dict
from tfmm.preprocessing.multimodal_preprocessor import MultimodalPreprocessor
from tfmm.training.runner import run_training

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory, tiny_preset):
    """Trains the tiny text+image+audio model with one audio clip in four missing; exports."""
    root = tmp_path_factory.mktemp("e2e")
    manifest = write_manifest(str(root / "data"), num_rows=16, missing_audio_every=4)
    config = config_from_dict(tiny_config(
        tiny_preset, manifest, str(root / "run"), modalities=("text", "image", "audio"),
        data={"test_manifest": manifest, "optional_modalities": ["audio"]}, epochs=2,
        export=True))
    result = run_training(config.validate(), log=lambda line: None)
    return config, result, manifest


def test_run_folder_holds_everything(finished_run):
    config, result, _ = finished_run
    run_dir = config.training.run_dir
    for name in ("config.json", "run_info.json", "history.json", "model.keras",
                 "test_report.json", "test_predictions.jsonl", "test_confusion_matrix.png",
                 "training_curves.png",
                 "export/1/saved_model.pb"):
        assert os.path.exists(os.path.join(run_dir, name)), name
    assert os.listdir(os.path.join(run_dir, "checkpoints"))
    assert os.listdir(os.path.join(run_dir, "logs", "train"))
    leftovers = [os.path.join(folder, name) for folder, folders, files in os.walk(run_dir)
                 for name in folders + files if ".partial" in name]
    assert not leftovers  # every temporary name was renamed over its file
    history = json.load(open(os.path.join(run_dir, "history.json")))
    assert [entry["epoch"] for entry in history] == [1, 2]
    assert set(result) == {"run_dir", "task", "history", "report", "export_dir", "model",
                           "replicas", "privacy", "seconds"}
    report = result["report"]
    assert report["num_examples"] == 16
    assert set(report) >= {"accuracy", "macro_f1", "auroc", "confusion_matrix"}


def test_saved_keras_model_reloads_without_custom_objects(finished_run):
    """`import tfmm` alone registers every tfmm layer (a fresh interpreter)."""
    config, _, _ = finished_run
    code = ("import keras, tfmm; "
            f"m = keras.saving.load_model({os.path.join(config.training.run_dir, 'model.keras')!r}); "
            "print(sorted(m.output.keys()) if isinstance(m.output, dict) else m.output)")
    output = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            cwd=REPO_ROOT, timeout=240)
    assert output.returncode == 0, output.stderr[-2000:]
    assert "logits" in output.stdout


def test_export_matches_keras_model_on_raw_inputs(finished_run):
    config, result, manifest = finished_run
    rows = read_jsonl(manifest)
    folder = os.path.dirname(manifest)

    def raw(field, row):
        return open(os.path.join(folder, row[field]), "rb").read() if row.get(field) else b""

    inputs = {"text": tf.constant([row["text"] for row in rows[:4]]),
              "image": tf.constant([raw("image", row) for row in rows[:4]]),
              "audio": tf.constant([raw("audio", row) for row in rows[:4]])}
    assert inputs["audio"].numpy()[3] == b""  # one example without audio
    loaded = tf.saved_model.load(result["export_dir"])
    served = loaded.signatures["serving_default"](**inputs)
    model = keras.saving.load_model(os.path.join(config.training.run_dir, "model.keras"))
    preprocessor = MultimodalPreprocessor.from_data_config(config.data, config.model.text_preset)
    expected = tf.nn.softmax(model(preprocessor(inputs))["logits"]).numpy()
    np.testing.assert_allclose(served["probabilities"].numpy(), expected, atol=1e-4)
    labels = json.load(open(os.path.join(config.training.run_dir, "run_info.json")))["labels"]
    assert [label.decode() for label in served["label"].numpy()] == [
        labels[index] for index in expected.argmax(-1)]
    saved_model_cli = os.path.join(os.path.dirname(sys.executable), "saved_model_cli")
    cli = subprocess.run([saved_model_cli, "show", "--dir", result["export_dir"], "--all"],
                         capture_output=True, text=True, timeout=240)
    assert cli.returncode == 0, cli.stderr[-2000:]
    assert "serving_default" in cli.stdout and "inputs['audio']" in cli.stdout


def test_evaluate_cli_writes_report(finished_run, tmp_path):
    config, _, manifest = finished_run
    output = subprocess.run([sys.executable, "evaluate.py", config.training.run_dir, "--data",
                             manifest, "--out", str(tmp_path), "--name", "again"],
                            capture_output=True, text=True, cwd=REPO_ROOT, timeout=300)
    assert output.returncode == 0, output.stderr[-2000:]
    report = json.load(open(tmp_path / "again_report.json"))
    assert report["num_examples"] == 16
    assert (tmp_path / "again_confusion_matrix.png").exists()
    # Per-example predictions beside the report, in manifest order, agreeing with its accuracy.
    assert report["predictions_file"] == "again_predictions.jsonl"
    assert "again_predictions.jsonl" in output.stdout
    lines = read_jsonl(str(tmp_path / "again_predictions.jsonl"))
    rows = read_jsonl(manifest)
    assert [line["id"] for line in lines] == [str(row.get("id", index + 1))
                                              for index, row in enumerate(rows)]
    assert [line["label"] for line in lines] == [row["label"] for row in rows]
    assert np.mean([line["correct"] for line in lines]) == pytest.approx(report["accuracy"])
    assert all(line["correct"] == (line["predicted"] == line["label"]) for line in lines)


def test_evaluate_cli_refuses_to_overwrite_another_files_report(finished_run, tmp_path):
    """A report of another manifest under the same name (e.g. the run's test_report.json and
    some other test.jsonl) stops evaluate.py with one line; the same manifest's is rewritten."""
    config, _, manifest = finished_run
    other = tmp_path / "test_report.json"
    other.write_text(json.dumps({"manifest": "elsewhere/test.jsonl", "accuracy": 0.5}))
    output = run_cli(["evaluate.py", config.training.run_dir, "--data", manifest, "--out",
                      str(tmp_path), "--name", "test"])
    assert output.returncode != 0
    assert error_lines(output) == [
        f"error: {other} is the report of elsewhere/test.jsonl; evaluating {manifest} would "
        "overwrite it. Give the report another name (--name) or folder (--out)."], output.stderr
    assert json.loads(other.read_text())["accuracy"] == 0.5
    # The same manifest's report may be rewritten (test_evaluate_cli_writes_report writes one).
    from tfmm.evaluation.evaluate_run import check_not_another_files_report

    other.write_text(json.dumps({"manifest": manifest, "accuracy": 0.5}))
    check_not_another_files_report(str(other), manifest)


def run_cli(arguments, timeout=300):
    return subprocess.run([sys.executable] + arguments, capture_output=True, text=True,
                          cwd=REPO_ROOT, timeout=timeout)


def error_lines(output):
    return [line for line in output.stderr.splitlines() if line.startswith("error:")]


@pytest.mark.parametrize("row,message", [
    ({"text": "a", "image": "images/none.png", "audio": "audio/0.wav", "label": "high"},
     r"train.jsonl:3: image file not found"),
    ({"text": "a", "image": "images/0.png", "label": "high"},
     r'train.jsonl:3: missing required field "audio"'),
    ({"text": "a", "image": "images/0.png", "audio": "images/1.png", "label": "high"},
     r"train.jsonl:3: audio file is not a readable"),
    ({"text": "a", "image": "audio/0.wav", "audio": "audio/0.wav", "label": "high"},
     r"train.jsonl:3: image file is not a decodable"),
])
def test_bad_rows_stop_train_py_with_one_line(tmp_path, row, message):
    manifest = write_manifest(str(tmp_path / "data"), num_rows=4)
    rows = read_jsonl(manifest)
    write_jsonl(manifest, rows[:2] + [row] + rows[2:])
    config = tiny_config(str(tmp_path / "no_bert_needed"), manifest, str(tmp_path / "run"),
                         modalities=("text", "image", "audio"))
    config_path = write_config(tmp_path / "config.json", config)
    output = run_cli(["train.py", str(config_path)])
    assert output.returncode == 2
    errors = error_lines(output)
    assert len(errors) == 1 and "Traceback" not in output.stderr
    import re
    assert re.search(message, errors[0]), errors[0]


def test_unknown_config_key_and_label_are_one_line_errors(tmp_path):
    manifest = write_manifest(str(tmp_path / "data"), num_rows=4)
    config = tiny_config(str(tmp_path / "bert"), manifest, str(tmp_path / "run"),
                         modalities=("text", "image", "audio"))
    config_path = write_config(tmp_path / "config.json", config)
    output = run_cli(["train.py", str(config_path), "--set", "training.epochz=3"])
    assert output.returncode == 2 and "unknown key 'training.epochz'" in error_lines(output)[0]
    rows = read_jsonl(manifest)
    for row in rows:
        row["image"] = os.path.join(str(tmp_path / "data"), row["image"])
        row["audio"] = os.path.join(str(tmp_path / "data"), row["audio"])
    rows[1]["label"] = "maybe"
    test_manifest = write_jsonl(tmp_path / "test.jsonl", rows[:2])
    output = run_cli(["train.py", str(config_path), "--set",
                      f"data.test_manifest={test_manifest}"])
    assert output.returncode == 2
    assert 'test.jsonl:2: unknown label "maybe"' in error_lines(output)[0]
