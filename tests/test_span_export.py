"""Tests of the question-answering SavedModel (tfmm.export.span_serving): the reloaded signature
answers raw strings exactly as evaluation does (same windows, same decoder, in the graph), and as
the pure-Python oracle decodes the same logits; on hand-made questions and on real XQuAD ones."""

import dataclasses
import os

import keras
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_text  # noqa: F401  (registers the ops the SavedModel uses)
from helpers.span_decoding_oracle import decode_predictions
from helpers.span_windows_oracle import WordPieceOffsetTokenizer, make_windows_for_examples

from tfmm.config import QuestionAnsweringConfig
from tfmm.data.span_pipeline import SpanWindowPipeline
from tfmm.data.squad import SquadExample, load_squad_file, parse_squad_json
from tfmm.evaluation.evaluate_squad import decode_span_outputs
from tfmm.evaluation.predict import predict_dataset
from tfmm.export.span_serving import export_span_serving_model
from tfmm.models.span_model import build_span_model
from tfmm.models.text_encoder import load_bert_backbone
from tfmm.preprocessing.span_preprocessor import SpanPreprocessor
from tfmm.preprocessing.text_preprocessor import load_bert_tokenizer

from helpers.tiny_squad import minilm_vocabulary_path, tiny_squad, xquad_path

# Small windows so that the longer contexts need several of them.
QA = QuestionAnsweringConfig(max_sequence_length=20, doc_stride=3, max_query_length=6,
                             max_answer_length=4)
LONG_CONTEXT = ("Ada wrote the book, and Tom likes green tea. The sky is blue. Bob lived in Paris "
                "and Ada lived in London. The cat has a name.")


def _examples():
    examples = parse_squad_json(tiny_squad())
    extra = [("x1", "Where lived Ada?", LONG_CONTEXT), ("x2", "What is the cat called?",
                                                        LONG_CONTEXT),
             ("x3", "Who?", "Zorg!"),  # only unknown words and punctuation
             ("x4", "Who was it?", "")]  # an empty context: no span at all
    return examples + [SquadExample(qid, "extra", question, context, ())
                       for qid, question, context in extra]


@pytest.fixture(scope="module")
def span_setup(tiny_preset):
    tokenizer = load_bert_tokenizer(tiny_preset)
    keras.utils.set_random_seed(1)
    model = build_span_model(load_bert_backbone(tiny_preset), QA.max_sequence_length)
    return tokenizer, model


def _in_process(model, tokenizer, examples, qa):
    """What evaluate.py does: graph windows over tf.data, the model, the graph decoder."""
    pipeline = SpanWindowPipeline.from_examples(examples, tokenizer, qa.max_sequence_length,
                                                qa.doc_stride, qa.max_query_length)
    outputs, _, _ = predict_dataset(model, pipeline.batches(8), "qa")
    return decode_span_outputs(examples, pipeline, outputs, qa)


def _oracle(model, tokenizer, examples, qa):
    """Yesterday's Python path: Python windows, the model, the Python decoder."""
    windows = make_windows_for_examples(examples, WordPieceOffsetTokenizer.from_keras_hub(
        tokenizer), qa.max_sequence_length, qa.doc_stride, qa.max_query_length)
    features = {key: np.stack([getattr(w, key) for w in windows]).astype(np.int32)
                for key in ("token_ids", "segment_ids", "padding_mask")}
    outputs = model.predict(features, batch_size=8, verbose=0)
    return decode_predictions(examples, windows, outputs["start_logits"], outputs["end_logits"],
                              n_best_size=20, max_answer_length=qa.max_answer_length,
                              version_2_with_negative=qa.version_2_with_negative,
                              null_score_threshold=qa.null_score_threshold)


def _serve(export_dir, examples):
    serving = tf.saved_model.load(export_dir).signatures["serving_default"]
    result = serving(question=tf.constant([example.question for example in examples]),
                     context=tf.constant([example.context for example in examples]))
    answers = [answer.decode("utf-8") for answer in result["answer"].numpy()]
    return serving, result, answers


def test_preprocessor_windows_match_the_oracle(span_setup):
    tokenizer, _ = span_setup
    examples = _examples()
    windows = make_windows_for_examples(examples, WordPieceOffsetTokenizer.from_keras_hub(
        tokenizer), QA.max_sequence_length, QA.doc_stride, QA.max_query_length)
    graph = SpanPreprocessor(tokenizer, QA.max_sequence_length, QA.doc_stride,
                             QA.max_query_length)(
        tf.constant([example.question for example in examples]),
        tf.constant([example.context for example in examples]))
    assert graph["token_ids"].shape[0] == len(windows) > len(examples)
    question_of = {example.question_id: index for index, example in enumerate(examples)}
    assert graph["question_index"].numpy().tolist() == [question_of[w.question_id]
                                                        for w in windows]
    for key in ("token_ids", "segment_ids", "padding_mask"):
        np.testing.assert_array_equal(graph[key].numpy(),
                                      np.stack([getattr(w, key) for w in windows]).astype(int))
    np.testing.assert_array_equal(graph["token_starts"].numpy(),
                                  np.stack([w.token_char_offsets[:, 0] for w in windows]))
    assert not graph["start_positions"].numpy().any()  # no answers given: every target is 0


@pytest.mark.parametrize("version_2", [False, True])
def test_export_reload_answers_raw_strings(span_setup, tmp_path, version_2):
    tokenizer, model = span_setup
    examples = _examples()
    qa = dataclasses.replace(QA, version_2_with_negative=version_2, null_score_threshold=0.5)
    predictions, evaluation_scores = _in_process(model, tokenizer, examples, qa)
    oracle_predictions, details = _oracle(model, tokenizer, examples, qa)
    assert predictions == oracle_predictions

    export_dir = os.fspath(tmp_path / "export" / "1")
    export_span_serving_model(model, tokenizer, qa, export_dir)
    serving, result, answers = _serve(export_dir, examples)
    assert set(result) == {"answer", "score"}
    assert result["answer"].dtype == tf.string and result["score"].dtype == tf.float32
    scores = result["score"].numpy()
    for index, example in enumerate(examples):
        entry = details[example.question_id]
        assert answers[index] == predictions[example.question_id], example.question_id
        assert scores[index] == pytest.approx(evaluation_scores[example.question_id], rel=1e-4,
                                              abs=1e-4)
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


def test_savedmodel_answers_equal_evaluation_on_xquad(tmp_path):
    """Acceptance: on real XQuAD questions (long contexts cut into several windows, unicode), the
    exported SavedModel answers exactly what evaluate.py's path answers, which is what the Python
    oracle decodes. The span model is a small randomly initialised BERT over the real MiniLM
    vocabulary (answers need not be right, only identical)."""
    keras_hub = pytest.importorskip("keras_hub")
    examples = load_squad_file(xquad_path())
    titles = list(dict.fromkeys(example.title for example in examples))
    examples = [example for example in examples if example.title in titles[:1]][:24]
    examples += [example for example in load_squad_file(xquad_path())
                 if not example.context.isascii()][:8]
    tokenizer = keras_hub.tokenizers.BertTokenizer(
        vocabulary=minilm_vocabulary_path(), lowercase=True, strip_accents=True)
    qa = QuestionAnsweringConfig(max_sequence_length=64, doc_stride=24, max_query_length=20,
                                 max_answer_length=10)
    keras.utils.set_random_seed(3)
    backbone = keras_hub.models.BertBackbone(
        vocabulary_size=tokenizer.vocabulary_size(), num_layers=1, num_heads=2, hidden_dim=16,
        intermediate_dim=32, max_sequence_length=qa.max_sequence_length, dropout=0.0)
    model = build_span_model(backbone, qa.max_sequence_length)
    predictions, _ = _in_process(model, tokenizer, examples, qa)
    oracle_predictions, _ = _oracle(model, tokenizer, examples, qa)
    export_dir = os.fspath(tmp_path / "export" / "1")
    export_span_serving_model(model, tokenizer, qa, export_dir)
    _, _, answers = _serve(export_dir, examples)
    assert len(set(answers)) >= 8 and all(answers)  # varied, non-empty answers
    assert answers == [predictions[example.question_id] for example in examples]
    assert predictions == oracle_predictions
