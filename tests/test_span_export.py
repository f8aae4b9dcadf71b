"""Tests of the question-answering SavedModel (tfmm.export.span_serving): tokenisation, windows and
decoding in the graph match the Python path, and the reloaded signature answers raw strings."""

import dataclasses
import os

import keras
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_text  # noqa: F401  (registers the ops the SavedModel uses)

from tfmm.config import QuestionAnsweringConfig
from tfmm.data.span_pipeline import SpanWindowPipeline
from tfmm.data.squad import SquadExample, parse_squad_json
from tfmm.evaluation.evaluate_squad import decode_span_outputs
from tfmm.evaluation.predict import predict_dataset
from tfmm.export.span_serving import (GraphWordPieceTokenizer, export_span_serving_model,
                                      graph_windows)
from tfmm.models.span_model import build_span_model
from tfmm.models.text_encoder import load_bert_backbone
from tfmm.preprocessing.span_windows import as_offset_tokenizer, make_windows_for_examples
from tfmm.preprocessing.text_preprocessor import load_bert_tokenizer

from test_span_model import TINY_SQUAD, make_tiny_bert_preset

# Small windows so that the longer contexts need several of them.
QA = QuestionAnsweringConfig(max_sequence_length=20, doc_stride=3, max_query_length=6,
                             max_answer_length=4)
LONG_CONTEXT = ("Ada wrote the book, and Tom likes green tea. The sky is blue. Bob lived in Paris "
                "and Ada lived in London. The cat has a name.")


def _examples():
    examples = parse_squad_json(TINY_SQUAD)
    extra = [("x1", "Where lived Ada?", LONG_CONTEXT), ("x2", "What is the cat called?",
                                                        LONG_CONTEXT),
             ("x3", "Who?", "Zorg!"),  # only unknown words and punctuation
             ("x4", "Who was it?", "")]  # an empty context: no span at all
    return examples + [SquadExample(qid, "extra", question, context, ())
                       for qid, question, context in extra]


@pytest.fixture(scope="module")
def span_setup(tmp_path_factory):
    preset = make_tiny_bert_preset(tmp_path_factory.mktemp("tiny_bert"))
    tokenizer = load_bert_tokenizer(preset)
    keras.utils.set_random_seed(1)
    model = build_span_model(load_bert_backbone(preset), QA.max_sequence_length)
    return tokenizer, model


def _in_process(model, tokenizer, examples, qa):
    pipeline = SpanWindowPipeline.from_examples(examples, tokenizer, qa.max_sequence_length,
                                                qa.doc_stride, qa.max_query_length)
    outputs, _, _ = predict_dataset(model, pipeline.batches(8), "span")
    return decode_span_outputs(examples, pipeline, outputs, qa)


def test_graph_tokenizer_matches_python(span_setup):
    tokenizer, _ = span_setup
    python = as_offset_tokenizer(tokenizer)
    texts = ["Ada wrote the book.", "  Tom, likes;green-tea?? ", "Zorgs cats", "", "ADA's dogs",
             LONG_CONTEXT]
    ids, starts, ends = GraphWordPieceTokenizer(tokenizer).tokenize_with_offsets(tf.constant(texts))
    for index, text in enumerate(texts):
        expected_ids, expected_offsets = python.tokenize_with_offsets(text)
        assert ids[index].numpy().tolist() == expected_ids.tolist(), text
        got = np.stack([starts[index].numpy(), ends[index].numpy()], -1).reshape(-1, 2)
        np.testing.assert_array_equal(got, expected_offsets.reshape(-1, 2))  # ASCII: bytes = chars


def test_graph_windows_match_make_windows(span_setup):
    tokenizer, _ = span_setup
    examples = _examples()
    windows = make_windows_for_examples(examples, tokenizer, QA.max_sequence_length,
                                        QA.doc_stride, QA.max_query_length)
    graph = graph_windows(GraphWordPieceTokenizer(tokenizer),
                          tf.constant([example.question for example in examples]),
                          tf.constant([example.context for example in examples]),
                          QA.max_sequence_length, QA.doc_stride, QA.max_query_length)
    assert graph["token_ids"].shape[0] == len(windows) > len(examples)
    question_of = {example.question_id: index for index, example in enumerate(examples)}
    assert graph["question_index"].numpy().tolist() == [question_of[w.question_id]
                                                        for w in windows]
    for key in ("token_ids", "segment_ids", "padding_mask"):
        np.testing.assert_array_equal(graph[key].numpy(),
                                      np.stack([getattr(w, key) for w in windows]).astype(int))
    np.testing.assert_array_equal(graph["starts"].numpy(),
                                  np.stack([w.token_char_offsets[:, 0] for w in windows]))


@pytest.mark.parametrize("version_2", [False, True])
def test_export_reload_answers_raw_strings(span_setup, tmp_path, version_2):
    tokenizer, model = span_setup
    examples = _examples()
    qa = dataclasses.replace(QA, version_2_with_negative=version_2, null_score_threshold=0.5)
    predictions, details = _in_process(model, tokenizer, examples, qa)

    export_dir = os.fspath(tmp_path / "export" / "1")
    export_span_serving_model(model, tokenizer, qa, export_dir)
    serving = tf.saved_model.load(export_dir).signatures["serving_default"]
    result = serving(question=tf.constant([example.question for example in examples]),
                     context=tf.constant([example.context for example in examples]))
    assert set(result) == {"answer", "score"}
    assert result["answer"].dtype == tf.string and result["score"].dtype == tf.float32
    answers = [answer.decode("utf-8") for answer in result["answer"].numpy()]
    scores = result["score"].numpy()
    for index, example in enumerate(examples):
        entry = details[example.question_id]
        assert answers[index] == predictions[example.question_id], example.question_id
        expected = entry["best_score"]
        if predictions[example.question_id] == "" and entry["null_score"] is not None:
            expected = entry["null_score"]
        if expected == float("-inf"):
            assert scores[index] == float("-inf")
        else:
            assert scores[index] == pytest.approx(expected, rel=1e-4, abs=1e-4)
    assert answers[-1] == ""  # the empty context
    if not version_2:
        assert all(answer for answer in answers[:-1])  # every other question gets a span
        # One question alone gives the same answer as inside the batch.
        single = serving(question=tf.constant([examples[5].question]),
                         context=tf.constant([examples[5].context]))
        assert single["answer"].numpy()[0].decode() == answers[5]
        empty = serving(question=tf.constant(["Who?", ""]), context=tf.constant(["", ""]))
        assert empty["answer"].numpy().tolist() == [b"", b""]
        assert np.all(empty["score"].numpy() == float("-inf"))
