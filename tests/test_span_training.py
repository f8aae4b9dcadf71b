"""Tests of the question-answering run: windows pipeline, config, train.py and evaluate.py.

A tiny BERT preset (2 layers, hidden 8) trains 3 steps through the shared Trainer on a
hand-made 5-question SQuAD file; malformed files stop train.py with one line and exit code 2.
"""

import json
import os

import numpy as np
import pytest

from tfmm.config import ConfigError, load_config
from tfmm.data.span_pipeline import SpanWindowPipeline
from tfmm.data.squad import load_squad_file

from helpers.tiny import VOCABULARY as TINY_VOCABULARY
from helpers.tiny_squad import tiny_squad, write_squad_file

XQUAD_CONFIG = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                            "configs", "xquad_minilm.py")


@pytest.fixture
def span_preset(tiny_preset):
    """The session's tiny BERT preset (tests/conftest.py)."""
    return tiny_preset


def _span_overrides(preset, squad_path, run_dir, **extra):
    values = {"data.task": "qa", "data.batch_size": 2, "model.text_preset": preset,
              "model.freeze_text_encoder": False, "qa.train_file": squad_path,
              "qa.eval_fraction": 0.5, "qa.max_sequence_length": 16, "qa.doc_stride": 4,
              "qa.max_query_length": 6, "training.epochs": 1, "training.steps_per_epoch": 3,
              "training.learning_rate": 1e-3, "training.jit_compile": "false",
              "training.export": False, "training.run_dir": run_dir}
    values.update(extra)
    return [f"{key}={value}" for key, value in values.items()]


# ---------------------------------------------------------------- pipeline and config


def test_span_pipeline_batches(tmp_path):
    examples = load_squad_file(write_squad_file(tmp_path / "tiny.json"))
    pipeline = SpanWindowPipeline.from_examples(examples, TINY_VOCABULARY, max_sequence_length=16,
                                                doc_stride=4, max_query_length=6)
    assert pipeline.num_examples == len(pipeline.arrays["question_index"]) > len(examples)
    features, targets = next(iter(pipeline.batches(4)))
    assert set(features) == {"token_ids", "segment_ids", "padding_mask"}
    assert set(targets) == {"start_positions", "end_positions"}
    for value in list(features.values()) + list(targets.values()):
        assert value.dtype.name == "int32"
    assert features["token_ids"].shape == (4, 16) and targets["start_positions"].shape == (4,)
    np.testing.assert_array_equal(features["token_ids"].numpy()[0], pipeline.arrays["token_ids"][0])

    def order(epoch, skip=0):
        batches = pipeline.batches(2, shuffle=True, seed=3, epoch=epoch, drop_remainder=True,
                                   skip_batches=skip)
        return [tuple(row) for batch, _ in batches for row in batch["token_ids"].numpy()]

    assert order(0) == order(0)  # an epoch's order replays (resumption)
    assert order(0) != order(1)
    assert order(0, skip=1) == order(0)[2:]
    assert pipeline.steps_per_epoch(2, drop_remainder=True) == pipeline.num_examples // 2
    assert pipeline.steps_per_epoch(4, drop_remainder=False) == -(-pipeline.num_examples // 4)


def test_qa_config_section(tmp_path):
    config = load_config(None, ["data.task=qa", "qa.train_file=x.json", "qa.doc_stride=64",
                                "qa.version_2_with_negative=true"])
    assert config.qa.doc_stride == 64 and config.qa.version_2_with_negative is True
    assert config.qa.max_sequence_length == 384 and config.qa.max_query_length == 64
    assert config.to_dict()["qa"]["max_answer_length"] == 30
    with pytest.raises(ConfigError, match="unknown key 'qa.stride'"):
        load_config(None, ["data.task=qa", "qa.train_file=x.json", "qa.stride=3"])
    with pytest.raises(ConfigError, match="qa.train_file"):
        load_config(None, ["data.task=qa"])
    with pytest.raises(ConfigError, match="max_query_length"):
        load_config(None, ["data.task=qa", "qa.train_file=x", "qa.max_sequence_length=32"])
    with pytest.raises(ConfigError, match="tfds_version"):
        load_config(None, ["data.task=qa", "qa.tfds_version=v3"])


# ---------------------------------------------------------------- train.py and evaluate.py


def test_train_three_steps_then_evaluate(span_preset, tmp_path):
    import evaluate
    import train

    squad_path = write_squad_file(tmp_path / "tiny.json")
    run_dir = os.fspath(tmp_path / "run")
    arguments = [XQUAD_CONFIG]
    for override in _span_overrides(span_preset, squad_path, run_dir):
        arguments += ["--set", override]
    assert train.main(arguments) == 0

    with open(os.path.join(run_dir, "history.json")) as handle:
        history = json.load(handle)
    assert len(history) == 1 and np.isfinite(history[0]["loss"]) and "span_exact" in history[0]
    with open(os.path.join(run_dir, "run_info.json")) as handle:
        assert json.load(handle)["task"] == "qa"
    with open(os.path.join(run_dir, "eval_report.json")) as handle:
        report = json.load(handle)
    assert report["total"] == report["questions"] > 0
    assert 0.0 <= report["exact_match"] <= report["f1"] <= 100.0
    assert {"exact_match", "f1"} <= set(report["overlap_baseline"])
    with open(os.path.join(run_dir, "eval_predictions.json")) as handle:
        predictions = json.load(handle)
    assert len(predictions) == report["total"]
    assert all(isinstance(answer, str) for answer in predictions.values())

    # evaluate.py on the run folder with a SQuAD v2.0 file: HasAns / NoAns breakdown.
    v2_path = write_squad_file(tmp_path / "tiny_v2.json", tiny_squad("v2.0"))
    out_dir = os.fspath(tmp_path / "reports")
    assert evaluate.main([run_dir, "--data", v2_path, "--out", out_dir, "--batch-size", "4"]) == 0
    with open(os.path.join(out_dir, "tiny_v2_report.json")) as handle:
        v2_report = json.load(handle)
    assert v2_report["total"] == 6 and v2_report["NoAns_total"] == 1
    assert v2_report["HasAns_total"] == 5
    with open(os.path.join(out_dir, "tiny_v2_predictions.json")) as handle:
        assert set(json.load(handle)) == {"q1", "q2", "q3", "q4", "q5", "q6"}


def test_the_runner_returns_a_question_answering_run_like_any_other(span_preset, tmp_path):
    """The one runner's result has the keys of a classification run, with the eval report,
    and train.py's table of stages shows its EM/F1."""
    import train
    from tfmm.training.runner import run_training

    squad_path = write_squad_file(tmp_path / "tiny.json")
    config = load_config(XQUAD_CONFIG, _span_overrides(span_preset, squad_path,
                                                       os.fspath(tmp_path / "run")))
    result = run_training(config, log=lambda line: None)
    assert set(result) == {"run_dir", "task", "history", "report", "export_dir", "model",
                           "replicas", "privacy", "seconds"}
    assert result["task"].name == "qa" and result["export_dir"] is None
    with open(os.path.join(result["run_dir"], "eval_report.json")) as handle:
        assert result["report"] == json.load(handle)
    row = train.stage_table([("qa", config, result)]).splitlines()[2]
    report = result["report"]
    modalities = " + ".join(config.data.modalities)
    assert row == (f"| qa | {modalities} | {report['total']} | {report['exact_match']:.3f} | "
                   f"{report['f1']:.3f} |")


@pytest.mark.parametrize("mutate, expected", [
    (lambda data: data["data"][1]["paragraphs"][0]["qas"][0]["answers"][0].update(
        answer_start=3), ["'Colors'", "question q3", "does not match the context"]),
    (lambda data: data["data"][0]["paragraphs"][0]["qas"][1].update(question=""),
     ["'Books'", "question q2", "missing or empty 'question'"]),
    (lambda data: data["data"][0]["paragraphs"][0]["qas"][1].update(id="q1"),
     ["question q1", "duplicate question id"]),
])
def test_train_reports_a_malformed_file_in_one_line(tmp_path, capsys, mutate, expected):
    import train

    data = tiny_squad()
    mutate(data)
    path = write_squad_file(tmp_path / "bad.json", data)
    arguments = [XQUAD_CONFIG, "--set", f"qa.train_file={path}",
                 "--run-dir", os.fspath(tmp_path / "run")]
    assert train.main(arguments) == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1 and error.startswith("error: ")
    assert "bad.json" in error
    for text in expected:
        assert text in error


def test_train_reports_a_missing_file(tmp_path, capsys):
    import train

    missing = os.fspath(tmp_path / "nowhere" / "squad.json")
    arguments = [XQUAD_CONFIG, "--set", f"qa.train_file={missing}",
                 "--run-dir", os.fspath(tmp_path / "run")]
    assert train.main(arguments) == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1
    assert "not found" in error and "qa.train_file" in error and missing in error
