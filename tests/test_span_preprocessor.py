"""The graph question-answering path against the pure-Python oracle and keras-hub.

`tfmm.preprocessing.span_tokenizer`, `tfmm.preprocessing.span_preprocessor` and
`tfmm.evaluation.span_decoding` (what trains, evaluates and serves) must give the same token ids
as keras-hub's BertTokenizer, and the same character offsets, windows, targets and decoded answers
as the Python definition in tests/helpers (span_windows_oracle.py, span_decoding_oracle.py): on
hand-made unicode edge cases and on real XQuAD text (accents, unicode punctuation, long contexts
cut into several windows).
"""

import dataclasses

import numpy as np
import pytest
import tensorflow as tf
from helpers.span_decoding_oracle import decode_predictions
from helpers.span_windows_oracle import WordPieceOffsetTokenizer, make_windows_for_examples

from helpers.tiny_squad import AGREEMENT_TEXTS, minilm_vocabulary_path, xquad_path
from helpers.tiny_squad import UNICODE_VOCABULARY as VOCABULARY
from tfmm.config import QuestionAnsweringConfig
from tfmm.data.span_pipeline import SpanWindowPipeline
from tfmm.data.squad import SquadExample, load_squad_file
from tfmm.evaluation.evaluate_squad import decode_span_outputs
from tfmm.preprocessing.span_preprocessor import SpanPreprocessor
from tfmm.preprocessing.span_tokenizer import GraphWordPieceTokenizer

# Small windows: most XQuAD contexts need several.
QA = QuestionAnsweringConfig(max_sequence_length=96, doc_stride=32, max_query_length=24,
                             max_answer_length=12)
EDGE_TEXTS = AGREEMENT_TEXTS + [
    "", " \n ", "Cafe\u0301 NAI\u0308VE", "fox😀 fox", "ﬁne Straße", "a\u00a0b fox",
    "\u1100\u1161\u11a8 hangul jamo", "e\u0301\u0301 stacked marks", "zebra\u200d\u200dfox",
]


@pytest.fixture(scope="module")
def minilm():
    """keras-hub's tokenizer from the offline MiniLM vocabulary (as `load_bert_tokenizer` makes
    it) and the oracle reproducing it."""
    keras_hub = pytest.importorskip("keras_hub")
    keras_tokenizer = keras_hub.tokenizers.BertTokenizer(
        vocabulary=minilm_vocabulary_path(), lowercase=True, strip_accents=True)
    return keras_tokenizer, WordPieceOffsetTokenizer.from_keras_hub(keras_tokenizer)


@pytest.fixture(scope="module")
def xquad_examples():
    """A few XQuAD articles: the first two and the two with the most non-ASCII context text."""
    examples = load_squad_file(xquad_path())
    titles = list(dict.fromkeys(example.title for example in examples))
    non_ascii = {title: 0 for title in titles}
    for example in examples:
        non_ascii[example.title] += sum(not character.isascii() for character in example.context)
    chosen = set(titles[:2]) | set(sorted(titles, key=lambda t: -non_ascii[t])[:2])
    return [example for example in examples if example.title in chosen]


def assert_tokenizers_agree(graph, oracle, texts, keras_tokenizer=None):
    ids, starts, ends = graph.tokenize_with_offsets(tf.constant(texts))
    plain_ids = graph.tokenize(tf.constant(texts))
    for index, text in enumerate(texts):
        expected_ids, expected_offsets = oracle.tokenize_with_offsets(text)
        assert ids[index].numpy().tolist() == expected_ids.tolist(), text
        assert plain_ids[index].numpy().tolist() == expected_ids.tolist(), text
        if keras_tokenizer is not None:
            assert np.asarray(keras_tokenizer(text)).tolist() == expected_ids.tolist(), text
        offsets = np.stack([starts[index].numpy(), ends[index].numpy()], -1).reshape(-1, 2)
        np.testing.assert_array_equal(offsets, expected_offsets.reshape(-1, 2), err_msg=text)


@pytest.mark.parametrize("strip_accents", [True, False])
def test_tokenizer_matches_oracle_on_unicode_edge_cases(strip_accents):
    oracle = WordPieceOffsetTokenizer(VOCABULARY, lowercase=True, strip_accents=strip_accents)
    assert_tokenizers_agree(GraphWordPieceTokenizer(oracle), oracle, EDGE_TEXTS)


def test_mark_after_punctuation_is_a_word_of_its_own_in_the_graph():
    """The one known difference from the oracle: the graph splits punctuation off before it
    normalises, so a combining mark right after punctuation is a word of its own that normalises
    to nothing (the "!" token covers only "!"), while the oracle strips accents before splitting
    and lets the "!" token cover the mark too. Ids agree; no XQuAD text has such a mark."""
    oracle = WordPieceOffsetTokenizer(VOCABULARY, lowercase=True)
    ids, starts, ends = GraphWordPieceTokenizer(oracle).tokenize_with_offsets(
        tf.constant(["!\u0301 fox"]))
    assert ids[0].numpy().tolist() == oracle.tokenize("!\u0301 fox").tolist()
    assert list(zip(starts[0].numpy(), ends[0].numpy())) == [(0, 1), (3, 6)]
    assert oracle.tokenize_with_offsets("!\u0301 fox")[1].tolist() == [[0, 2], [3, 6]]


def test_tokenizer_matches_oracle_and_keras_hub_on_xquad(minilm, xquad_examples):
    keras_tokenizer, oracle = minilm
    texts = sorted({example.context for example in xquad_examples}
                   | {example.question for example in xquad_examples})
    assert sum(not text.isascii() for text in texts) >= 10  # accents, dashes, quotes
    assert_tokenizers_agree(GraphWordPieceTokenizer(keras_tokenizer), oracle, texts,
                            keras_tokenizer)


def test_tokenizer_settings_and_errors(tmp_path):
    path = tmp_path / "vocab.txt"
    path.write_text("\n".join(VOCABULARY) + "\n", encoding="utf-8")
    from_file = GraphWordPieceTokenizer(str(path))
    assert from_file.vocabulary == VOCABULARY and from_file.strip_accents
    with pytest.raises(ValueError, match="SEP"):
        GraphWordPieceTokenizer(["[PAD]", "[UNK]", "[CLS]", "the"])
    with pytest.raises(TypeError, match="vocabulary"):
        GraphWordPieceTokenizer(42)
    with pytest.raises(ValueError, match="max_query_length"):
        SpanPreprocessor(VOCABULARY, max_sequence_length=10, max_query_length=7)


def window_arrays_of_oracle(windows):
    return {
        "token_ids": np.stack([w.token_ids for w in windows]),
        "segment_ids": np.stack([w.segment_ids for w in windows]),
        "padding_mask": np.stack([w.padding_mask for w in windows]).astype(np.int32),
        "start_positions": np.asarray([w.start_position for w in windows]),
        "end_positions": np.asarray([w.end_position for w in windows]),
        "token_starts": np.stack([w.token_char_offsets[:, 0] for w in windows]),
        "token_ends": np.stack([w.token_char_offsets[:, 1] for w in windows]),
    }


def test_windows_and_targets_match_oracle_on_xquad(minilm, xquad_examples):
    keras_tokenizer, oracle = minilm
    # An unanswerable question and an empty context ride along.
    examples = xquad_examples + [
        dataclasses.replace(xquad_examples[0], question_id="impossible", answers=(),
                            is_impossible=True),
        SquadExample("empty", "extra", "Who?", "", ())]
    pipeline = SpanWindowPipeline.from_examples(examples, keras_tokenizer, QA.max_sequence_length,
                                                QA.doc_stride, QA.max_query_length)
    windows = make_windows_for_examples(examples, oracle, QA.max_sequence_length, QA.doc_stride,
                                        QA.max_query_length)
    assert pipeline.num_examples == len(windows) > 2 * len(examples)
    question_of = {example.question_id: index for index, example in enumerate(examples)}
    assert pipeline.arrays["question_index"].tolist() == [question_of[w.question_id]
                                                          for w in windows]
    expected = window_arrays_of_oracle(windows)
    for key, value in expected.items():
        np.testing.assert_array_equal(pipeline.arrays[key], value, err_msg=key)
    assert np.count_nonzero(expected["start_positions"]) >= len(xquad_examples)


@pytest.mark.parametrize("version_2", [False, True])
def test_decoded_answers_match_oracle_on_xquad(minilm, xquad_examples, version_2):
    keras_tokenizer, oracle = minilm
    qa = dataclasses.replace(QA, version_2_with_negative=version_2, null_score_threshold=0.5)
    pipeline = SpanWindowPipeline.from_examples(xquad_examples, keras_tokenizer,
                                                qa.max_sequence_length, qa.doc_stride,
                                                qa.max_query_length)
    windows = make_windows_for_examples(xquad_examples, oracle, qa.max_sequence_length,
                                        qa.doc_stride, qa.max_query_length)
    random = np.random.default_rng(7)
    shape = (len(windows), qa.max_sequence_length)
    # Logits rounded to halves: many exact ties, which both paths must break the same way.
    for start_logits, end_logits in [
            (random.normal(size=shape), random.normal(size=shape)),
            (np.round(2 * random.normal(size=shape)) / 2,
             np.round(2 * random.normal(size=shape)) / 2)]:
        # [CLS] logits from low to high, so that some questions get the null answer in v2.0.
        boost = np.round(random.uniform(0, 10, size=len(xquad_examples)))
        start_logits[:, 0] += boost[pipeline.arrays["question_index"]]
        end_logits[:, 0] += boost[pipeline.arrays["question_index"]]
        start_logits = start_logits.astype(np.float32)
        end_logits = end_logits.astype(np.float32)
        outputs = {"start_logits": start_logits, "end_logits": end_logits}
        graph, scores = decode_span_outputs(xquad_examples, pipeline, outputs, qa)
        expected, details = decode_predictions(
            xquad_examples, windows, start_logits, end_logits, n_best_size=20,
            max_answer_length=qa.max_answer_length, version_2_with_negative=version_2,
            null_score_threshold=qa.null_score_threshold)
        assert graph == expected
        for question_id, entry in details.items():
            score = entry["best_score"]
            if expected[question_id] == "" and entry["null_score"] is not None:
                score = entry["null_score"]
            assert scores[question_id] == pytest.approx(score, abs=1e-9)
        if version_2:
            assert 0 < sum(answer == "" for answer in graph.values()) < len(graph)


def test_preprocessor_maps_over_tf_data_like_the_pipeline(minilm, xquad_examples):
    """`ds.map(preprocessor)` (here with unbatched windows, as a streaming input pipeline would
    use it) gives the windows and targets that SpanWindowPipeline keeps."""
    keras_tokenizer, _ = minilm
    examples = xquad_examples[:40]
    preprocessor = SpanPreprocessor(keras_tokenizer, QA.max_sequence_length, QA.doc_stride,
                                    QA.max_query_length)
    pipeline = SpanWindowPipeline.from_examples(examples, preprocessor)
    starts = [example.answers[0][1] for example in examples]
    ends = [start + len(example.answers[0][0]) for start, example in zip(starts, examples)]
    dataset = tf.data.Dataset.from_tensor_slices((
        [example.question for example in examples], [example.context for example in examples],
        np.asarray(starts, np.int64), np.asarray(ends, np.int64)))
    mapped = dataset.batch(16).map(preprocessor)
    # Static window length for the model (XLA, TPUs); the number of windows varies.
    for key in ("token_ids", "segment_ids", "padding_mask", "token_starts"):
        assert mapped.element_spec[key].shape.as_list() == [None, QA.max_sequence_length], key
    windows = list(mapped.unbatch().batch(1000).as_numpy_iterator())
    assert len(windows) == 1
    for key in ("token_ids", "segment_ids", "padding_mask", "start_positions", "end_positions",
                "token_starts", "token_ends"):
        np.testing.assert_array_equal(windows[0][key], pipeline.arrays[key], err_msg=key)
        assert windows[0][key].shape[1:] == pipeline.arrays[key].shape[1:]
