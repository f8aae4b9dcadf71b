"""Tests of the question-answering model and loss (tfmm.models.span_model, task "qa" losses)
on the tiny keras-hub BERT preset of tests/helpers/tiny.py."""

import os

import keras
import numpy as np
import pytest
import tensorflow as tf
from helpers import tiny

from tfmm.tasks import QuestionAnsweringTask
from tfmm.models.span_model import MASKED_LOGIT, SpanLogits, build_span_model
from tfmm.models.text_encoder import load_bert_backbone

@pytest.fixture
def span_preset(tiny_preset):
    """The session's tiny BERT preset (tests/conftest.py)."""
    return tiny_preset


def _features(batch=3, length=16, real=(16, 10, 5)):
    rng = np.random.default_rng(0)
    token_ids = rng.integers(5, len(tiny.VOCABULARY), size=(batch, length)).astype(np.int32)
    padding_mask = (np.arange(length)[None, :] < np.asarray(real)[:, None]).astype(np.int32)
    token_ids = token_ids * padding_mask
    segment_ids = ((np.arange(length)[None, :] >= 4) & (padding_mask > 0)).astype(np.int32)
    return {"token_ids": token_ids, "segment_ids": segment_ids, "padding_mask": padding_mask}


def test_span_model_shapes_and_padding_mask(span_preset):
    model = build_span_model(load_bert_backbone(span_preset), sequence_length=16)
    trainable = {variable.path for variable in model.trainable_variables}
    assert any("token_embedding" in path for path in trainable)  # the backbone is fine-tuned
    assert not any("pooled_dense" in path for path in trainable)  # the unused pooler is not
    features = _features()
    outputs = model(features, training=False)
    assert set(outputs) == {"start_logits", "end_logits"}
    for key in ("start_logits", "end_logits"):
        values = outputs[key].numpy()
        assert values.shape == (3, 16) and values.dtype == np.float32
        padded = features["padding_mask"] == 0
        assert np.all(values[padded] == MASKED_LOGIT)
        assert np.all(np.abs(values[~padded]) < 100.0)


def test_span_logits_get_config_round_trip():
    layer = SpanLogits(initializer_range=0.05, name="head")
    config = layer.get_config()
    assert config["initializer_range"] == 0.05
    clone = SpanLogits.from_config(config)
    assert clone.initializer_range == 0.05 and clone.name == "head"
    sequence = np.ones((2, 4, 6), np.float32)
    start, end = layer(sequence, np.array([[1, 1, 1, 0], [1, 1, 0, 0]]))
    assert start.shape == (2, 4) and end.shape == (2, 4)
    assert float(start[1, 3]) == MASKED_LOGIT


def test_span_model_keras_file_round_trip(span_preset, tmp_path):
    model = build_span_model(load_bert_backbone(span_preset), sequence_length=16)
    features = _features()
    expected = model(features, training=False)
    path = os.fspath(tmp_path / "span.keras")
    model.save(path)
    reloaded = keras.saving.load_model(path)
    got = reloaded(features, training=False)
    for key in ("start_logits", "end_logits"):
        np.testing.assert_allclose(got[key].numpy(), expected[key].numpy(), rtol=1e-5, atol=1e-5)


def test_span_loss_and_score_on_hand_set_logits():
    # Row 0: uniform logits over 4 positions -> each cross-entropy is log(4).
    # Row 1: start/end logits peaked at the targets (1 and 2) with margin 100 -> loss ~0, exact.
    # Row 2: start right, end wrong -> not exact.
    start = np.array([[0.0, 0.0, 0.0, 0.0], [0.0, 100.0, 0.0, 0.0], [0.0, 0.0, 100.0, 0.0]],
                     np.float32)
    end = np.array([[0.0, 0.0, 0.0, 0.0], [0.0, 0.0, 100.0, 0.0], [100.0, 0.0, 0.0, 0.0]],
                   np.float32)
    outputs = {"start_logits": tf.constant(start), "end_logits": tf.constant(end)}
    targets = {"start_positions": tf.constant([1, 1, 2]), "end_positions": tf.constant([3, 2, 3])}
    loss = QuestionAnsweringTask().per_example_loss(targets, outputs).numpy()
    assert loss[0] == pytest.approx(np.log(4.0), rel=1e-6)
    assert loss[1] == pytest.approx(0.0, abs=1e-6)
    assert loss[2] == pytest.approx(0.5 * 100.0, rel=1e-4)  # start right, end off by 100
    score = QuestionAnsweringTask().per_example_score(targets, outputs).numpy()
    assert score.tolist() == [0.0, 1.0, 0.0]  # row 0: argmax 0 for both, targets 1 and 3


def test_task_head_rejects_span():
    from tfmm.models.heads.task_head import TaskHead

    with pytest.raises(ValueError, match="multiclass"):
        TaskHead(task="qa")
