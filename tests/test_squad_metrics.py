"""Tests for tfmm.evaluation.squad_metrics and the overlap baseline, on hand-worked examples."""

import json
import logging

import pytest
from helpers.tiny_squad import xquad_path

from tfmm.data.squad import SquadExample, load_squad_file
from tfmm.evaluation.overlap_baseline import (
    best_overlap_sentence,
    content_words,
    evaluate_overlap_baseline,
    overlap_baseline_predictions,
    split_sentences,
)
from tfmm.evaluation.squad_metrics import (
    evaluate_predictions,
    exact_match_score,
    f1_score,
    find_best_null_threshold,
    gold_answer_texts,
    max_over_gold_answers,
    normalize_answer,
    write_predictions,
)


def example(question_id, answers, impossible=False, context="unused"):
    answer_pairs = tuple((text, 0) for text in answers)
    return SquadExample(question_id, "T", "q?", context, answer_pairs, impossible)


def test_normalize_answer():
    assert normalize_answer("The  Denver Broncos!") == "denver broncos"
    assert normalize_answer("an apple a day") == "apple day"
    assert normalize_answer("Theatre, the-ater") == "theatre theater"  # only whole-word articles
    assert normalize_answer("  \tA\n") == ""
    assert normalize_answer("Café «1.5%»") == "café «15»"  # only ASCII punctuation is removed


def test_exact_match():
    assert exact_match_score("the Denver Broncos", "Denver Broncos") == 1.0
    assert exact_match_score("Denver Broncos.", "denver broncos") == 1.0
    assert exact_match_score("Broncos", "Denver Broncos") == 0.0
    assert exact_match_score("", "") == 1.0


def test_f1_partial_overlaps_by_hand():
    # 2 shared of 3 predicted and 2 gold tokens: P = 2/3, R = 1, F1 = 0.8.
    assert f1_score("Denver Broncos team", "Denver Broncos") == pytest.approx(0.8)
    # 2 shared of 5 predicted ("and" counts, "the" does not): P = 0.4, R = 1, F1 = 4/7.
    assert f1_score(
        "the Carolina Panthers and Denver Broncos", "the Denver Broncos"
    ) == pytest.approx(4 / 7)
    # Multiset overlap: "x y y" vs "y y z" share two "y": P = R = 2/3.
    assert f1_score("x y y", "y y z") == pytest.approx(2 / 3)
    # "y" once vs "y y": P = 1, R = 1/2, F1 = 2/3.
    assert f1_score("y", "y y") == pytest.approx(2 / 3)
    assert f1_score("Panthers", "Denver Broncos") == 0.0
    assert f1_score("The Denver Broncos", "denver broncos") == 1.0


def test_f1_empty_answers_follow_v2():
    assert f1_score("", "") == 1.0
    assert f1_score("the", "") == 1.0  # both normalise to nothing
    assert f1_score("", "Denver") == 0.0
    assert f1_score("Denver", "") == 0.0


def test_max_over_gold_answers_and_gold_texts():
    golds = ["Denver Broncos", "the Broncos", "Broncos"]
    assert max_over_gold_answers(exact_match_score, "Broncos", golds) == 1.0
    assert max_over_gold_answers(f1_score, "Denver", golds) == pytest.approx(2 / 3)
    assert gold_answer_texts(example("a", ["The", "Broncos"])) == ["Broncos"]
    assert gold_answer_texts(example("b", [], impossible=True)) == [""]


def test_evaluate_predictions_by_hand():
    examples = [
        example("q1", ["Denver Broncos", "The Denver Broncos"]),
        example("q2", ["Santa Clara, California"]),
        example("q3", ["24–10"]),
    ]
    predictions = {
        "q1": "the Denver Broncos",  # EM 1, F1 1
        "q2": "Santa Clara",  # EM 0, F1: P = 1, R = 2/3 -> 0.8
        "q3": "February 7",  # EM 0, F1 0
    }
    scores = evaluate_predictions(examples, predictions)
    assert scores["total"] == 3
    assert scores["exact_match"] == pytest.approx(100 / 3)
    assert scores["f1"] == pytest.approx(100 * 1.8 / 3)
    assert set(scores) == {"exact_match", "f1", "total"}


def test_missing_predictions_score_zero(caplog):
    examples = [example("q1", ["Denver"]), example("q2", ["Carolina"])]
    with caplog.at_level(logging.WARNING):
        scores = evaluate_predictions(examples, {"q1": "Denver"})
    assert scores["exact_match"] == pytest.approx(50.0) and scores["total"] == 2
    assert "1 of 2 questions have no prediction" in caplog.text
    with pytest.raises(ValueError, match="no prediction"):
        evaluate_predictions(examples, {"q1": "Denver"}, strict=True)
    with pytest.raises(ValueError, match="repeat"):
        evaluate_predictions(examples + examples[:1], {"q1": "x", "q2": "y"})


def test_v2_breakdown():
    examples = [
        example("has1", ["Denver Broncos"]),
        example("has2", ["Carolina Panthers"]),
        example("no1", [], impossible=True),
        example("no2", [], impossible=True),
        example("no3", [], impossible=True),
    ]
    predictions = {
        "has1": "Denver Broncos",  # 1 / 1
        "has2": "",  # 0 / 0
        "no1": "",  # 1 / 1
        "no2": "Denver",  # 0 / 0
        "no3": "",  # 1 / 1
    }
    scores = evaluate_predictions(examples, predictions)
    assert scores["total"] == 5
    assert scores["exact_match"] == pytest.approx(60.0) and scores["f1"] == pytest.approx(60.0)
    assert scores["HasAns_total"] == 2 and scores["NoAns_total"] == 3
    assert scores["HasAns_exact"] == pytest.approx(50.0)
    assert scores["HasAns_f1"] == pytest.approx(50.0)
    assert scores["NoAns_exact"] == pytest.approx(200 / 3)
    assert scores["NoAns_f1"] == pytest.approx(200 / 3)


def test_find_best_null_threshold():
    examples = [
        example("has1", ["Denver"]),
        example("has2", ["Carolina"]),
        example("no1", [], impossible=True),
    ]
    decoded = {
        "has1": {"best_text": "Denver", "score_difference": -2.0},
        "has2": {"best_text": "Carolina", "score_difference": 1.0},
        "no1": {"best_text": "Denver", "score_difference": 3.0},
    }
    # Threshold 1.0: has1 and has2 answer, no1 abstains -> all three right.
    threshold, best = find_best_null_threshold(examples, decoded)
    assert threshold == pytest.approx(1.0) and best == pytest.approx(100.0)
    decoded["no1"]["score_difference"] = 0.0  # now no1 cannot be separated from has2
    threshold, best = find_best_null_threshold(examples, decoded, metric="exact_match")
    assert best == pytest.approx(200 / 3)
    with pytest.raises(ValueError):
        find_best_null_threshold(examples, decoded, metric="bleu")


def test_write_predictions_official_format(tmp_path):
    path = tmp_path / "out" / "predictions.json"
    predictions = {"q2": "北京", "q1": ""}
    write_predictions(str(path), predictions)
    with open(path, encoding="utf-8") as file:
        assert json.load(file) == predictions


# --- Overlap baseline ----------------------------------------------------------------------------


def test_split_sentences():
    text = "The U.S. Army won. It was in 1990! Was it?  \"Yes.\" Then J. Smith left\nfor 3.5 days"
    sentences = [text[start:end] for start, end in split_sentences(text)]
    assert sentences == [
        "The U.S. Army won.",
        "It was in 1990!",
        "Was it?",
        '"Yes."',
        "Then J. Smith left\nfor 3.5 days",
    ]
    assert split_sentences("   ") == []


def test_best_overlap_sentence():
    context = (
        "Super Bowl 50 was an American football game. The Denver Broncos defeated the Carolina "
        "Panthers 24–10. The game was played at Levi's Stadium."
    )
    assert content_words("Which team did the Broncos defeat?") == {"team", "broncos", "defeat"}
    assert best_overlap_sentence("Which team did the Broncos defeat?", context) == (
        "The Denver Broncos defeated the Carolina Panthers 24–10."
    )
    assert best_overlap_sentence("Where was the game played?", context) == (
        "The game was played at Levi's Stadium."
    )
    # No overlap: the first sentence.
    assert best_overlap_sentence("Zebra?", context).startswith("Super Bowl 50")
    answer_start = context.index("Levi's Stadium")
    question = "Where was the game played?"
    answers = (("Levi's Stadium", answer_start),)
    examples = [SquadExample("q1", "T", question, context, answers, False)]
    predictions = overlap_baseline_predictions(examples)
    scores = evaluate_overlap_baseline(examples)
    # Normalised prediction "game was played at levis stadium" (6 tokens) vs gold "levis stadium"
    # (2): P = 1/3, R = 1, F1 = 0.5.
    assert predictions["q1"] == "The game was played at Levi's Stadium."
    assert scores["exact_match"] == 0.0 and scores["f1"] == pytest.approx(50.0)


def test_overlap_baseline_on_real_xquad():
    examples = load_squad_file(xquad_path())
    scores = evaluate_overlap_baseline(examples)
    assert scores["total"] == 816
    # A whole sentence is far longer than a SQuAD answer: no exact matches, a low F1 floor.
    assert scores["exact_match"] < 2.0
    assert 10.0 < scores["f1"] < 25.0
