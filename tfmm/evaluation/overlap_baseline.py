"""A no-learning SQuAD baseline: answer with the context sentence that shares most question words.

Questions and sentences are tokenised with the SQuAD answer normalisation (lower-case, no
punctuation, no articles); stop words are ignored. The sentence with the most distinct question
words wins (the earliest on ties). A whole sentence is much longer than a SQuAD answer, so exact
match is near 0 and F1 low: the numbers are a floor that a trained model must clear.

Example:
    predictions = overlap_baseline_predictions(examples)
    evaluate_predictions(examples, predictions)
"""

import re
from typing import Sequence

from tfmm.evaluation.squad_metrics import evaluate_predictions, normalize_answer

STOP_WORDS = frozenset(
    """
    a about above after again against all also am an and any are as at be because been before
    being below between both but by can could did do does doing down during each few for from
    further had has have having he her here hers herself him himself his how i if in into is it
    its itself just me more most my myself no nor not now of off on once only or other our ours
    ourselves out over own same she should so some such than that the their theirs them
    themselves then there these they this those through to too under until up very was we were
    what when where which while who whom whose why will with would you your yours yourself
    yourselves s t many much one
    """.split()
)

# A sentence ends at . ! or ? (plus closing quotes/brackets) followed by whitespace, unless the
# period follows a single capital letter ("U.S. Army", "J. Smith").
_SENTENCE_END = re.compile(r"(?<![\s.][A-Z]\.)(?<=[.!?])[\"'\u201d\u2019)\]]*\s+")


def split_sentences(text: str) -> list:
    """Splits text into sentences with their character spans.

    Args:
        text: the context.

    Returns:
        A list of (char_start, char_end) spans of non-empty sentences, whitespace trimmed.
    """
    spans = []
    start = 0
    for match in _SENTENCE_END.finditer(text):
        end = match.start() + len(match.group().rstrip())
        spans.append((start, end))
        start = match.end()
    spans.append((start, len(text)))
    trimmed = []
    for begin, end in spans:
        segment = text[begin:end]
        left = len(segment) - len(segment.lstrip())
        right = len(segment.rstrip())
        if right > left:
            trimmed.append((begin + left, begin + right))
    return trimmed


def content_words(text: str) -> set:
    """Distinct normalised words of `text` that are not stop words."""
    return {word for word in normalize_answer(text).split() if word not in STOP_WORDS}


def best_overlap_sentence(question: str, context: str) -> str:
    """The context sentence sharing the most content words with the question.

    Args:
        question: the question.
        context: the paragraph.

    Returns:
        The sentence text (earliest on ties; the first sentence when nothing overlaps; "" for an
        empty context).
    """
    question_words = content_words(question)
    best_span = None
    best_overlap = -1
    for start, end in split_sentences(context):
        overlap = len(question_words & content_words(context[start:end]))
        if overlap > best_overlap:
            best_overlap = overlap
            best_span = (start, end)
    if best_span is None:
        return ""
    return context[best_span[0] : best_span[1]]


def overlap_baseline_predictions(examples: Sequence) -> dict:
    """Baseline predictions {question id: sentence} for SQuAD examples."""
    return {
        example.question_id: best_overlap_sentence(example.question, example.context)
        for example in examples
    }


def evaluate_overlap_baseline(examples: Sequence) -> dict:
    """Runs the baseline and scores it with the SQuAD metric (see `evaluate_predictions`)."""
    return evaluate_predictions(examples, overlap_baseline_predictions(examples))
