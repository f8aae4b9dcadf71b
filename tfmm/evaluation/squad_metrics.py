"""SQuAD exact match and token F1, following the official v1.1 / v2.0 evaluation definitions.

- Normalisation: lower-case, drop ASCII punctuation (`string.punctuation`), replace the articles
  "a", "an", "the" (whole words) by spaces, collapse whitespace.
- Exact match: the normalised prediction equals a normalised gold answer.
- F1: the harmonic mean of token precision and recall between the normalised token bags
  (multiset overlap); when the prediction or the gold is empty after normalisation the score is 1
  if both are empty and 0 otherwise (the v2.0 rule, so that "" is right for no-answer questions).
- Each question scores the maximum over its gold answers; gold answers that normalise to "" are
  ignored, and a question with none left (an impossible question) has the single gold answer "".
- Scores are averaged over all questions and reported on a 0-100 scale; a question without a
  prediction scores 0 (the v1.1 script's rule). When some questions are impossible, the v2.0
  breakdown `HasAns_*` / `NoAns_*` is added.

Example:
    scores = evaluate_predictions(examples, {"56be4db0acb8001400a502ec": "Denver Broncos"})
    scores["exact_match"], scores["f1"], scores["total"]
"""

import collections
import json
import logging
import re
import string
from typing import Callable, Mapping, Sequence

import tensorflow as tf

logger = logging.getLogger(__name__)

_PUNCTUATION = frozenset(string.punctuation)
_ARTICLES = re.compile(r"\b(a|an|the)\b", re.UNICODE)


def normalize_answer(text: str) -> str:
    """Official SQuAD answer normalisation.

    Args:
        text: an answer.

    Returns:
        Lower-cased text without punctuation and articles, whitespace collapsed.
    """
    lowered = text.lower()
    without_punctuation = "".join(c for c in lowered if c not in _PUNCTUATION)
    without_articles = _ARTICLES.sub(" ", without_punctuation)
    return " ".join(without_articles.split())


def answer_tokens(text: str) -> list:
    """The normalised tokens of an answer ([] for an empty one)."""
    if not text:
        return []
    return normalize_answer(text).split()


def exact_match_score(prediction: str, gold: str) -> float:
    """1.0 when prediction and gold normalise to the same string, else 0.0."""
    return float(normalize_answer(prediction) == normalize_answer(gold))


def f1_score(prediction: str, gold: str) -> float:
    """Token F1 between normalised prediction and gold (v2.0 handling of empty answers).

    Args:
        prediction: predicted answer text.
        gold: gold answer text.

    Returns:
        F1 in [0, 1].
    """
    prediction_tokens = answer_tokens(prediction)
    gold_tokens = answer_tokens(gold)
    if not prediction_tokens or not gold_tokens:
        return float(prediction_tokens == gold_tokens)
    common = collections.Counter(prediction_tokens) & collections.Counter(gold_tokens)
    overlap = sum(common.values())
    if overlap == 0:
        return 0.0
    precision = overlap / len(prediction_tokens)
    recall = overlap / len(gold_tokens)
    return 2.0 * precision * recall / (precision + recall)


def max_over_gold_answers(
    metric: Callable[[str, str], float], prediction: str, gold_answers: Sequence[str]
) -> float:
    """The best score of `prediction` against any gold answer."""
    return max(metric(prediction, gold) for gold in gold_answers)


def gold_answer_texts(example) -> list:
    """Gold answers of an example as scored: those not normalising to "", else [""]."""
    golds = [text for text, _ in example.answers if normalize_answer(text)]
    return golds or [""]


def score_predictions(examples: Sequence, predictions: Mapping[str, str]) -> dict:
    """Per-question exact match and F1 (each in [0, 1]).

    Args:
        examples: `SquadExample`s (question_id, answers, is_impossible).
        predictions: {question id: predicted text}; missing questions score 0.

    Returns:
        {question id: (exact match, f1)}.
    """
    scores = {}
    for example in examples:
        if example.question_id not in predictions:
            scores[example.question_id] = (0.0, 0.0)
            continue
        prediction = predictions[example.question_id]
        golds = gold_answer_texts(example)
        scores[example.question_id] = (
            max_over_gold_answers(exact_match_score, prediction, golds),
            max_over_gold_answers(f1_score, prediction, golds),
        )
    return scores


def evaluate_predictions(
    examples: Sequence, predictions: Mapping[str, str], strict: bool = False
) -> dict:
    """Exact match and F1 over a set of questions, on a 0-100 scale.

    Args:
        examples: `SquadExample`s; each question id once.
        predictions: {question id: predicted answer text}; "" predicts "no answer".
        strict: raise if a question has no prediction (otherwise it scores 0, with a warning).

    Returns:
        {"exact_match", "f1", "total"}, plus, when some questions are impossible,
        "HasAns_exact", "HasAns_f1", "HasAns_total", "NoAns_exact", "NoAns_f1", "NoAns_total".
        Averages of an empty group are 0.

    Raises:
        ValueError: if `strict` and predictions are missing, or question ids repeat.
    """
    question_ids = [example.question_id for example in examples]
    if len(set(question_ids)) != len(question_ids):
        raise ValueError("Question ids repeat among the examples.")
    missing = [qid for qid in question_ids if qid not in predictions]
    if missing:
        message = (
            f"{len(missing)} of {len(question_ids)} questions have no prediction "
            f"(e.g. {missing[0]})"
        )
        if strict:
            raise ValueError(message)
        logger.warning("%s; they score 0.", message)
    scores = score_predictions(examples, predictions)

    def averages(ids: list) -> tuple:
        if not ids:
            return 0.0, 0.0
        exact = 100.0 * sum(scores[qid][0] for qid in ids) / len(ids)
        f1 = 100.0 * sum(scores[qid][1] for qid in ids) / len(ids)
        return exact, f1

    exact, f1 = averages(question_ids)
    result = {"exact_match": exact, "f1": f1, "total": len(question_ids)}
    no_answer_ids = [example.question_id for example in examples if example.is_impossible]
    if no_answer_ids:
        has_answer_ids = [example.question_id for example in examples if not example.is_impossible]
        has_exact, has_f1 = averages(has_answer_ids)
        no_exact, no_f1 = averages(no_answer_ids)
        result.update(
            {
                "HasAns_exact": has_exact,
                "HasAns_f1": has_f1,
                "HasAns_total": len(has_answer_ids),
                "NoAns_exact": no_exact,
                "NoAns_f1": no_f1,
                "NoAns_total": len(no_answer_ids),
            }
        )
    return result


def find_best_null_threshold(examples: Sequence, decoded: Mapping, metric: str = "f1") -> tuple:
    """Chooses the no-answer threshold that maximises a metric (SQuAD v2.0 tuning).

    For each question, `decoded[qid]` needs "best_text" (the best non-null span) and
    "score_difference" (null score minus best span score); with threshold t the prediction is
    "" when score_difference > t. Candidate thresholds are the observed differences.

    Args:
        examples: the `SquadExample`s.
        decoded: {question id: {"best_text": str, "score_difference": float}}, e.g. from the
            test oracle's `decode_predictions` details (tfmm's evaluation does not tune the
            threshold yet: `qa.null_score_threshold` is set in the config).
        metric: "f1" or "exact_match".

    Returns:
        (best threshold, the metric on a 0-100 scale at that threshold).

    Raises:
        ValueError: for an unknown metric.
    """
    if metric not in ("f1", "exact_match"):
        raise ValueError(f"metric must be 'f1' or 'exact_match', got {metric!r}.")
    metric_function = f1_score if metric == "f1" else exact_match_score
    rows = []
    for example in examples:
        entry = decoded.get(example.question_id)
        if entry is None:
            continue
        golds = gold_answer_texts(example)
        span_score = max_over_gold_answers(metric_function, entry["best_text"], golds)
        null_score = max_over_gold_answers(metric_function, "", golds)
        difference = entry["score_difference"]
        difference = float("inf") if difference is None else float(difference)
        rows.append((difference, span_score, null_score))
    if not rows:
        return 0.0, 0.0
    # Threshold below every difference: predict "" everywhere; raising it past a difference turns
    # that question (in increasing order) into a span prediction.
    rows.sort(key=lambda row: row[0])
    current = sum(row[2] for row in rows)
    best_total = current
    best_threshold = rows[0][0] - 1.0
    for index, (difference, span_score, null_score) in enumerate(rows):
        current += span_score - null_score
        is_last_of_tie = index + 1 == len(rows) or rows[index + 1][0] > difference
        if is_last_of_tie and current > best_total:
            best_total = current
            best_threshold = difference
    return best_threshold, 100.0 * best_total / len(examples)


def write_predictions(path: str, predictions: Mapping[str, str]) -> None:
    """Writes predictions in the official format, a JSON object {question id: answer text}.

    Args:
        path: output file (any `tf.io.gfile` path); parent folders are created.
        predictions: {question id: answer}; "" for no answer.
    """
    parent = path.rsplit("/", 1)[0] if "/" in path else ""
    if parent and not tf.io.gfile.exists(parent):
        tf.io.gfile.makedirs(parent)
    from tfmm.atomic_write import write_bytes

    text = json.dumps(dict(predictions), ensure_ascii=False, indent=2, sort_keys=True) + "\n"
    write_bytes(path, text.encode("utf-8"))
