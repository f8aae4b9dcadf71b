"""Test oracle (pure Python): per-window start/end logits -> answer texts (SQuAD decoding).

The graph decoder in tfmm (`tfmm.evaluation.span_decoding.decode_spans`) is what evaluation and
serving use; this Python version (with n-best lists and the max-context rule) is kept only to test
it against and as the old path in bench/qa_evaluation.py.

For each window, every legal span (start, end) is scored `start_logit[start] + end_logit[end]`;
legal means both tokens are context tokens (offset >= 0, so never `[CLS]`, question tokens,
`[SEP]` or padding), `end >= start` and `end - start + 1 <= max_answer_length`. A question's
answer is its best span over all its windows, sliced from the original context with the tokens'
character offsets. For SQuAD v2.0 the null score is the minimum over the question's windows of
`start_logit[0] + end_logit[0]` (the `[CLS]` span), and the prediction is "" when
`null_score - best_span_score > null_score_threshold`.

Example:
    predictions, details = decode_predictions(examples, windows, start_logits, end_logits)
    evaluate_predictions(examples, predictions)
"""

import collections
import dataclasses
from typing import Mapping, Optional, Sequence

import numpy as np


@dataclasses.dataclass
class SpanCandidate:
    """One candidate answer span.

    Attributes:
        score: start_logit + end_logit.
        start_logit: logit of the start token.
        end_logit: logit of the end token.
        window_index: index of the window (in the question's list of windows).
        start_index: start token index in the window.
        end_index: end token index in the window (inclusive).
        char_start: character start in the context.
        char_end: character end (exclusive) in the context.
        text: context[char_start:char_end].
    """

    score: float
    start_logit: float
    end_logit: float
    window_index: int
    start_index: int
    end_index: int
    char_start: int
    char_end: int
    text: str = ""


def window_span_candidates(
    start_logits: np.ndarray,
    end_logits: np.ndarray,
    token_char_offsets: np.ndarray,
    n_best_size: int = 20,
    max_answer_length: int = 30,
    token_is_max_context: Optional[np.ndarray] = None,
) -> list:
    """The n best legal spans of one window, best first.

    Args:
        start_logits: [L] start logits.
        end_logits: [L] end logits.
        token_char_offsets: [L, 2] character offsets; -1 marks non-context tokens.
        n_best_size: how many spans to return at most.
        max_answer_length: longest span in tokens.
        token_is_max_context: optional [L] bool; when given, spans must start at a token whose
            maximum context is in this window (the original BERT rule).

    Returns:
        `SpanCandidate`s (window_index 0 and empty text; `decode_predictions` fills them in),
        sorted by decreasing score; ties keep the earlier, shorter span first.
    """
    start_logits = np.asarray(start_logits, dtype=np.float64).reshape(-1)
    end_logits = np.asarray(end_logits, dtype=np.float64).reshape(-1)
    offsets = np.asarray(token_char_offsets).reshape(-1, 2)
    length = len(start_logits)
    if len(end_logits) != length or len(offsets) != length:
        raise ValueError(
            f"start_logits ({len(start_logits)}), end_logits ({len(end_logits)}) and "
            f"token_char_offsets ({len(offsets)}) must have the same length."
        )
    if n_best_size < 1 or max_answer_length < 1:
        return []
    is_context = offsets[:, 0] >= 0
    can_start = is_context.copy()
    if token_is_max_context is not None:
        can_start &= np.asarray(token_is_max_context, dtype=bool).reshape(-1)
    span_lengths = min(max_answer_length, length)
    # scores[start, delta] for the span (start, start + delta).
    starts = np.arange(length)[:, None]
    ends = starts + np.arange(span_lengths)[None, :]
    inside = ends < length
    clipped_ends = np.minimum(ends, length - 1)
    legal = inside & can_start[:, None] & is_context[clipped_ends]
    scores = np.where(legal, start_logits[:, None] + end_logits[clipped_ends], -np.inf)
    flat = scores.reshape(-1)
    legal_count = int(legal.sum())
    if legal_count == 0:
        return []
    take = min(n_best_size, legal_count)
    # The `take` best, ordered by score descending, then start, then length.
    top = np.argpartition(-flat, take - 1)[:take]
    order = top[np.lexsort((top, -flat[top]))]
    candidates = []
    for flat_index in order:
        start_index, delta = divmod(int(flat_index), span_lengths)
        end_index = start_index + delta
        candidates.append(
            SpanCandidate(
                score=float(flat[flat_index]),
                start_logit=float(start_logits[start_index]),
                end_logit=float(end_logits[end_index]),
                window_index=0,
                start_index=start_index,
                end_index=end_index,
                char_start=int(offsets[start_index, 0]),
                char_end=int(offsets[end_index, 1]),
            )
        )
    return candidates


def decode_predictions(
    examples: Sequence,
    windows: Sequence,
    start_logits: np.ndarray,
    end_logits: np.ndarray,
    n_best_size: int = 20,
    max_answer_length: int = 30,
    version_2_with_negative: bool = False,
    null_score_threshold: float = 0.0,
    use_max_context: bool = False,
) -> tuple:
    """Chooses each question's answer from its windows' logits.

    Args:
        examples: `SquadExample`s (question_id, context).
        windows: the `SpanWindow`s the logits belong to, in the same order as the logit rows.
        start_logits: [number of windows, L] start logits.
        end_logits: [number of windows, L] end logits.
        n_best_size: candidates kept per window and per question.
        max_answer_length: longest answer in tokens.
        version_2_with_negative: allow the "" (no answer) prediction (SQuAD v2.0).
        null_score_threshold: predict "" when null score - best span score exceeds this.
        use_max_context: only let spans start at tokens whose maximum context is in that window
            (the original BERT decoder's rule; needs `token_is_max_context` on the windows).

    Returns:
        (predictions {question id: answer text}, details {question id: {"best_text",
        "best_score", "null_score", "score_difference", "n_best": [SpanCandidate, ...]}}). The
        best score is -inf and best text "" when no window has a legal span; null score and score
        difference are None unless version_2_with_negative.

    Raises:
        ValueError: if the logits do not match the windows, or a window's question is unknown.
    """
    start_logits = np.asarray(start_logits)
    end_logits = np.asarray(end_logits)
    if len(start_logits) != len(windows) or len(end_logits) != len(windows):
        raise ValueError(
            f"Got {len(windows)} windows but {len(start_logits)} start and {len(end_logits)} end "
            "logit rows."
        )
    windows_by_question = collections.defaultdict(list)
    for row, window in enumerate(windows):
        windows_by_question[window.question_id].append(row)
    known_ids = {example.question_id for example in examples}
    unknown = [qid for qid in windows_by_question if qid not in known_ids]
    if unknown:
        raise ValueError(f"Windows belong to questions not among the examples, e.g. {unknown[0]}.")

    predictions = {}
    details = {}
    for example in examples:
        rows = windows_by_question.get(example.question_id, [])
        candidates = []
        null_score = None
        for row in rows:
            window = windows[row]
            max_context = window.token_is_max_context if use_max_context else None
            for candidate in window_span_candidates(
                start_logits[row],
                end_logits[row],
                window.token_char_offsets,
                n_best_size=n_best_size,
                max_answer_length=max_answer_length,
                token_is_max_context=max_context,
            ):
                candidate.window_index = window.window_index
                candidate.text = example.context[candidate.char_start : candidate.char_end]
                candidates.append(candidate)
            window_null = float(start_logits[row][0]) + float(end_logits[row][0])
            null_score = window_null if null_score is None else min(null_score, window_null)
        candidates.sort(key=lambda candidate: -candidate.score)
        candidates = candidates[:n_best_size]
        best_text = candidates[0].text if candidates else ""
        best_score = candidates[0].score if candidates else float("-inf")
        prediction = best_text
        score_difference = None
        if not version_2_with_negative:
            null_score = None
        elif null_score is not None:
            score_difference = null_score - best_score
            if score_difference > null_score_threshold:
                prediction = ""
        else:
            prediction = ""
        predictions[example.question_id] = prediction
        details[example.question_id] = {
            "best_text": best_text,
            "best_score": best_score,
            "null_score": null_score,
            "score_difference": score_difference,
            "n_best": candidates,
        }
    return predictions, details


def candidates_to_json(details: Mapping) -> dict:
    """Makes `decode_predictions` details JSON-serialisable (n-best as lists of dictionaries)."""
    output = {}
    for question_id, entry in details.items():
        converted = dict(entry)
        converted["n_best"] = [dataclasses.asdict(candidate) for candidate in entry["n_best"]]
        if converted["best_score"] == float("-inf"):
            converted["best_score"] = None
        output[question_id] = converted
    return output
