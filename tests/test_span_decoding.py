"""Tests of the pure-Python decoding oracle (tests/helpers/span_decoding_oracle.py) on hand-set
logits and on real windows; the graph decoder is tested against it in test_span_preprocessor.py."""

import json

import numpy as np
import pytest

from tfmm.data.squad import SquadExample
from helpers.span_decoding_oracle import (
    candidates_to_json,
    decode_predictions,
    window_span_candidates,
)
from tfmm.evaluation.squad_metrics import evaluate_predictions
from helpers.span_windows_oracle import SpanWindow, WordPieceOffsetTokenizer, make_windows
from helpers.tiny_squad import UNICODE_VOCABULARY

# A hand-made window of 12 slots: [CLS] q q [SEP] c0..c6 [SEP]; context "c0 c1 c2 c3 c4 c5 c6".
LENGTH = 12
CONTEXT = "c0 c1 c2 c3 c4 c5 c6"
CONTEXT_SLOTS = range(4, 11)


def hand_offsets():
    offsets = np.full((LENGTH, 2), -1, dtype=np.int32)
    for word, slot in enumerate(CONTEXT_SLOTS):
        offsets[slot] = (3 * word, 3 * word + 2)
    return offsets


def logits(values):
    array = np.zeros(LENGTH, dtype=np.float32)
    for slot, value in values.items():
        array[slot] = value
    return array


def test_picks_the_best_legal_span():
    start = logits({5: 3.0, 6: 1.0})
    end = logits({7: 2.0, 8: 4.0})
    best = window_span_candidates(start, end, hand_offsets(), n_best_size=5)[0]
    assert (best.start_index, best.end_index, best.score) == (5, 8, 7.0)
    assert (best.char_start, best.char_end) == (3, 14)  # slots 5..8 hold c1..c4
    assert CONTEXT[best.char_start : best.char_end] == "c1 c2 c3 c4"


def test_skips_question_special_and_padding_tokens():
    start = logits({0: 9.0, 1: 9.0, 3: 9.0, 11: 9.0, 6: 1.0})
    end = logits({0: 9.0, 2: 9.0, 3: 9.0, 11: 9.0, 7: 1.0})
    candidates = window_span_candidates(start, end, hand_offsets(), n_best_size=50)
    assert (candidates[0].start_index, candidates[0].end_index) == (6, 7)
    for candidate in candidates:
        assert candidate.start_index in CONTEXT_SLOTS and candidate.end_index in CONTEXT_SLOTS
    # All 7 * 8 / 2 = 28 legal spans (max_answer_length 30 allows every length) and no more.
    assert len(candidates) == 28


def test_end_before_start_is_never_chosen():
    start = logits({9: 5.0, 4: 1.0})
    end = logits({5: 5.0, 9: 0.5})
    best = window_span_candidates(start, end, hand_offsets())[0]
    # (9, 5) would score 10 but ends before it starts; the legal (4, 5) = 6.0 beats (9, 9) = 5.5.
    assert (best.start_index, best.end_index, best.score) == (4, 5, 6.0)
    for candidate in window_span_candidates(start, end, hand_offsets(), n_best_size=100):
        assert candidate.end_index >= candidate.start_index


def test_respects_max_answer_length():
    start = logits({4: 5.0})
    end = logits({10: 5.0, 6: 1.0})
    best = window_span_candidates(start, end, hand_offsets(), max_answer_length=3)[0]
    assert (best.start_index, best.end_index) == (4, 6)  # (4, 10) is 7 tokens long
    best = window_span_candidates(start, end, hand_offsets(), max_answer_length=7)[0]
    assert (best.start_index, best.end_index) == (4, 10)
    for candidate in window_span_candidates(start, end, hand_offsets(), 100, max_answer_length=2):
        assert candidate.end_index - candidate.start_index + 1 <= 2


def test_n_best_is_sorted_and_limited():
    rng = np.random.default_rng(0)
    start, end = rng.normal(size=LENGTH), rng.normal(size=LENGTH)
    candidates = window_span_candidates(
        start, end, hand_offsets(), n_best_size=6, max_answer_length=4
    )
    assert len(candidates) == 6
    scores = [candidate.score for candidate in candidates]
    assert scores == sorted(scores, reverse=True)
    # Brute force agrees on the best.
    best = max(
        (start[s] + end[e], s, e)
        for s in CONTEXT_SLOTS
        for e in CONTEXT_SLOTS
        if s <= e < s + 4
    )
    assert (candidates[0].start_index, candidates[0].end_index) == (best[1], best[2])
    assert candidates[0].score == pytest.approx(best[0])


def test_max_context_restricts_starts():
    start = logits({5: 5.0, 8: 1.0})
    end = logits({9: 1.0})
    max_context = np.zeros(LENGTH, dtype=bool)
    max_context[7:11] = True
    best = window_span_candidates(start, end, hand_offsets(), token_is_max_context=max_context)[0]
    assert best.start_index == 8
    with pytest.raises(ValueError):
        window_span_candidates(start, end[:5], hand_offsets())


def window(question_id, index, offsets=None):
    offsets = hand_offsets() if offsets is None else offsets
    zeros = np.zeros(LENGTH, dtype=np.int32)
    return SpanWindow(question_id, index, zeros, zeros, zeros.astype(bool), offsets, 0, 0)


def test_best_span_across_windows_and_text_from_offsets():
    # Two windows of one question; the second window sees the context shifted by 3 words
    # (slot 4 = c3); the best span is in the second window.
    long_context = CONTEXT + " c7 c8 c9"
    shifted = np.full((LENGTH, 2), -1, dtype=np.int32)
    for word, slot in enumerate(CONTEXT_SLOTS):
        shifted[slot] = (3 * (word + 3), 3 * (word + 3) + 2)
    example = SquadExample("q1", "T", "q?", long_context, (("c7 c8", 21),), False)
    windows = [window("q1", 0), window("q1", 1, shifted)]
    start_logits = np.stack([logits({5: 2.0}), logits({8: 3.0})])
    end_logits = np.stack([logits({6: 2.0}), logits({9: 3.0})])
    predictions, details = decode_predictions([example], windows, start_logits, end_logits)
    assert predictions == {"q1": "c7 c8"}
    entry = details["q1"]
    assert entry["best_score"] == pytest.approx(6.0) and entry["n_best"][0].window_index == 1
    assert entry["null_score"] is None
    # Runner-up: window 0's (5, 6) = "c1 c2", scored 4.
    assert (entry["n_best"][1].text, entry["n_best"][1].window_index) == ("c1 c2", 0)
    assert entry["n_best"][1].score == pytest.approx(4.0)
    json.dumps(candidates_to_json(details))  # serialisable
    assert evaluate_predictions([example], predictions)["exact_match"] == 100.0


def test_null_threshold():
    example = SquadExample("q1", "T", "q?", CONTEXT, (), True)
    windows = [window("q1", 0), window("q1", 1)]
    # Null scores 4 + 1 = 5 and 2 + 1 = 3: the null score is their minimum, 3.
    start_logits = np.stack([logits({0: 4.0, 5: 1.0}), logits({0: 2.0, 6: 1.5})])
    end_logits = np.stack([logits({0: 1.0, 5: 1.0}), logits({0: 1.0, 6: 1.0})])
    # Best span: window 1 (6, 6) = 2.5; difference 3 - 2.5 = 0.5.
    for threshold, expected in [(0.0, ""), (0.49, ""), (0.5, "c2"), (1.0, "c2")]:
        predictions, details = decode_predictions(
            [example], windows, start_logits, end_logits, version_2_with_negative=True,
            null_score_threshold=threshold,
        )
        assert predictions["q1"] == expected, threshold
    assert details["q1"]["null_score"] == pytest.approx(3.0)
    assert details["q1"]["score_difference"] == pytest.approx(0.5)
    assert details["q1"]["best_text"] == "c2"
    # Without v2.0 the span is always returned.
    predictions, _ = decode_predictions([example], windows, start_logits, end_logits)
    assert predictions["q1"] == "c2"


def test_questions_without_windows_and_mismatched_inputs():
    examples = [SquadExample("q1", "T", "q?", CONTEXT, (("c0", 0),), False)]
    no_logits = np.zeros((0, LENGTH))
    predictions, details = decode_predictions(examples, [], no_logits, no_logits)
    assert predictions == {"q1": ""} and details["q1"]["best_score"] == float("-inf")
    with pytest.raises(ValueError, match="logit rows"):
        decode_predictions(examples, [window("q1", 0)], np.zeros((2, LENGTH)), no_logits)
    with pytest.raises(ValueError, match="not among the examples"):
        one_row = np.zeros((1, LENGTH))
        decode_predictions(examples, [window("q9", 0)], one_row, one_row)


def test_round_trip_through_real_windows():
    """Windows from unicode contexts + one-hot logits at the targets decode to the gold answers."""
    tokenizer = WordPieceOffsetTokenizer(UNICODE_VOCABULARY)
    filler = " ".join(f"w{i}" for i in range(40))
    context = f"{filler}  Café au\n\nlait, 北京 😀 Foxe\u0301s! {filler}"
    examples = []
    for index, answer in enumerate(["Café au\n\nlait", "北京", "Foxe\u0301s", "w3 w4"]):
        start = context.index(answer)
        examples.append(SquadExample(f"q{index}", "T", "what?", context, ((answer, start),), False))
    windows = []
    for example in examples:
        windows.extend(make_windows(example, tokenizer, max_sequence_length=24, doc_stride=6))
    start_logits = np.zeros((len(windows), 24))
    end_logits = np.zeros((len(windows), 24))
    for row, item in enumerate(windows):
        if item.start_position > 0:
            start_logits[row, item.start_position] = 10.0
            end_logits[row, item.end_position] = 10.0
        else:
            start_logits[row, 0] = end_logits[row, 0] = 1.0
    predictions, _ = decode_predictions(
        examples, windows, start_logits, end_logits, max_answer_length=10
    )
    assert predictions == {example.question_id: example.answers[0][0] for example in examples}
    predictions, _ = decode_predictions(
        examples,
        windows,
        start_logits,
        end_logits,
        version_2_with_negative=True,
        use_max_context=True,
    )
    assert predictions == {example.question_id: example.answers[0][0] for example in examples}


# --- The graph decoder (tfmm.evaluation.span_decoding.decode_spans) on the same hand cases -------


def graph_decode(offsets_per_window, question_index, start_logits, end_logits, contexts, **kwargs):
    import tensorflow as tf

    from tfmm.evaluation.span_decoding import decode_spans

    offsets = np.stack(offsets_per_window)
    windows = {"token_starts": tf.constant(offsets[..., 0]), "token_ends":
               tf.constant(offsets[..., 1]), "question_index": tf.constant(question_index)}
    answers, scores = decode_spans(windows, tf.constant(np.stack(start_logits)),
                                   tf.constant(np.stack(end_logits)), tf.constant(contexts),
                                   **kwargs)
    return [answer.decode("utf-8") for answer in answers.numpy()], scores.numpy().tolist()


@pytest.mark.parametrize("start, end, max_answer_length, expected", [
    ({5: 3.0, 6: 1.0}, {7: 2.0, 8: 4.0}, 30, ("c1 c2 c3 c4", 7.0)),  # best legal span
    ({0: 9.0, 1: 9.0, 3: 9.0, 11: 9.0, 6: 1.0}, {0: 9.0, 2: 9.0, 3: 9.0, 11: 9.0, 7: 1.0}, 30,
     ("c2 c3", 2.0)),  # [CLS], question, [SEP] and padding never answer
    ({9: 5.0, 4: 1.0}, {5: 5.0, 9: 0.5}, 30, ("c0 c1", 6.0)),  # never ends before it starts
    ({4: 5.0}, {10: 5.0, 6: 1.0}, 3, ("c0 c1 c2", 6.0)),  # (4, 10) is too long
    ({4: 5.0}, {10: 5.0, 6: 1.0}, 7, ("c0 c1 c2 c3 c4 c5 c6", 10.0)),
    ({}, {}, 30, ("c0", 0.0)),  # all tied: the earliest start, then the shortest span
])
def test_graph_decoder_on_hand_logits(start, end, max_answer_length, expected):
    example = SquadExample("q1", "T", "q?", CONTEXT, (("c0", 0),), False)
    oracle, _ = decode_predictions([example], [window("q1", 0)], logits(start)[None],
                                   logits(end)[None], max_answer_length=max_answer_length)
    answers, scores = graph_decode([hand_offsets()], [0], [logits(start)], [logits(end)],
                                   [CONTEXT], max_answer_length=max_answer_length)
    assert (answers[0], scores[0]) == pytest.approx(expected)
    assert answers[0] == oracle["q1"]


def test_graph_decoder_across_windows_questions_and_null_threshold():
    long_context = CONTEXT + " c7 c8 c9"
    shifted = np.full((LENGTH, 2), -1, dtype=np.int32)
    for word, slot in enumerate(CONTEXT_SLOTS):
        shifted[slot] = (3 * (word + 3), 3 * (word + 3) + 2)
    # Question 0: two windows, the best span in the second; question 1: the null-score case.
    start_logits = [logits({5: 2.0}), logits({8: 3.0}), logits({0: 4.0, 5: 1.0}),
                    logits({0: 2.0, 6: 1.5})]
    end_logits = [logits({6: 2.0}), logits({9: 3.0}), logits({0: 1.0, 5: 1.0}),
                  logits({0: 1.0, 6: 1.0})]
    offsets = [hand_offsets(), shifted, hand_offsets(), hand_offsets()]
    answers, scores = graph_decode(offsets, [0, 0, 1, 1], start_logits, end_logits,
                                   [long_context, CONTEXT], max_answer_length=30)
    assert answers == ["c7 c8", "c2"] and scores == pytest.approx([6.0, 2.5])
    for threshold, expected, score in [(0.0, "", 3.0), (0.49, "", 3.0), (0.5, "c2", 2.5)]:
        answers, scores = graph_decode(offsets, [0, 0, 1, 1], start_logits, end_logits,
                                       [long_context, CONTEXT], max_answer_length=30,
                                       version_2_with_negative=True,
                                       null_score_threshold=threshold)
        assert answers[1] == expected and scores[1] == pytest.approx(score), threshold
    # A window with no context token (an empty context) answers "" with score -inf.
    no_context = np.full((LENGTH, 2), -1, dtype=np.int32)
    answers, scores = graph_decode([no_context], [0], [logits({})], [logits({})], [""],
                                   max_answer_length=30)
    assert answers == [""] and scores == [float("-inf")]
