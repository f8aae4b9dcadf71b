"""Test oracle (pure Python): WordPiece tokenisation with character offsets, and BERT QA windows.

The graph path in tfmm (`tfmm.preprocessing.span_tokenizer`, `tfmm.preprocessing.span_preprocessor`)
is what trains, evaluates and serves; this independent Python version of the same definition is
kept only to test it against (tests/test_span_*.py) and as the old path in bench/qa_evaluation.py.

keras-hub's `BertTokenizer` returns token ids but not where each token came from in the text. An
extractive question-answering model predicts token positions, and the answer must be sliced from
the original context, so this module re-implements the same pipeline in Python while tracking,
for every token, the `(char_start, char_end)` span of the ORIGINAL string it covers:

1. Accent stripping (optional): canonical decomposition (NFD), then removal of nonspacing marks
   (Unicode category `Mn`).
2. Splitting: on whitespace (ASCII space, tab, newlines, form feed, control `Cc` and format `Cf`
   characters; they are dropped) and on punctuation (ASCII symbols and Unicode `P*`) and CJK
   ideographs (both kept, one character per word), as BERT's basic tokenizer does.
3. Lower-casing (optional): Unicode NFKC case folding of each word, dropping default-ignorable
   code points (what `tf_text.case_fold_utf8` and keras-hub do).
4. WordPiece: greedy longest-match-first over the vocabulary with the `##` continuation prefix;
   a word that cannot be covered, or longer than 100 UTF-8 bytes, becomes `[UNK]`.

The ids are those of keras-hub's `BertTokenizer` with the same vocabulary and options (checked on
real SQuAD text by the tests); build one from a keras-hub tokenizer with
`WordPieceOffsetTokenizer.from_keras_hub`. Note that keras-hub's `BertTokenizer` keeps accents
unless it is given `strip_accents=True`, while uncased BERT checkpoints (MiniLM included) were
pre-trained on accent-stripped text; `WordPieceOffsetTokenizer(..., lowercase=True)` strips
accents by default, like the original uncased BERT tokenizer.

Windows follow the original BERT SQuAD scheme: `[CLS] question [SEP] context-window [SEP] pad`,
with context windows that start every `doc_stride` tokens until one reaches the end of the
context.

Example:
    tokenizer = WordPieceOffsetTokenizer.from_vocabulary_file("vocab.txt", lowercase=True)
    windows = make_windows(example, tokenizer, max_sequence_length=384, doc_stride=128)
    arrays = windows_to_arrays(windows)  # {"token_ids": [N, 384], ...}
"""

import collections
import dataclasses
import logging
import unicodedata
import weakref
from typing import Any, Iterable, Optional, Sequence, Union

import numpy as np

logger = logging.getLogger(__name__)

# Words longer than this many UTF-8 bytes become the unknown token (as in tf_text and keras-hub).
MAX_BYTES_PER_WORD = 100

# Characters removed by Unicode NFKC case folding (the Default_Ignorable_Code_Point property).
_DEFAULT_IGNORABLE_RANGES = (
    (0x00AD, 0x00AD),
    (0x034F, 0x034F),
    (0x061C, 0x061C),
    (0x115F, 0x1160),
    (0x17B4, 0x17B5),
    (0x180B, 0x180F),
    (0x200B, 0x200F),
    (0x202A, 0x202E),
    (0x2060, 0x206F),
    (0x3164, 0x3164),
    (0xFE00, 0xFE0F),
    (0xFEFF, 0xFEFF),
    (0xFFA0, 0xFFA0),
    (0xFFF0, 0xFFF8),
    (0x1BCA0, 0x1BCA3),
    (0x1D173, 0x1D17A),
    (0xE0000, 0xE0FFF),
)

# CJK ideograph blocks that BERT splits into one word per character.
_CJK_RANGES = (
    (0x4E00, 0x9FFF),
    (0x3400, 0x4DBF),
    (0x20000, 0x2A6DF),
    (0x2A700, 0x2B73F),
    (0x2B740, 0x2B81F),
    (0x2B820, 0x2CEAF),
    (0xF900, 0xFAFF),
    (0x2F800, 0x2FA1F),
)

_ASCII_WHITESPACE = frozenset(" \t\n\r\f")

# Character classes of the splitting step.
_KEEP = 1  # a word of its own (punctuation, CJK)
_DROP = 2  # a separator that is dropped (whitespace, control and format characters)
_WORD = 0  # part of a word


def _is_default_ignorable(character: str) -> bool:
    code_point = ord(character)
    return any(low <= code_point <= high for low, high in _DEFAULT_IGNORABLE_RANGES)


def _is_cjk(character: str) -> bool:
    code_point = ord(character)
    return any(low <= code_point <= high for low, high in _CJK_RANGES)


def _is_ascii_punctuation(character: str) -> bool:
    code_point = ord(character)
    return 33 <= code_point <= 47 or 58 <= code_point <= 64 or 91 <= code_point <= 96 or (
        123 <= code_point <= 126
    )


def _character_class(character: str, split_on_cjk: bool) -> int:
    if character in _ASCII_WHITESPACE:
        return _DROP
    if character.isascii():
        if _is_ascii_punctuation(character):
            return _KEEP
        if ord(character) < 32 or ord(character) == 127:
            return _DROP
        return _WORD
    category = unicodedata.category(character)
    if category in ("Cc", "Cf"):
        return _DROP
    if category.startswith("P"):
        return _KEEP
    if split_on_cjk and _is_cjk(character):
        return _KEEP
    return _WORD


def _strip_accents(text: str) -> str:
    decomposed = unicodedata.normalize("NFD", text)
    return "".join(c for c in decomposed if unicodedata.category(c) != "Mn")


def _case_fold(text: str) -> str:
    """NFKC case folding, the mapping of `tf_text.case_fold_utf8`."""
    if text.isascii():
        return text.lower()
    folded = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", text).casefold())
    return "".join(c for c in folded if not _is_default_ignorable(c))


def _is_starter(character: str) -> bool:
    """Whether canonical reordering/composition can never move marks across this character.

    Marks of combining class 0 (e.g. the emoji variation selector U+FE0F, category Mn) are not
    starters here either: they stay with the character before them, as in the graph tokenizer.
    """
    if character.isascii():
        return True
    if unicodedata.category(character).startswith("M"):
        return False
    return unicodedata.combining(unicodedata.normalize("NFD", character)[0]) == 0


def _clusters(text: str, begin: int, end: int) -> list:
    """Splits `text[begin:end]` into (start, end) runs of a starter plus its combining marks."""
    clusters = []
    cluster_start = begin
    for index in range(begin + 1, end):
        if _is_starter(text[index]):
            clusters.append((cluster_start, index))
            cluster_start = index
    if begin < end:
        clusters.append((cluster_start, end))
    return clusters


def _normalize_with_map(text: str, function, spans: Sequence) -> tuple:
    """Applies `function` to `text` and maps every output character to a span of `spans`.

    `spans[i]` is the (start, end) that character `i` of `text` stands for. Normalisation runs per
    cluster (a starter and its combining marks), which is exact for canonical decomposition and
    nearly always for NFKC case folding; when the cluster-wise result differs from the whole-text
    result (e.g. Hangul jamo composing across starters), every output character is mapped to the
    span of the whole text.

    Returns:
        (normalized text, list of (start, end) per normalized character).
    """
    if text.isascii():
        normalized = function(text)
        if len(normalized) == len(text):
            return normalized, list(spans)
    pieces = []
    piece_spans = []
    for cluster_start, cluster_end in _clusters(text, 0, len(text)):
        piece = function(text[cluster_start:cluster_end])
        span = (spans[cluster_start][0], spans[cluster_end - 1][1])
        pieces.append(piece)
        piece_spans.extend([span] * len(piece))
    normalized = function(text)
    if "".join(pieces) != normalized:
        whole = (spans[0][0], spans[-1][1]) if spans else (0, 0)
        return normalized, [whole] * len(normalized)
    return normalized, piece_spans


class WordPieceOffsetTokenizer:
    """BERT WordPiece tokenizer that also returns each token's span in the original text.

    Args:
        vocabulary: list of tokens (the index is the id), or the path of a `vocab.txt` file with
            one token per line.
        lowercase: whether to case-fold the text (True for uncased vocabularies).
        strip_accents: whether to remove accents; None (default) follows `lowercase`, as the
            original uncased BERT tokenizer does.
        split_on_cjk: whether each CJK ideograph is a word of its own.
        suffix_indicator: prefix of word-continuation pieces.
        unknown_token: token for words that cannot be covered by the vocabulary.
        cls_token: classification token placed first in each window.
        sep_token: separator token.
        pad_token: padding token.
        cache_size: how many recently tokenised texts to keep (contexts are shared by several
            questions); 0 disables the cache.

    Raises:
        ValueError: if a required token is missing from the vocabulary.
    """

    def __init__(
        self,
        vocabulary: Union[str, Sequence[str]],
        lowercase: bool = True,
        strip_accents: Optional[bool] = None,
        split_on_cjk: bool = True,
        suffix_indicator: str = "##",
        unknown_token: str = "[UNK]",
        cls_token: str = "[CLS]",
        sep_token: str = "[SEP]",
        pad_token: str = "[PAD]",
        cache_size: int = 256,
    ):
        if isinstance(vocabulary, str):
            vocabulary = _read_vocabulary_file(vocabulary)
        self.vocabulary = list(vocabulary)
        self.token_to_id = {token: index for index, token in enumerate(self.vocabulary)}
        self.lowercase = bool(lowercase)
        self.strip_accents = self.lowercase if strip_accents is None else bool(strip_accents)
        self.split_on_cjk = bool(split_on_cjk)
        self.suffix_indicator = suffix_indicator
        self.unknown_token = unknown_token
        for name, token in (
            ("unknown_token", unknown_token),
            ("cls_token", cls_token),
            ("sep_token", sep_token),
            ("pad_token", pad_token),
        ):
            if token not in self.token_to_id:
                raise ValueError(f"{name} {token!r} is not in the vocabulary.")
        self.unknown_token_id = self.token_to_id[unknown_token]
        self.cls_token_id = self.token_to_id[cls_token]
        self.sep_token_id = self.token_to_id[sep_token]
        self.pad_token_id = self.token_to_id[pad_token]
        self.cache_size = int(cache_size)
        self._cache = collections.OrderedDict()

    @classmethod
    def from_vocabulary_file(cls, path: str, **kwargs) -> "WordPieceOffsetTokenizer":
        """Builds a tokenizer from a `vocab.txt` file (one token per line).

        Args:
            path: vocabulary file (local or any `tf.io.gfile` path).
            **kwargs: the other constructor arguments.

        Returns:
            The tokenizer.
        """
        return cls(_read_vocabulary_file(path), **kwargs)

    @classmethod
    def from_keras_hub(cls, tokenizer: Any, **kwargs) -> "WordPieceOffsetTokenizer":
        """Builds a tokenizer that reproduces a keras-hub `WordPieceTokenizer`/`BertTokenizer`.

        Args:
            tokenizer: the keras-hub tokenizer (its vocabulary and lowercase, strip_accents,
                split_on_cjk, suffix_indicator and oov_token settings are copied).
            **kwargs: overrides of the constructor arguments.

        Returns:
            The tokenizer.

        Raises:
            ValueError: if the keras-hub tokenizer does not split its input itself.
        """
        if not getattr(tokenizer, "split", True):
            raise ValueError("A keras-hub tokenizer built with split=False cannot be reproduced.")
        arguments = dict(
            vocabulary=tokenizer.get_vocabulary(),
            lowercase=getattr(tokenizer, "lowercase", False),
            strip_accents=getattr(tokenizer, "strip_accents", False),
            split_on_cjk=getattr(tokenizer, "split_on_cjk", True),
            suffix_indicator=getattr(tokenizer, "suffix_indicator", "##"),
            unknown_token=getattr(tokenizer, "oov_token", "[UNK]"),
        )
        arguments.update(kwargs)
        return cls(**arguments)

    def _split_words(self, text: str) -> list:
        """Returns (normalized word, list of original (start, end) per word character)."""
        identity_spans = [(index, index + 1) for index in range(len(text))]
        if self.strip_accents:
            stripped, spans = _normalize_with_map(text, _strip_accents, identity_spans)
        else:
            stripped, spans = text, identity_spans
        words = []
        word_start = None
        for index, character in enumerate(stripped):
            character_class = _character_class(character, self.split_on_cjk)
            if character_class == _WORD:
                if word_start is None:
                    word_start = index
                continue
            if word_start is not None:
                words.append((word_start, index))
                word_start = None
            if character_class == _KEEP:
                words.append((index, index + 1))
        if word_start is not None:
            words.append((word_start, len(stripped)))
        results = []
        for start, end in words:
            word = stripped[start:end]
            word_spans = spans[start:end]
            if self.lowercase:
                word, word_spans = _normalize_with_map(word, _case_fold, word_spans)
            if word:
                results.append((word, word_spans))
        return results

    def _word_pieces(self, word: str) -> list:
        """Greedy longest-match-first WordPiece; returns (token id, start, end) in `word`."""
        if len(word.encode("utf-8")) > MAX_BYTES_PER_WORD:
            return [(self.unknown_token_id, 0, len(word))]
        pieces = []
        start = 0
        while start < len(word):
            end = len(word)
            token_id = None
            while end > start:
                candidate = word[start:end]
                if start > 0:
                    candidate = self.suffix_indicator + candidate
                token_id = self.token_to_id.get(candidate)
                if token_id is not None:
                    break
                end -= 1
            if token_id is None:
                return [(self.unknown_token_id, 0, len(word))]
            pieces.append((token_id, start, end))
            start = end
        return pieces

    def tokenize_with_offsets(self, text: str) -> tuple:
        """Tokenises `text`, returning ids and the original character span of each token.

        Args:
            text: the string.

        Returns:
            (token ids as an int32 array [T], offsets as an int32 array [T, 2] of
            (char_start, char_end) into `text`, so that `text[start:end]` is what the token covers;
            an `[UNK]` covers its whole word).
        """
        cached = self._cache.get(text)
        if cached is not None:
            self._cache.move_to_end(text)
            return cached
        token_ids = []
        offsets = []
        for word, word_spans in self._split_words(text):
            for token_id, start, end in self._word_pieces(word):
                token_ids.append(token_id)
                offsets.append((word_spans[start][0], word_spans[end - 1][1]))
        result = (
            np.asarray(token_ids, dtype=np.int32),
            np.asarray(offsets, dtype=np.int32).reshape(-1, 2),
        )
        result[0].setflags(write=False)
        result[1].setflags(write=False)
        if self.cache_size > 0:
            self._cache[text] = result
            if len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
        return result

    def tokenize(self, text: str) -> np.ndarray:
        """Tokenises `text` into an int32 array of token ids."""
        return self.tokenize_with_offsets(text)[0]

    def id_to_token(self, token_id: int) -> str:
        """The vocabulary token of an id."""
        return self.vocabulary[int(token_id)]


def _read_vocabulary_file(path: str) -> list:
    import tensorflow as tf  # Lazy: only needed for file reading through tf.io.gfile.

    with tf.io.gfile.GFile(path, "r") as file:
        lines = file.read().split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    # Like keras-hub: one token per line, trailing whitespace (and "\r") removed.
    return [line.rstrip() for line in lines]


_KERAS_HUB_CONVERSIONS = weakref.WeakKeyDictionary()


def as_offset_tokenizer(tokenizer: Any) -> WordPieceOffsetTokenizer:
    """Returns a `WordPieceOffsetTokenizer` for a tokenizer, vocabulary list or vocabulary path.

    A keras-hub tokenizer is converted with `WordPieceOffsetTokenizer.from_keras_hub` (the
    conversion is cached per tokenizer object). A vocabulary list or path gets an uncased
    tokenizer (lowercase, accents stripped).

    Args:
        tokenizer: a `WordPieceOffsetTokenizer`, a keras-hub `WordPieceTokenizer`/`BertTokenizer`,
            a list of vocabulary tokens, or a vocabulary file path.

    Returns:
        The offset tokenizer.

    Raises:
        TypeError: for anything else.
    """
    if isinstance(tokenizer, WordPieceOffsetTokenizer):
        return tokenizer
    if isinstance(tokenizer, str) or isinstance(tokenizer, (list, tuple)):
        return WordPieceOffsetTokenizer(tokenizer, lowercase=True)
    if hasattr(tokenizer, "get_vocabulary") and hasattr(tokenizer, "suffix_indicator"):
        try:
            converted = _KERAS_HUB_CONVERSIONS.get(tokenizer)
        except TypeError:
            return WordPieceOffsetTokenizer.from_keras_hub(tokenizer)
        if converted is None:
            converted = WordPieceOffsetTokenizer.from_keras_hub(tokenizer)
            _KERAS_HUB_CONVERSIONS[tokenizer] = converted
        return converted
    raise TypeError(
        "Expected a WordPieceOffsetTokenizer, a keras-hub WordPiece/BERT tokenizer, a vocabulary "
        f"list or a vocabulary path; got {type(tokenizer).__name__}."
    )


@dataclasses.dataclass
class SpanWindow:
    """One model input for a question: the question and one window of its context.

    Attributes:
        question_id: the SQuAD question id the window belongs to.
        window_index: position of the window among the question's windows (0, 1, ...).
        token_ids: int32 [max_sequence_length]; `[CLS] question [SEP] context [SEP] pad`.
        segment_ids: int32 [max_sequence_length]; 0 for `[CLS] question [SEP]` (and padding), 1
            for the context tokens and the final `[SEP]`.
        padding_mask: bool [max_sequence_length]; True for real tokens.
        token_char_offsets: int32 [max_sequence_length, 2]; (char_start, char_end) of context
            tokens in the example's context string, -1 for question, special and padding tokens.
        start_position: target index of the answer's first token; 0 (`[CLS]`) when the answer is
            not inside this window or the question has no answer.
        end_position: target index of the answer's last token; 0 likewise.
        token_is_max_context: bool [max_sequence_length]; True for context tokens whose window is,
            among the windows holding them, the one where they have the most context on both
            sides (the original BERT rule; a decoder may restrict answer starts to them).
    """

    question_id: str
    window_index: int
    token_ids: np.ndarray
    segment_ids: np.ndarray
    padding_mask: np.ndarray
    token_char_offsets: np.ndarray
    start_position: int
    end_position: int
    token_is_max_context: Optional[np.ndarray] = None


def _answer_token_span(offsets: np.ndarray, char_start: int, char_end: int) -> Optional[tuple]:
    """First and last context tokens overlapping [char_start, char_end), or None."""
    if len(offsets) == 0 or char_end <= char_start:
        return None
    overlapping = np.nonzero((offsets[:, 1] > char_start) & (offsets[:, 0] < char_end))[0]
    if len(overlapping) == 0:
        return None
    return int(overlapping[0]), int(overlapping[-1])


def _window_starts(number_of_tokens: int, window_length: int, doc_stride: int) -> list:
    """Context window (start, length) pairs of the original BERT scheme."""
    spans = []
    start = 0
    while True:
        length = min(window_length, number_of_tokens - start)
        spans.append((start, length))
        if start + length >= number_of_tokens:
            break
        start += min(length, doc_stride)
    return spans


def _is_max_context(spans: Sequence, span_index: int, position: int) -> bool:
    """Whether `position` has its largest min(left, right) context (plus a small length bonus)."""
    best_score = None
    best_index = None
    for index, (start, length) in enumerate(spans):
        end = start + length - 1
        if position < start or position > end:
            continue
        score = min(position - start, end - position) + 0.01 * length
        if best_score is None or score > best_score:
            best_score = score
            best_index = index
    return best_index == span_index


def make_windows(
    example: Any,
    tokenizer: Any,
    max_sequence_length: int = 384,
    doc_stride: int = 128,
    max_query_length: int = 64,
) -> list:
    """Cuts one question and its context into BERT question-answering windows.

    The question is tokenised and cut to `max_query_length` tokens; the context is tokenised with
    offsets and covered by windows of `max_sequence_length - len(question) - 3` tokens that start
    every `doc_stride` tokens (the original BERT scheme) until one reaches the end. The target is
    the first gold answer: its first and last overlapping context tokens when both are in the
    window, else 0 (`[CLS]`), as for impossible questions.

    Args:
        example: a `tfmm.data.squad.SquadExample` (anything with question_id, question, context,
            answers as (text, char_start) pairs and is_impossible).
        tokenizer: a `WordPieceOffsetTokenizer`, a keras-hub BERT tokenizer, a vocabulary list or
            a vocabulary path (see `as_offset_tokenizer`; convert once and reuse for speed).
        max_sequence_length: tokens per window, special tokens and padding included.
        doc_stride: distance in tokens between the starts of consecutive context windows.
        max_query_length: the question is cut to this many tokens.

    Returns:
        The windows, at least one.

    Raises:
        ValueError: if the sizes leave no room for context tokens.
    """
    tokenizer = as_offset_tokenizer(tokenizer)
    if doc_stride < 1:
        raise ValueError(f"doc_stride must be positive, got {doc_stride}.")
    if max_query_length < 1:
        raise ValueError(f"max_query_length must be positive, got {max_query_length}.")
    question_ids = tokenizer.tokenize(example.question)[:max_query_length]
    window_length = max_sequence_length - len(question_ids) - 3
    if window_length < 1:
        raise ValueError(
            f"max_sequence_length={max_sequence_length} leaves no room for context after a "
            f"question of {len(question_ids)} tokens (max_query_length={max_query_length})."
        )
    context_ids, context_offsets = tokenizer.tokenize_with_offsets(example.context)

    answer_tokens = None
    if not example.is_impossible and example.answers:
        answer_text, answer_start = example.answers[0]
        answer_tokens = _answer_token_span(
            context_offsets, answer_start, answer_start + len(answer_text)
        )
        if answer_tokens is None:
            logger.warning(
                "Question %s: the answer %r covers no context token; its windows get the "
                "no-answer target.",
                example.question_id,
                answer_text,
            )

    context_begin = len(question_ids) + 2
    windows = []
    spans = _window_starts(len(context_ids), window_length, doc_stride)
    for window_index, (span_start, span_length) in enumerate(spans):
        token_ids = np.full(max_sequence_length, tokenizer.pad_token_id, dtype=np.int32)
        segment_ids = np.zeros(max_sequence_length, dtype=np.int32)
        offsets = np.full((max_sequence_length, 2), -1, dtype=np.int32)
        max_context = np.zeros(max_sequence_length, dtype=bool)
        context_end = context_begin + span_length
        token_ids[0] = tokenizer.cls_token_id
        token_ids[1 : context_begin - 1] = question_ids
        token_ids[context_begin - 1] = tokenizer.sep_token_id
        token_ids[context_begin:context_end] = context_ids[span_start : span_start + span_length]
        token_ids[context_end] = tokenizer.sep_token_id
        segment_ids[context_begin : context_end + 1] = 1
        offsets[context_begin:context_end] = context_offsets[span_start : span_start + span_length]
        for position in range(span_length):
            max_context[context_begin + position] = _is_max_context(
                spans, window_index, span_start + position
            )
        padding_mask = np.zeros(max_sequence_length, dtype=bool)
        padding_mask[: context_end + 1] = True

        start_position = end_position = 0
        if answer_tokens is not None:
            first, last = answer_tokens
            if first >= span_start and last < span_start + span_length:
                start_position = context_begin + first - span_start
                end_position = context_begin + last - span_start
        windows.append(
            SpanWindow(
                question_id=example.question_id,
                window_index=window_index,
                token_ids=token_ids,
                segment_ids=segment_ids,
                padding_mask=padding_mask,
                token_char_offsets=offsets,
                start_position=start_position,
                end_position=end_position,
                token_is_max_context=max_context,
            )
        )
    return windows


def make_windows_for_examples(
    examples: Iterable,
    tokenizer: Any,
    max_sequence_length: int = 384,
    doc_stride: int = 128,
    max_query_length: int = 64,
) -> list:
    """`make_windows` over many examples; returns one flat list, in example order.

    Args:
        examples: SquadExample-like objects.
        tokenizer: see `make_windows` (converted once here).
        max_sequence_length: tokens per window.
        doc_stride: distance between window starts.
        max_query_length: question length cap in tokens.

    Returns:
        All windows.
    """
    tokenizer = as_offset_tokenizer(tokenizer)
    windows = []
    for example in examples:
        windows.extend(
            make_windows(example, tokenizer, max_sequence_length, doc_stride, max_query_length)
        )
    return windows


def windows_to_arrays(windows: Sequence[SpanWindow]) -> dict:
    """Stacks windows into arrays for `tf.data.Dataset.from_tensor_slices`.

    Args:
        windows: windows of equal `max_sequence_length`.

    Returns:
        {"token_ids": int32 [N, L], "segment_ids": int32 [N, L], "padding_mask": bool [N, L],
        "start_positions": int32 [N], "end_positions": int32 [N]}.

    Raises:
        ValueError: if `windows` is empty.
    """
    if not windows:
        raise ValueError("No windows to stack.")
    return {
        "token_ids": np.stack([window.token_ids for window in windows]).astype(np.int32),
        "segment_ids": np.stack([window.segment_ids for window in windows]).astype(np.int32),
        "padding_mask": np.stack([window.padding_mask for window in windows]).astype(bool),
        "start_positions": np.asarray([w.start_position for w in windows], dtype=np.int32),
        "end_positions": np.asarray([w.end_position for w in windows], dtype=np.int32),
    }
