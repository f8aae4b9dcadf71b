"""Answers from per-window start/end logits, in the graph (SQuAD decoding).

The one decoder of tfmm: `evaluate.py`'s SQuAD evaluation and the exported SavedModel's serving
signature both call `decode_spans`.

In each window every legal span (start, end) is scored `start_logit[start] + end_logit[end]`
(summed in float64); legal means both tokens are context tokens (so never `[CLS]`, question
tokens, `[SEP]` or padding), `start <= end` and `end - start + 1 <= max_answer_length`. A
question's answer is its best span over all its windows (ties: the earlier window, then the
earlier start, then the shorter span), cut from the original context with the tokens' character
offsets; "" with score -inf when no window holds a legal span (an empty context). For SQuAD v2.0
the null score is the minimum over the question's windows of `start_logit[0] + end_logit[0]` (the
`[CLS]` span), and the answer is "" with the null score when
`null_score - best_span_score > null_score_threshold`.

Example:
    windows = SpanPreprocessor(tokenizer)(questions, contexts)
    outputs = model({key: windows[key] for key in FEATURE_KEYS})
    answers, scores = decode_spans(windows, outputs["start_logits"], outputs["end_logits"],
                                   contexts, max_answer_length=30)
"""

import tensorflow as tf


def decode_spans(windows: dict, start_logits, end_logits, contexts, max_answer_length: int,
                 version_2_with_negative: bool = False, null_score_threshold: float = 0.0):
    """Each question's answer text and score from its windows' logits.

    Args:
        windows: at least {"token_starts", "token_ends": int [N, L] character offsets, -1 for
            non-context tokens; "question_index": int [N], each window's question in
            `contexts`}, as `tfmm.preprocessing.span_preprocessor.SpanPreprocessor` returns them;
            a question's windows are consecutive.
        start_logits, end_logits: float [N, L].
        contexts: tf.string [B], the original contexts.
        max_answer_length: longest answer in tokens (>= 1).
        version_2_with_negative: answer "" when null score - best span score > threshold.
        null_score_threshold: see above.

    Returns:
        (answer tf.string [B], score float64 [B]).
    """
    best = best_spans(windows, start_logits, end_logits, tf.shape(contexts, out_type=tf.int64)[0],
                      max_answer_length)
    token_starts = tf.cast(windows["token_starts"], tf.int64)
    token_ends = tf.cast(windows["token_ends"], tf.int64)
    score = best["score"]
    start_character = tf.gather_nd(token_starts, tf.stack([best["window"], best["start"]], -1))
    end_character = tf.gather_nd(token_ends, tf.stack([best["window"], best["end"]], -1))
    has_span = tf.math.is_finite(score)
    start_character = tf.where(has_span, start_character, 0)
    end_character = tf.where(has_span, end_character, 0)
    answer = tf.strings.substr(contexts, tf.cast(start_character, tf.int32),
                               tf.cast(end_character - start_character, tf.int32),
                               unit="UTF8_CHAR")
    if version_2_with_negative:
        null_score = best["null_score"]
        no_answer = (null_score - score) > null_score_threshold
        answer = tf.where(no_answer, tf.constant(""), answer)
        score = tf.where(no_answer, null_score, score)
    return answer, score


def best_spans(windows: dict, start_logits, end_logits, num_questions, max_answer_length: int):
    """Each question's best legal span over its windows, as token positions (the rules above).

    Args:
        windows: at least {"token_starts", "token_ends": int [N, L], "question_index": int [N]}.
        start_logits, end_logits: float [N, L].
        num_questions: B, the number of questions the windows belong to.
        max_answer_length: longest answer in tokens (>= 1).

    Returns:
        {"window": int64 [B] (the window, an index into N), "start", "end": int64 [B] (token
        positions in that window), "score": float64 [B] (-inf when no window holds a legal
        span; then window/start/end are 0), "null_score": float64 [B] (min over the question's
        windows of the [CLS] span's score)}.
    """
    start_logits = tf.cast(start_logits, tf.float64)
    end_logits = tf.cast(end_logits, tf.float64)
    is_context = tf.cast(windows["token_starts"], tf.int64) >= 0
    negative_infinity = tf.constant(float("-inf"), tf.float64)
    # Scores of the spans (start, start + d), d < max_answer_length: [N, L, A]. Ends outside the
    # context (and past the window) are -inf, so only legal spans are finite.
    end_frames = tf.signal.frame(tf.where(is_context, end_logits, negative_infinity),
                                 max_answer_length, 1, pad_end=True, pad_value=float("-inf"))
    scores = tf.where(is_context[:, :, None], start_logits[:, :, None] + end_frames,
                      negative_infinity)
    flat_scores = tf.reshape(scores, [tf.shape(scores)[0], -1])
    best_flat = tf.argmax(flat_scores, axis=-1, output_type=tf.int64)  # the first maximum
    window_scores = tf.reduce_max(flat_scores, axis=-1)
    best_start = best_flat // max_answer_length
    best_end = best_start + best_flat % max_answer_length

    question_index = tf.cast(windows["question_index"], tf.int64)
    by_question = tf.RaggedTensor.from_value_rowids(window_scores, question_index,
                                                    nrows=num_questions)
    best_window_in_question = tf.argmax(by_question.to_tensor(default_value=float("-inf")),
                                        axis=-1, output_type=tf.int64)
    # A question without windows (never made by SpanPreprocessor) reads row 0 and gets no span.
    has_windows = by_question.row_lengths() > 0
    best_window = tf.where(has_windows, by_question.row_starts() + best_window_in_question, 0)
    score = tf.where(has_windows, tf.gather(window_scores, best_window), negative_infinity)
    has_span = tf.math.is_finite(score)
    null_scores = tf.RaggedTensor.from_value_rowids(
        start_logits[:, 0] + end_logits[:, 0], question_index, nrows=num_questions)
    return {"window": tf.where(has_span, best_window, 0),
            "start": tf.where(has_span, tf.gather(best_start, best_window), 0),
            "end": tf.where(has_span, tf.gather(best_end, best_window), 0),
            "score": score, "null_score": tf.reduce_min(null_scores, axis=-1)}
