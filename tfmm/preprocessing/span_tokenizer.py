"""In-graph BERT WordPiece tokenisation with the character offsets of every token.

keras-hub's `BertTokenizer` gives token ids but not where each token came from in the text; an
extractive question-answering model predicts token positions, and its answer is cut from the
original context, so this tokenizer also returns, for every token, the `[start, end)` span of
CHARACTERS (Unicode code points, what SQuAD's `answer_start` counts) of the original string it
covers. Everything is TensorFlow / tensorflow-text ops, so the same code runs in `tf.data`, in
evaluation and in the exported SavedModel:

1. Splitting (`tf_text.regex_split_with_offsets`, keras-hub's WordPiece patterns): whitespace and
   invisible control/format characters separate words and are dropped; punctuation (ASCII symbols
   and Unicode P*) and, optionally, CJK ideographs are words of their own. Offsets are bytes.
2. Normalisation of each word as the model's tokenizer does it: accents stripped (NFD, then
   nonspacing marks removed), NFKC case folding (`tf_text.case_fold_utf8`).
3. WordPiece (`tf_text.FastWordpieceTokenizer`): greedy longest match, `##` continuation; a word
   that cannot be covered, or longer than 100 UTF-8 bytes, becomes `[UNK]` covering the word.
4. Piece offsets in the normalised word are mapped back to the original word character by
   character (an accent that normalisation removes stays with its letter), then byte offsets in
   the original string become character offsets (`tf.strings.unicode_decode_with_offsets`).

The ids equal keras-hub's `BertTokenizer` with the same vocabulary and options, and the offsets
those of the pure-Python definition in tests/helpers/span_windows_oracle.py (tested on every XQuAD
context and question).

Example:
    tokenizer = GraphWordPieceTokenizer(load_bert_tokenizer("minilm"))
    ids, starts, ends = tokenizer.tokenize_with_offsets(tf.constant(["Café au lait."]))
"""

import tensorflow as tf
import tensorflow_text as tf_text

# Words longer than this many UTF-8 bytes become the unknown token (as in tf_text and keras-hub).
MAX_BYTES_PER_WORD = 100

_WHITESPACE = r"\s|\p{Cc}|\p{Cf}"
_PUNCTUATION = r"[!-/]|[:-@]|[\[-`]|[{-~]|[\p{P}]"
_CJK = (r"[\x{4E00}-\x{9FFF}]|[\x{3400}-\x{4DBF}]|[\x{20000}-\x{2A6DF}]|[\x{2A700}-\x{2B73F}]|"
        r"[\x{2B740}-\x{2B81F}]|[\x{2B820}-\x{2CEAF}]|[\x{F900}-\x{FAFF}]|[\x{2F800}-\x{2FA1F}]")


def _read_vocabulary_file(path: str) -> list:
    with tf.io.gfile.GFile(path, "r") as handle:
        lines = handle.read().split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [line.rstrip() for line in lines]  # like keras-hub: trailing whitespace removed


def tokenizer_settings(tokenizer) -> dict:
    """Vocabulary and options of a keras-hub WordPiece/BERT tokenizer, a vocabulary or its file.

    Args:
        tokenizer: a keras-hub `WordPieceTokenizer`/`BertTokenizer` (its vocabulary, lowercase,
            strip_accents, split_on_cjk, suffix_indicator and oov_token are copied), any object
            with the attributes `vocabulary`, `lowercase`, `strip_accents`, `split_on_cjk`,
            `suffix_indicator`, `unknown_token`, a list of tokens, or a `vocab.txt` path (the last
            two are uncased: lower-cased, accents stripped).

    Returns:
        {"vocabulary", "lowercase", "strip_accents", "split_on_cjk", "suffix_indicator",
        "unknown_token"}.

    Raises:
        TypeError: for anything else; ValueError: for a keras-hub tokenizer with split=False.
    """
    if isinstance(tokenizer, str) or isinstance(tokenizer, (list, tuple)):
        vocabulary = _read_vocabulary_file(tokenizer) if isinstance(tokenizer, str) else tokenizer
        return {"vocabulary": list(vocabulary), "lowercase": True, "strip_accents": True,
                "split_on_cjk": True, "suffix_indicator": "##", "unknown_token": "[UNK]"}
    if hasattr(tokenizer, "get_vocabulary") and hasattr(tokenizer, "suffix_indicator"):
        if not getattr(tokenizer, "split", True):
            raise ValueError("A keras-hub tokenizer built with split=False cannot be reproduced.")
        return {"vocabulary": list(tokenizer.get_vocabulary()),
                "lowercase": bool(getattr(tokenizer, "lowercase", False)),
                "strip_accents": bool(getattr(tokenizer, "strip_accents", False)),
                "split_on_cjk": bool(getattr(tokenizer, "split_on_cjk", True)),
                "suffix_indicator": tokenizer.suffix_indicator,
                "unknown_token": getattr(tokenizer, "oov_token", "[UNK]")}
    names = ("vocabulary", "lowercase", "strip_accents", "split_on_cjk", "suffix_indicator",
             "unknown_token")
    if all(hasattr(tokenizer, name) for name in names):
        return {name: getattr(tokenizer, name) for name in names}
    raise TypeError("Expected a keras-hub WordPiece/BERT tokenizer, a vocabulary list or a "
                    f"vocabulary path; got {type(tokenizer).__name__}.")


class GraphWordPieceTokenizer:
    """BERT WordPiece in TensorFlow ops: token ids and character offsets of each token.

    Args:
        tokenizer: see `tokenizer_settings` (a keras-hub BertTokenizer, a vocabulary list or path).
        cls_token, sep_token, pad_token: the special tokens windows are built with.

    Raises:
        ValueError: if a special token is missing from the vocabulary.
    """

    def __init__(self, tokenizer, cls_token: str = "[CLS]", sep_token: str = "[SEP]",
                 pad_token: str = "[PAD]"):
        settings = tokenizer_settings(tokenizer)
        self.vocabulary = list(settings["vocabulary"])
        self.lowercase = bool(settings["lowercase"])
        self.strip_accents = bool(settings["strip_accents"])
        token_to_id = {token: index for index, token in enumerate(self.vocabulary)}
        special = {"cls_token": cls_token, "sep_token": sep_token, "pad_token": pad_token,
                   "unknown_token": settings["unknown_token"]}
        for name, token in special.items():
            if token not in token_to_id:
                raise ValueError(f"{name} {token!r} is not in the vocabulary.")
        self.cls_token_id = token_to_id[cls_token]
        self.sep_token_id = token_to_id[sep_token]
        self.pad_token_id = token_to_id[pad_token]
        if settings["split_on_cjk"]:
            self.split_pattern = "|".join([_WHITESPACE, _PUNCTUATION, _CJK])
            self.keep_pattern = "|".join([_PUNCTUATION, _CJK])
        else:
            self.split_pattern = "|".join([_WHITESPACE, _PUNCTUATION])
            self.keep_pattern = _PUNCTUATION
        self.word_piece = tf_text.FastWordpieceTokenizer(
            vocab=self.vocabulary, suffix_indicator=settings["suffix_indicator"],
            max_bytes_per_word=MAX_BYTES_PER_WORD, token_out_type=tf.int32,
            unknown_token=settings["unknown_token"], no_pretokenization=True)

    def _normalize(self, words):
        if self.strip_accents:
            words = tf_text.normalize_utf8(words, "NFD")
            words = tf.strings.regex_replace(words, r"\p{Mn}", "")
        if self.lowercase:
            words = tf_text.case_fold_utf8(words)
        return words

    def tokenize(self, texts):
        """Token ids, int32 RaggedTensor [B, (T)], of tf.string [B]."""
        words = tf_text.regex_split(texts, self.split_pattern, self.keep_pattern)
        normalized = tf.ragged.map_flat_values(self._normalize, words)
        return self.word_piece.tokenize(normalized).merge_dims(1, 2)

    def tokenize_with_offsets(self, texts):
        """Token ids and character offsets.

        Args:
            texts: tf.string [B] (UTF-8).

        Returns:
            (ids int32, starts int64, ends int64), RaggedTensors [B, (T)]; token t of text b covers
            the characters [starts[b, t], ends[b, t]) of the original text (an `[UNK]` covers its
            whole word).
        """
        ids, byte_starts, byte_ends = self.tokenize_with_byte_offsets(texts)
        return (ids, characters_before_bytes(texts, byte_starts),
                characters_before_bytes(texts, byte_ends))

    def tokenize_with_byte_offsets(self, texts):
        """Like `tokenize_with_offsets`, with byte offsets into the UTF-8 strings."""
        words, word_starts, _ = tf_text.regex_split_with_offsets(
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
        normalisation begins (so an accent removed after a letter stays with the letter). A word
        whose characters, normalised one by one, do not give the normalised word (rare
        compositions) maps each of its pieces to the whole word.

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


def characters_before_bytes(texts, byte_offsets):
    """Character (code point) offsets of byte offsets that fall on character boundaries.

    Args:
        texts: tf.string [B] (UTF-8).
        byte_offsets: int64 RaggedTensor [B, (T)], each in [0, byte length of its text].

    Returns:
        int64 RaggedTensor [B, (T)]: the number of characters of the text that start before each
        byte offset (so a token's byte span [s, e) becomes its character span).
    """
    _, character_byte_starts = tf.strings.unicode_decode_with_offsets(texts, "UTF-8")
    # One padding column above any byte offset keeps the rows sorted and at least 1 wide.
    sorted_starts = tf.pad(character_byte_starts.to_tensor(default_value=tf.int64.max),
                           [[0, 0], [0, 1]], constant_values=tf.int64.max)
    dense_offsets = byte_offsets.to_tensor(default_value=0)
    characters = tf.searchsorted(sorted_starts, dense_offsets, side="left", out_type=tf.int64)
    return tf.RaggedTensor.from_tensor(characters, lengths=byte_offsets.row_lengths())
