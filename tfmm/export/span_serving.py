"""Export of a question-answering model: raw question and context strings in, answer text out.

The SavedModel's `serving_default` signature does everything in the graph (TensorFlow and
tensorflow-text ops only, no Python):

    inputs:  question tf.string [B]
             context  tf.string [B]   (UTF-8)
    outputs: answer   tf.string [B]   (a slice of the context; "" when there is no answer)
             score    float32  [B]    (start logit + end logit of the answer span; for a SQuAD
                                       v2.0 model that answers "", the null score; -inf when the
                                       context holds no token)

1. Tokenisation with offsets (`GraphWordPieceTokenizer`): the context is split on whitespace and
   punctuation (the patterns of keras-hub's WordPiece tokenizer) with byte offsets into the
   original string, each word is normalised as the model's tokenizer does (accents stripped,
   case folded) and cut into WordPieces by `tf_text.FastWordpieceTokenizer` with offsets into the
   word, which are mapped back to the original string character by character (accents that
   normalisation removes stay with their letter, as in `WordPieceOffsetTokenizer`).
2. Windowing (`graph_windows`): the training scheme of `tfmm.preprocessing.span_windows` --
   `[CLS] question [SEP] context window [SEP] pad`, the question cut to max_query_length tokens,
   context windows starting every doc_stride tokens until one reaches the end -- so long contexts
   get several windows, exactly as in training and evaluation.
3. The model on all windows of the batch at once.
4. Decoding (`graph_decode`): the best legal span (both ends context tokens, start <= end,
   at most max_answer_length tokens) over all windows of a question, as
   `tfmm.evaluation.span_decoding.decode_predictions` chooses it (earlier window, earlier start,
   shorter span on ties), and the SQuAD v2.0 null-answer rule when the model was trained for it.
   The answer is cut from the context string with the byte offsets.

The signature uses tensorflow-text ops: `import tensorflow_text` before `tf.saved_model.load`
(TF Serving needs a build with the tensorflow-text ops, as for the multimodal export).

Example:
    export_span_serving_model(model, tokenizer, config.qa, "runs/xquad_minilm/export/1")
    serving = tf.saved_model.load("runs/xquad_minilm/export/1").signatures["serving_default"]
    serving(question=tf.constant(["Who?"]), context=tf.constant(["Ada wrote it."]))["answer"]
"""

import keras
import tensorflow as tf
import tensorflow_text as tf_text

from tfmm.models.heads.task_head import HEAD_KINDS
from tfmm.preprocessing.span_windows import MAX_BYTES_PER_WORD, as_offset_tokenizer

# keras-hub's WordPiece split patterns (RE2 syntax): whitespace and invisible control/format
# characters separate words and are dropped; punctuation (ASCII symbols and Unicode P*) and,
# optionally, CJK ideographs are words of their own.
_WHITESPACE = r"\s|\p{Cc}|\p{Cf}"
_PUNCTUATION = r"[!-/]|[:-@]|[\[-`]|[{-~]|[\p{P}]"
_CJK = (r"[\x{4E00}-\x{9FFF}]|[\x{3400}-\x{4DBF}]|[\x{20000}-\x{2A6DF}]|[\x{2A700}-\x{2B73F}]|"
        r"[\x{2B740}-\x{2B81F}]|[\x{2B820}-\x{2CEAF}]|[\x{F900}-\x{FAFF}]|[\x{2F800}-\x{2FA1F}]")


class GraphWordPieceTokenizer:
    """In-graph twin of `WordPieceOffsetTokenizer`: token ids and byte offsets of each token.

    Args:
        tokenizer: a keras-hub BertTokenizer, a `WordPieceOffsetTokenizer`, or a vocabulary (see
            `as_offset_tokenizer`); vocabulary, lower-casing, accent stripping, CJK splitting
            and the special tokens are copied from it.
    """

    def __init__(self, tokenizer):
        offset_tokenizer = as_offset_tokenizer(tokenizer)
        self.lowercase = offset_tokenizer.lowercase
        self.strip_accents = offset_tokenizer.strip_accents
        self.cls_token_id = offset_tokenizer.cls_token_id
        self.sep_token_id = offset_tokenizer.sep_token_id
        self.pad_token_id = offset_tokenizer.pad_token_id
        if offset_tokenizer.split_on_cjk:
            self.split_pattern = "|".join([_WHITESPACE, _PUNCTUATION, _CJK])
            self.keep_pattern = "|".join([_PUNCTUATION, _CJK])
        else:
            self.split_pattern = "|".join([_WHITESPACE, _PUNCTUATION])
            self.keep_pattern = _PUNCTUATION
        self.word_piece = tf_text.FastWordpieceTokenizer(
            vocab=list(offset_tokenizer.vocabulary),
            suffix_indicator=offset_tokenizer.suffix_indicator,
            max_bytes_per_word=MAX_BYTES_PER_WORD, token_out_type=tf.int32,
            unknown_token=offset_tokenizer.unknown_token, no_pretokenization=True)

    def _normalize(self, words):
        if self.strip_accents:
            words = tf_text.normalize_utf8(words, "NFD")
            words = tf.strings.regex_replace(words, r"\p{Mn}", "")
        if self.lowercase:
            words = tf_text.case_fold_utf8(words)
        return words

    def tokenize_with_offsets(self, texts):
        """Token ids and byte offsets.

        Args:
            texts: tf.string [B].

        Returns:
            (ids int32, starts int64, ends int64), RaggedTensors [B, (T)]; `starts`/`ends` are
            byte offsets into each original string (a token covers bytes [start, end)).
        """
        words, word_starts, word_ends = tf_text.regex_split_with_offsets(
            texts, self.split_pattern, self.keep_pattern)
        normalized = tf.ragged.map_flat_values(self._normalize, words)
        pieces, piece_starts, piece_ends = self.word_piece.tokenize_with_offsets(normalized)
        # pieces: [B, (words), (pieces)]; piece offsets are bytes of the normalised word.
        word_of_piece = pieces.values.value_rowids()
        starts_in_word, ends_in_word = self._original_offsets(
            words.flat_values, normalized.flat_values, word_of_piece,
            piece_starts.flat_values, piece_ends.flat_values)
        word_starts = tf.gather(word_starts.flat_values, word_of_piece)
        ids = pieces.merge_dims(1, 2)
        return (ids, ids.with_flat_values(word_starts + starts_in_word),
                ids.with_flat_values(word_starts + ends_in_word))

    def _original_offsets(self, words, normalized, word_of_piece, piece_starts, piece_ends):
        """Maps piece byte offsets in normalised words to byte offsets in the original words.

        Each character is normalised on its own: a piece starts at the original character whose
        normalisation holds its first byte, and ends where the next character with a non-empty
        normalisation begins (so an accent removed after a letter stays with the letter, as in
        `WordPieceOffsetTokenizer`). A word whose characters do not normalise to the same text
        one by one as whole (rare compositions) maps each of its pieces to the whole word.

        Args:
            words, normalized: tf.string [W], original and normalised words.
            word_of_piece: int64 [P], the word of each piece.
            piece_starts, piece_ends: int64 [P], byte offsets into the normalised word.

        Returns:
            (starts, ends): int64 [P] byte offsets into the original word.
        """
        characters, character_starts = tf.strings.unicode_split_with_offsets(words, "UTF-8")
        normalized_characters = tf.ragged.map_flat_values(self._normalize, characters)
        consistent = tf.equal(tf.strings.reduce_join(normalized_characters, axis=-1),
                              normalized)
        # [W, C + 1]: 0 past the word's characters (the extra column keeps C + 1 >= 1, which
        # searchsorted needs when a batch holds no word at all).
        lengths = tf.pad(tf.cast(tf.ragged.map_flat_values(tf.strings.length,
                                                           normalized_characters).to_tensor(),
                                 tf.int64), [[0, 0], [0, 1]])
        word_lengths = tf.cast(tf.strings.length(words), tf.int64)
        number_of_characters = characters.row_lengths()
        ends_normalized = tf.math.cumsum(lengths, axis=1)
        starts_normalized = ends_normalized - lengths
        # Sorted keys for the piece ends: a character that normalises to nothing sorts just before
        # a character starting at the same normalised byte.
        end_keys = 2 * starts_normalized - tf.cast(tf.equal(lengths, 0), tf.int64)
        is_character = tf.sequence_mask(number_of_characters, tf.shape(lengths)[1])
        original_starts = tf.where(is_character,
                                   tf.pad(character_starts.to_tensor(), [[0, 0], [0, 1]]),
                                   word_lengths[:, None])
        original_starts = tf.concat([original_starts, word_lengths[:, None]], axis=1)

        character_ends = tf.gather(ends_normalized, word_of_piece)
        first = tf.searchsorted(character_ends, piece_starts[:, None], side="right")
        after = tf.searchsorted(tf.gather(end_keys, word_of_piece), 2 * piece_ends[:, None],
                                side="left")
        piece_original_starts = tf.gather(original_starts, word_of_piece)
        limit = tf.gather(number_of_characters, word_of_piece)[:, None]
        starts = tf.gather(piece_original_starts, tf.minimum(tf.cast(first, tf.int64), limit),
                           batch_dims=1)[:, 0]
        ends = tf.gather(piece_original_starts, tf.minimum(tf.cast(after, tf.int64), limit),
                         batch_dims=1)[:, 0]
        piece_consistent = tf.gather(consistent, word_of_piece)
        return (tf.where(piece_consistent, starts, 0),
                tf.where(piece_consistent, ends, tf.gather(word_lengths, word_of_piece)))

    def tokenize(self, texts):
        """Token ids, int32 RaggedTensor [B, (T)]."""
        words = tf_text.regex_split(texts, self.split_pattern, self.keep_pattern)
        normalized = tf.ragged.map_flat_values(self._normalize, words)
        return self.word_piece.tokenize(normalized).merge_dims(1, 2)


def graph_windows(tokenizer: GraphWordPieceTokenizer, questions, contexts,
                  max_sequence_length: int, doc_stride: int, max_query_length: int) -> dict:
    """Every window of every question, as `tfmm.preprocessing.span_windows.make_windows` cuts them.

    Args:
        tokenizer: the `GraphWordPieceTokenizer`.
        questions, contexts: tf.string [B].
        max_sequence_length, doc_stride, max_query_length: the training window sizes
            (max_query_length <= max_sequence_length - 4).

    Returns:
        {"token_ids", "segment_ids", "padding_mask": int32 [N, L], "is_context": bool [N, L],
        "starts", "ends": int64 [N, L] byte offsets of context tokens (-1 elsewhere),
        "question_index": int64 [N], the question each window belongs to}; windows are grouped by
        question, in order.
    """
    length = max_sequence_length
    question_ids = tokenizer.tokenize(questions)[:, :max_query_length]
    context_ids, context_starts, context_ends = tokenizer.tokenize_with_offsets(contexts)
    question_lengths = question_ids.row_lengths()
    context_lengths = context_ids.row_lengths()
    window_lengths = length - question_lengths - 3
    steps = tf.minimum(window_lengths, doc_stride)
    counts = 1 + tf.maximum(tf.zeros_like(context_lengths),
                            (context_lengths - window_lengths + steps - 1) // steps)
    batch = tf.shape(questions, out_type=tf.int64)[0]
    question_index = tf.repeat(tf.range(batch), counts)
    window_number = tf.ragged.range(counts).flat_values
    window_starts = window_number * tf.gather(steps, question_index)
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

    dense_questions = tf.gather(
        question_ids.to_tensor(default_value=0, shape=[None, max_query_length]), question_index)
    question_tokens = tf.gather(dense_questions,
                                tf.clip_by_value(positions - 1, 0, max_query_length - 1) +
                                tf.zeros_like(query), batch_dims=1)
    # One padding column so that an all-empty batch of contexts still has something to gather.
    def per_window(ragged, fill):
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
    return {
        "token_ids": tf.cast(token_ids, tf.int32),
        "segment_ids": tf.cast(is_context | is_final_sep, tf.int32),
        "padding_mask": tf.cast(positions <= context_begin + span, tf.int32),
        "is_context": is_context,
        "starts": tf.where(is_context, token_starts, -1),
        "ends": tf.where(is_context, token_ends, -1),
        "question_index": question_index,
    }


def graph_decode(windows: dict, start_logits, end_logits, contexts, max_answer_length: int,
                 version_2_with_negative: bool = False, null_score_threshold: float = 0.0):
    """Each question's answer text and score from its windows' logits (see the module doc).

    Args:
        windows: what `graph_windows` returns.
        start_logits, end_logits: float [N, L].
        contexts: tf.string [B], the original contexts.
        max_answer_length: longest answer in tokens.
        version_2_with_negative: answer "" when null score - best span score > threshold.
        null_score_threshold: see above.

    Returns:
        (answer tf.string [B], score float32 [B]).
    """
    start_logits = tf.cast(start_logits, tf.float32)
    end_logits = tf.cast(end_logits, tf.float32)
    is_context = windows["is_context"]
    negative_infinity = tf.constant(float("-inf"), tf.float32)
    # Scores of the spans (start, start + d), d < max_answer_length: [N, L, A].
    # Ends outside the context (and past the window) are -inf, so only legal spans are finite.
    end_frames = tf.signal.frame(tf.where(is_context, end_logits, negative_infinity),
                                 max_answer_length, 1, pad_end=True, pad_value=float("-inf"))
    scores = tf.where(is_context[:, :, None], start_logits[:, :, None] + end_frames,
                      negative_infinity)
    flat_scores = tf.reshape(scores, [tf.shape(scores)[0], -1])
    best_flat = tf.argmax(flat_scores, axis=-1, output_type=tf.int64)  # first maximum
    window_scores = tf.reduce_max(flat_scores, axis=-1)
    best_start = best_flat // max_answer_length
    best_end = best_start + best_flat % max_answer_length

    question_index = windows["question_index"]
    batch = tf.shape(contexts, out_type=tf.int64)[0]
    by_question = tf.RaggedTensor.from_value_rowids(window_scores, question_index, nrows=batch)
    best_window_in_question = tf.argmax(by_question.to_tensor(default_value=float("-inf")),
                                        axis=-1, output_type=tf.int64)
    best_window = by_question.row_starts() + best_window_in_question
    score = tf.gather(window_scores, best_window)
    start_byte = tf.gather_nd(windows["starts"],
                              tf.stack([best_window, tf.gather(best_start, best_window)], -1))
    end_byte = tf.gather_nd(windows["ends"],
                            tf.stack([best_window, tf.gather(best_end, best_window)], -1))
    has_span = tf.math.is_finite(score)
    start_byte = tf.where(has_span, start_byte, 0)
    end_byte = tf.where(has_span, end_byte, 0)
    answer = tf.strings.substr(contexts, tf.cast(start_byte, tf.int32),
                               tf.cast(end_byte - start_byte, tf.int32), unit="BYTE")
    if version_2_with_negative:
        null_scores = tf.RaggedTensor.from_value_rowids(
            start_logits[:, 0] + end_logits[:, 0], question_index, nrows=batch)
        null_score = tf.reduce_min(null_scores, axis=-1)
        no_answer = (null_score - score) > null_score_threshold
        answer = tf.where(no_answer, tf.constant(""), answer)
        score = tf.where(no_answer, null_score, score)
    return answer, score


def build_span_serving_function(model, tokenizer, qa_config):
    """The raw-string serving function.

    Args:
        model: a trained span model (`tfmm.models.span_model.build_span_model`).
        tokenizer: the model's keras-hub BertTokenizer (or a `WordPieceOffsetTokenizer`).
        qa_config: `tfmm.config.QuestionAnsweringConfig` (window sizes, decoding settings).

    Returns:
        A `tf.function` (question, context: tf.string [None]) -> {"answer", "score"}.
    """
    graph_tokenizer = GraphWordPieceTokenizer(tokenizer)
    start_key, end_key = HEAD_KINDS["span"]
    qa = qa_config

    @tf.function(autograph=False,
                 input_signature=[tf.TensorSpec([None], tf.string, name="question"),
                                  tf.TensorSpec([None], tf.string, name="context")])
    def serve(question, context):
        windows = graph_windows(graph_tokenizer, question, context, qa.max_sequence_length,
                                qa.doc_stride, qa.max_query_length)
        features = {key: windows[key] for key in ("token_ids", "segment_ids", "padding_mask")}
        outputs = model(features, training=False)
        answer, score = graph_decode(windows, outputs[start_key], outputs[end_key], context,
                                     qa.max_answer_length, qa.version_2_with_negative,
                                     qa.null_score_threshold)
        return {"answer": answer, "score": score}

    return serve


def export_span_serving_model(model, tokenizer, qa_config, export_dir: str) -> str:
    """Writes the SavedModel with the raw-string `serving_default` signature.

    Args:
        model, tokenizer, qa_config: see `build_span_serving_function`.
        export_dir: target folder (local or gs://), e.g. `runs/xquad_minilm/export/1`.

    Returns:
        export_dir.
    """
    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint("serving_default",
                         build_span_serving_function(model, tokenizer, qa_config))
    archive.write_out(export_dir, verbose=False)
    return export_dir
