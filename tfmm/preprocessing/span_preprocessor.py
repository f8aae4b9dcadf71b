"""Question-answering windows in the graph: questions and contexts -> BERT windows and targets.

The one windowing path of tfmm: `tfmm.data.span_pipeline` maps it over tf.data for training and
evaluation, and the exported SavedModel runs it in its serving signature. It follows the original
BERT SQuAD scheme:

    [CLS] question [SEP] context window [SEP] pad      (L = max_sequence_length tokens)

The question is cut to `max_query_length` tokens; the context is covered by windows of
`L - len(question) - 3` tokens that start every `doc_stride` tokens (or every window length, if
shorter) until one reaches the end, so a long context gets several windows. A question's windows
follow each other; all windows of a batch of questions form one window batch [N, L] (N varies,
L is static).

Training targets: the first and last context tokens that overlap the answer's characters
[answer_start, answer_end) when both lie in the window, else 0 (`[CLS]`, the "not in this window"
target, also used for unanswerable questions).

Example:
    preprocessor = SpanPreprocessor(load_bert_tokenizer("minilm"), max_sequence_length=384)
    windows = preprocessor(tf.constant(["Who wrote it?"]), tf.constant(["Ada wrote it."]))
    windows["token_ids"]  # int32 [N, 384]
"""

import tensorflow as tf

from tfmm.preprocessing.span_tokenizer import GraphWordPieceTokenizer

FEATURE_KEYS = ("token_ids", "segment_ids", "padding_mask")
TARGET_KEYS = ("start_positions", "end_positions")
# Per window, what decoding needs besides the logits.
DECODING_KEYS = ("token_starts", "token_ends", "question_index")


class SpanPreprocessor:
    """Tokenises, windows and (optionally) targets question-answering examples in TensorFlow ops.

    Args:
        tokenizer: a `GraphWordPieceTokenizer`, or what it is built from (a keras-hub
            BertTokenizer, a vocabulary list or `vocab.txt` path).
        max_sequence_length: tokens per window L, special tokens and padding included.
        doc_stride: distance in tokens between the starts of consecutive context windows.
        max_query_length: the question is cut to this many tokens.

    Raises:
        ValueError: if the sizes leave no room for context tokens.
    """

    def __init__(self, tokenizer, max_sequence_length: int = 384, doc_stride: int = 128,
                 max_query_length: int = 64):
        if doc_stride < 1 or max_query_length < 1:
            raise ValueError(f"doc_stride and max_query_length must be positive; received "
                             f"doc_stride={doc_stride}, max_query_length={max_query_length}.")
        if max_sequence_length - max_query_length - 3 < 1:
            raise ValueError(
                f"max_sequence_length={max_sequence_length} leaves no room for context after a "
                f"question of max_query_length={max_query_length} tokens (needs at least "
                f"max_query_length + 4).")
        if not isinstance(tokenizer, GraphWordPieceTokenizer):
            tokenizer = GraphWordPieceTokenizer(tokenizer)
        self.tokenizer = tokenizer
        self.max_sequence_length = int(max_sequence_length)
        self.doc_stride = int(doc_stride)
        self.max_query_length = int(max_query_length)
        self._traced = None

    @property
    def traced(self):
        """`__call__` with answers as a `tf.function` traced once (tracing takes seconds), to map
        over tf.data batches of (question, context, answer_start, answer_end) again and again."""
        if self._traced is None:
            strings, integers = tf.TensorSpec([None], tf.string), tf.TensorSpec([None], tf.int64)
            self._traced = tf.function(self.__call__, autograph=False,
                                       input_signature=[strings, strings, integers, integers])
        return self._traced

    def __call__(self, questions, contexts, answer_starts=None, answer_ends=None) -> dict:
        """Every window of every question.

        Args:
            questions, contexts: tf.string [B].
            answer_starts, answer_ends: optional int [B], the answer's character span
                [start, end) in the context; end <= start (e.g. -1, -1) for no answer. Without
                them every target is 0.

        Returns:
            {"token_ids", "segment_ids", "padding_mask": int32 [N, L],
             "start_positions", "end_positions": int32 [N] (training targets),
             "token_starts", "token_ends": int32 [N, L], character offsets of context tokens in
             their context (-1 for [CLS], question, [SEP] and padding),
             "question_index": int32 [N], the position in the batch of each window's question,
             "answer_in_context": bool [N], whether the question's answer covers any context
             token (False for no answer)}. Windows are grouped by question, in order.
        """
        length = self.max_sequence_length
        tokenizer = self.tokenizer
        questions = tf.convert_to_tensor(questions, tf.string)
        contexts = tf.convert_to_tensor(contexts, tf.string)
        question_ids = tokenizer.tokenize(questions)[:, :self.max_query_length]
        # Questions on one paragraph share its context: tokenise each distinct context once.
        unique_contexts, context_of_question = tf.unique(contexts, out_idx=tf.int64)
        context_ids, context_starts, context_ends = (
            tf.gather(tokens, context_of_question)
            for tokens in tokenizer.tokenize_with_offsets(unique_contexts))
        question_lengths = question_ids.row_lengths()
        context_lengths = context_ids.row_lengths()
        window_lengths = length - question_lengths - 3
        steps = tf.minimum(window_lengths, self.doc_stride)
        counts = 1 + tf.maximum(tf.zeros_like(context_lengths),
                                (context_lengths - window_lengths + steps - 1) // steps)
        batch = tf.shape(questions, out_type=tf.int64)[0]
        question_index = tf.repeat(tf.range(batch), counts)
        window_starts = tf.ragged.range(counts).flat_values * tf.gather(steps, question_index)
        spans = tf.minimum(tf.gather(window_lengths, question_index),
                           tf.gather(context_lengths, question_index) - window_starts)

        positions = tf.range(length, dtype=tf.int64)[None, :]
        query = tf.gather(question_lengths, question_index)[:, None]
        span = spans[:, None]
        context_begin = query + 2
        is_question = (positions >= 1) & (positions <= query)
        is_context = (positions >= context_begin) & (positions < context_begin + span)
        is_final_sep = tf.equal(positions, context_begin + span)
        is_sep = tf.equal(positions, query + 1) | is_final_sep

        dense_questions = tf.gather(question_ids.to_tensor(
            default_value=0, shape=[None, self.max_query_length]), question_index)
        question_tokens = tf.gather(
            dense_questions,
            tf.clip_by_value(positions - 1, 0, self.max_query_length - 1) + tf.zeros_like(query),
            batch_dims=1)

        def per_window(ragged, fill):
            # One padding column, so that a batch of empty contexts still has a column to gather.
            dense = tf.pad(ragged.to_tensor(default_value=fill), [[0, 0], [0, 1]],
                           constant_values=fill)
            return tf.gather(dense, question_index)

        context_index = tf.clip_by_value(window_starts[:, None] + positions - context_begin, 0,
                                         tf.reduce_max(context_lengths))
        context_tokens = tf.gather(per_window(context_ids, 0), context_index, batch_dims=1)
        token_starts = tf.gather(per_window(context_starts, -1), context_index, batch_dims=1)
        token_ends = tf.gather(per_window(context_ends, -1), context_index, batch_dims=1)
        token_ids = tf.where(
            tf.equal(positions, 0), tokenizer.cls_token_id,
            tf.where(is_question, question_tokens,
                     tf.where(is_sep, tokenizer.sep_token_id,
                              tf.where(is_context, context_tokens, tokenizer.pad_token_id))))

        if answer_starts is None:
            answer_starts = answer_ends = -tf.ones([batch], tf.int64)
        first, last, found = _answer_tokens(context_starts, context_ends,
                                            tf.cast(answer_starts, tf.int64),
                                            tf.cast(answer_ends, tf.int64))
        first, last = tf.gather(first, question_index), tf.gather(last, question_index)
        in_window = (tf.gather(found, question_index) & (first >= window_starts)
                     & (last < window_starts + spans))
        offset = tf.gather(question_lengths, question_index) + 2 - window_starts
        return {
            "token_ids": tf.cast(token_ids, tf.int32),
            "segment_ids": tf.cast(is_context | is_final_sep, tf.int32),
            "padding_mask": tf.cast(positions <= context_begin + span, tf.int32),
            "start_positions": tf.cast(tf.where(in_window, first + offset, 0), tf.int32),
            "end_positions": tf.cast(tf.where(in_window, last + offset, 0), tf.int32),
            "token_starts": tf.cast(tf.where(is_context, token_starts, -1), tf.int32),
            "token_ends": tf.cast(tf.where(is_context, token_ends, -1), tf.int32),
            "question_index": tf.cast(question_index, tf.int32),
            "answer_in_context": tf.gather(found, question_index),
        }


def _answer_tokens(context_starts, context_ends, answer_starts, answer_ends):
    """First and last context tokens overlapping each answer's characters.

    Args:
        context_starts, context_ends: int64 RaggedTensor [B, (T)], token character offsets.
        answer_starts, answer_ends: int64 [B].

    Returns:
        (first int64 [B], last int64 [B], found bool [B]); first/last are 0 where not found.
    """
    starts = context_starts.to_tensor(default_value=-1)
    ends = context_ends.to_tensor(default_value=-1)
    has_answer = answer_ends > answer_starts
    overlaps = ((ends > answer_starts[:, None]) & (starts < answer_ends[:, None])
                & (starts >= 0) & has_answer[:, None])
    found = tf.reduce_any(overlaps, axis=1)
    index = tf.range(tf.shape(overlaps, out_type=tf.int64)[1])[None, :]
    # Empty rows reduce to the identities; `found` is False there and the result 0.
    first = tf.reduce_min(tf.where(overlaps, index, tf.int64.max), axis=1)
    last = tf.reduce_max(tf.where(overlaps, index, -1), axis=1)
    return tf.where(found, first, 0), tf.where(found, last, 0), found
