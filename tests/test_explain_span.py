"""Token attributions of the QA model's start and end logits (issue 15), on a tiny span model."""

import numpy as np
import pytest
import tensorflow as tf

from tfmm.config import QuestionAnsweringConfig
from tfmm.explain.explain_span_run import explained_spans
from tfmm.explain.span_attributions import SpanAttributions
from tfmm.models.span_model import build_span_model
from tfmm.models.text_encoder import load_bert_backbone


@pytest.fixture(scope="module")
def window(tiny_preset):
    """A tiny span model (2-layer BERT, dropout 0) and one window: [CLS] question [SEP] context
    [SEP], then padding."""
    tf.keras.utils.set_random_seed(3)
    model = build_span_model(load_bert_backbone(tiny_preset), sequence_length=16)
    token_ids = [2, 6, 7, 8, 9, 18, 3, 16, 32, 37, 8, 33, 19, 3, 0, 0]
    segment_ids = [0] * 7 + [1] * 7 + [0, 0]
    features = {"token_ids": tf.constant([token_ids], tf.int32),
                "segment_ids": tf.constant([segment_ids], tf.int32),
                "padding_mask": tf.constant([[1] * 14 + [0, 0]], tf.int32)}
    return model, features


def test_the_split_backbone_gives_the_models_logits(window):
    model, features = window
    attributor = SpanAttributions(model, steps=4)
    embeddings = model.backbone.token_embedding(features["token_ids"])
    start, end = attributor.logits(embeddings, features)
    outputs = model(features, training=False)
    np.testing.assert_allclose(start.numpy(), outputs["start_logits"].numpy(), rtol=1e-5,
                               atol=1e-4)
    np.testing.assert_allclose(end.numpy(), outputs["end_logits"].numpy(), rtol=1e-5, atol=1e-4)


def test_start_and_end_attributions_are_complete(window):
    model, features = window
    outputs = model(features, training=False)
    result = SpanAttributions(model, steps=64)(features, start=9, end=11)
    for name in ("start", "end"):
        assert result[name].shape == (16,)
        assert np.all(result[name][14:] == 0.0)  # padding gets nothing
        change = result[f"{name}_logit"] - result[f"{name}_baseline_logit"]
        assert abs(change) > 1e-3
        assert abs(result[name].sum() - change) <= 0.01 * abs(change) + 1e-5
    assert result["start_logit"] == pytest.approx(float(outputs["start_logits"][0, 9]), abs=1e-4)


def test_explained_span_is_the_span_evaluation_answers():
    """explain.py explains the span the SQuAD decoder answers with: a context span (never [CLS]
    or question tokens, which score higher here), end after start, within max_answer_length, the
    best window across a question's windows; [CLS] (0, 0) when v2.0 decoding answers ""."""
    # Two questions; question 0 has windows 0 and 1, question 1 has window 2. Context tokens:
    # positions 3..6 (token_starts >= 0); [CLS] and the question tokens hold the largest logits.
    token_starts = np.array([[-1, -1, -1, 0, 5, 9, 14, -1]] * 3)
    windows = {"token_starts": token_starts, "token_ends": token_starts + 4,
               "question_index": np.array([0, 0, 1])}
    start_logits = np.array([[50, 40, 0, 1, 9, 0, 0, 0],
                             [50, 40, 0, 1, 2, 0, 0, 0],
                             [50, 40, 0, 9, 0, 1, 0, 0]], np.float32)
    end_logits = np.array([[50, 40, 0, 9, 0, 2, 3, 0],   # best end (3) lies before start 4
                           [50, 40, 0, 0, 0, 0, 0, 0],
                           [50, 40, 0, 0, 0, 0, 8, 0]], np.float32)
    outputs = {"start_logits": start_logits, "end_logits": end_logits}
    qa = QuestionAnsweringConfig(max_answer_length=2)
    assert explained_spans(windows, outputs, 2, qa) == [(0, 4, 5), (2, 3, 3)]
    qa = QuestionAnsweringConfig(max_answer_length=30)
    assert explained_spans(windows, outputs, 2, qa) == [(0, 4, 6), (2, 3, 6)]
    qa = QuestionAnsweringConfig(max_answer_length=30, version_2_with_negative=True)
    assert explained_spans(windows, outputs, 2, qa) == [(0, 0, 0), (2, 0, 0)]


@pytest.mark.slow
def test_explain_py_on_a_question_answering_run(tiny_preset, tmp_path):
    """A tiny QA run trained 3 steps, explained by explain.py: one record and PNG per question,
    start and end attributions over its window's tokens."""
    import json
    import os

    import explain
    import train
    from helpers.tiny_squad import write_squad_file

    squad_path = write_squad_file(tmp_path / "tiny.json")
    run_dir = os.fspath(tmp_path / "run")
    overrides = {"data.task": "qa", "data.batch_size": 2, "model.text_preset": tiny_preset,
                 "model.freeze_text_encoder": False, "qa.train_file": squad_path,
                 "qa.eval_fraction": 0.5, "qa.max_sequence_length": 16, "qa.doc_stride": 4,
                 "qa.max_query_length": 6, "training.epochs": 1, "training.steps_per_epoch": 3,
                 "training.jit_compile": "false", "training.export": False,
                 "training.run_dir": run_dir}
    arguments = [os.path.join(os.path.dirname(os.path.dirname(__file__)), "configs",
                              "xquad_minilm.py")]
    for key, value in overrides.items():
        arguments += ["--set", f"{key}={value}"]
    assert train.main(arguments) == 0
    out_dir = os.fspath(tmp_path / "explained")
    assert explain.main([run_dir, "--data", squad_path, "--limit", "2", "--steps", "32",
                         "--out", out_dir]) == 0
    with open(os.path.join(out_dir, "explain_summary.json")) as handle:
        summary = json.load(handle)
    assert summary["num_examples"] == 2
    for record in summary["records"]:
        assert os.path.getsize(os.path.join(out_dir, record["id"] + ".png")) > 3000
        starts = [token[2] for token in record["tokens"]]
        change = record["start_logit"] - record["start_baseline_logit"]
        assert abs(sum(starts) - change) <= 0.05 * abs(change) + 1e-4
        assert {token[1] for token in record["tokens"]} == {0, 1}  # question and context
