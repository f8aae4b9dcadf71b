"""Tests of the pure-Python oracle (tests/helpers/span_windows_oracle.py): offsets, keras-hub id
agreement, windows. The graph path is tested against it in test_span_preprocessor.py."""

import json

import numpy as np
import pytest

from tfmm.data.squad import SquadExample, load_squad_file
from tfmm.evaluation.squad_metrics import normalize_answer
from helpers.span_windows_oracle import (
    WordPieceOffsetTokenizer,
    as_offset_tokenizer,
    make_windows,
    make_windows_for_examples,
    windows_to_arrays,
)
from helpers.tiny_squad import AGREEMENT_TEXTS, minilm_vocabulary_path, xquad_path
from helpers.tiny_squad import UNICODE_VOCABULARY as VOCABULARY


@pytest.fixture(scope="module")
def tokenizer():
    return WordPieceOffsetTokenizer(VOCABULARY, lowercase=True)


def tokens_and_slices(tokenizer, text):
    token_ids, offsets = tokenizer.tokenize_with_offsets(text)
    return [
        (tokenizer.id_to_token(i), text[start:end]) for i, (start, end) in zip(token_ids, offsets)
    ]


def target_text(context, window):
    """The context slice of a window's target span."""
    offsets = window.token_char_offsets
    return context[offsets[window.start_position][0] : offsets[window.end_position][1]]


# --- Tokenisation with offsets -------------------------------------------------------------------


def test_offsets_plain_words_and_wordpieces(tokenizer):
    assert tokens_and_slices(tokenizer, "The quick foxes.") == [
        ("the", "The"), ("quick", "quick"), ("fox", "fox"), ("##es", "es"), (".", "."),
    ]


def test_offsets_whitespace_runs_and_newlines(tokenizer):
    text = "  the \t\n\n quick\r\nbrown\x0bfox  "
    token_ids, offsets = tokenizer.tokenize_with_offsets(text)
    assert [tokenizer.id_to_token(i) for i in token_ids] == ["the", "quick", "brown", "fox"]
    assert offsets.tolist() == [[2, 5], [10, 15], [17, 22], [23, 26]]


def test_unicode_spaces_behave_like_keras_hub(tokenizer):
    # Only ASCII whitespace and control/format characters separate words (as in keras-hub's
    # regex split); a no-break space stays inside the word and case folding turns it into a
    # space, so the word is unknown. Zero-width spaces (format characters) do separate.
    assert tokens_and_slices(tokenizer, "a\u00a0b fox") == [("[UNK]", "a\u00a0b"), ("fox", "fox")]
    assert tokens_and_slices(tokenizer, "fox\u200bfox") == [("fox", "fox"), ("fox", "fox")]


def test_offsets_accents_map_back_to_original_characters(tokenizer):
    text = "Café au lait, naïve étude"
    assert tokens_and_slices(tokenizer, text) == [
        ("cafe", "Café"), ("au", "au"), ("lait", "lait"), (",", ","), ("naive", "naïve"),
        ("et", "ét"), ("##ude", "ude"),
    ]
    decomposed = "Cafe\u0301 NAI\u0308VE"  # combining accents: the token covers base and mark
    assert tokens_and_slices(tokenizer, decomposed) == [
        ("cafe", "Cafe\u0301"), ("naive", "NAI\u0308VE"),
    ]


def test_offsets_cjk_emoji_and_expanding_characters(tokenizer):
    assert tokens_and_slices(tokenizer, "北京fox") == [
        ("北", "北"), ("京", "京"), ("fox", "fox"),
    ]
    assert tokens_and_slices(tokenizer, "fox😀 fox") == [("[UNK]", "fox😀"), ("fox", "fox")]
    # "ß" case-folds to "ss", split over two pieces that both map to the original "ß".
    assert tokens_and_slices(tokenizer, "Straße") == [
        ("st", "St"), ("##ras", "raß"), ("##se", "ße"),
    ]
    # The "ﬁ" ligature folds to "fi".
    assert tokens_and_slices(tokenizer, "ﬁne") == [("fine", "ﬁne")]
    assert tokens_and_slices(tokenizer, "1990s unaffable") == [
        ("1990", "1990"), ("##s", "s"), ("un", "un"), ("##aff", "aff"), ("##able", "able"),
    ]


def test_unknown_and_overlong_words(tokenizer):
    assert tokens_and_slices(tokenizer, "zebra fox") == [("[UNK]", "zebra"), ("fox", "fox")]
    long_word = "w1" * 51  # 102 bytes
    token_ids, offsets = tokenizer.tokenize_with_offsets(long_word)
    assert token_ids.tolist() == [tokenizer.unknown_token_id]
    assert offsets.tolist() == [[0, 102]]
    assert tokenizer.tokenize("").tolist() == []
    assert tokenizer.tokenize_with_offsets(" \n ")[1].shape == (0, 2)


def test_cased_tokenizer_keeps_case_and_accents():
    cased = WordPieceOffsetTokenizer(VOCABULARY + ["Café", "The"], lowercase=False)
    assert cased.strip_accents is False
    assert tokens_and_slices(cased, "The Café the") == [
        ("The", "The"), ("Café", "Café"), ("the", "the"),
    ]


def test_missing_special_token_is_an_error():
    with pytest.raises(ValueError, match="SEP"):
        WordPieceOffsetTokenizer(["[PAD]", "[UNK]", "[CLS]", "the"])


def test_vocabulary_file_and_keras_hub_conversion(tmp_path):
    keras_hub = pytest.importorskip("keras_hub")
    path = tmp_path / "vocab.txt"
    path.write_text("\n".join(VOCABULARY) + "\n", encoding="utf-8")
    from_file = WordPieceOffsetTokenizer.from_vocabulary_file(str(path))
    assert from_file.vocabulary == VOCABULARY
    keras_tokenizer = keras_hub.tokenizers.BertTokenizer(vocabulary=VOCABULARY, lowercase=True)
    converted = as_offset_tokenizer(keras_tokenizer)
    assert converted.lowercase and not converted.strip_accents  # keras-hub's default
    assert as_offset_tokenizer(keras_tokenizer) is converted  # cached
    assert as_offset_tokenizer(str(path)).vocabulary == VOCABULARY
    with pytest.raises(TypeError):
        as_offset_tokenizer(42)


@pytest.mark.parametrize("strip_accents", [True, False])
def test_ids_match_keras_hub_on_hand_vocabulary(strip_accents):
    keras_hub = pytest.importorskip("keras_hub")
    keras_tokenizer = keras_hub.tokenizers.BertTokenizer(
        vocabulary=VOCABULARY, lowercase=True, strip_accents=strip_accents
    )
    ours = WordPieceOffsetTokenizer.from_keras_hub(keras_tokenizer)
    for text in AGREEMENT_TEXTS:
        assert ours.tokenize(text).tolist() == np.asarray(keras_tokenizer(text)).tolist(), text


def real_texts():
    with open(xquad_path(), encoding="utf-8") as file:
        data = json.load(file)
    texts = []
    for article in data["data"]:
        for paragraph in article["paragraphs"]:
            texts.append(paragraph["context"])
            texts.extend(qa["question"] for qa in paragraph["qas"])
    return texts + AGREEMENT_TEXTS


@pytest.mark.parametrize("strip_accents", [True, False])
def test_ids_match_keras_hub_on_minilm_vocabulary_and_real_text(strip_accents):
    """Every XQuAD context and question: same ids as keras-hub (Python and tf.data paths)."""
    keras_hub = pytest.importorskip("keras_hub")
    tf = pytest.importorskip("tensorflow")
    texts = real_texts()
    keras_tokenizer = keras_hub.tokenizers.BertTokenizer(
        vocabulary=minilm_vocabulary_path(), lowercase=True, strip_accents=strip_accents
    )
    ours = WordPieceOffsetTokenizer.from_keras_hub(keras_tokenizer)
    our_ids = [ours.tokenize(text).tolist() for text in texts]
    python_path_ids = [np.asarray(keras_tokenizer(text)).tolist() for text in texts]
    graph_dataset = tf.data.Dataset.from_tensor_slices(texts).map(keras_tokenizer)
    graph_path_ids = [row.numpy().tolist() for row in graph_dataset]
    assert len(texts) > 900
    assert [i for i in range(len(texts)) if our_ids[i] != python_path_ids[i]] == []
    assert [i for i in range(len(texts)) if our_ids[i] != graph_path_ids[i]] == []


def test_offsets_cover_the_token_text_on_real_contexts():
    """Each token's original slice, tokenised again, spells out the token's characters."""
    tokenizer = WordPieceOffsetTokenizer.from_vocabulary_file(minilm_vocabulary_path())
    with open(xquad_path(), encoding="utf-8") as file:
        data = json.load(file)
    contexts = [p["context"] for article in data["data"] for p in article["paragraphs"]]
    checked = 0
    for context in contexts:
        token_ids, offsets = tokenizer.tokenize_with_offsets(context)
        assert np.all(offsets[:, 0] < offsets[:, 1])
        assert np.all(np.diff(offsets[:, 0]) >= 0)
        for token_id, (start, end) in zip(token_ids, offsets):
            token = tokenizer.id_to_token(token_id)
            piece = token[2:] if token.startswith("##") else token
            again = [tokenizer.id_to_token(i) for i in tokenizer.tokenize(context[start:end])]
            spelled = "".join(t[2:] if t.startswith("##") else t for t in again)
            assert piece in spelled, (token, context[start:end], again)
            checked += 1
    assert checked > 20000


# --- Windows -------------------------------------------------------------------------------------


def numbered_example(answer_words, number_of_words=30, question="who", impossible=False):
    """Context "w0 w1 ... wN" (one token per word); the answer is a run of words."""
    words = [f"w{index}" for index in range(number_of_words)]
    context = " ".join(words)
    answers = ()
    if not impossible:
        first, last = answer_words
        char_start = len(" ".join(words[:first])) + (1 if first > 0 else 0)
        text = " ".join(words[first : last + 1])
        assert context[char_start : char_start + len(text)] == text
        answers = ((text, char_start),)
    return SquadExample("q-1", "Numbers", question, context, answers, impossible)


def window_starts(windows):
    """The context word each window starts with (context begins after [CLS] q [SEP])."""
    return [int(window.token_ids[3]) for window in windows]


def test_window_layout(tokenizer):
    example = numbered_example((5, 6), number_of_words=8, question="Who is?")
    (window,) = make_windows(example, tokenizer, max_sequence_length=20, doc_stride=4)
    vocabulary = tokenizer.token_to_id
    question_ids = [vocabulary["who"], vocabulary["is"], vocabulary["?"]]
    context_ids = [vocabulary[f"w{index}"] for index in range(8)]
    expected = [vocabulary["[CLS]"]] + question_ids + [vocabulary["[SEP]"]] + context_ids + [
        vocabulary["[SEP]"]
    ]
    expected += [vocabulary["[PAD]"]] * (20 - len(expected))
    assert window.token_ids.tolist() == expected
    assert window.segment_ids.tolist() == [0] * 5 + [1] * 9 + [0] * 6
    assert window.padding_mask.tolist() == [True] * 14 + [False] * 6
    assert window.token_ids.dtype == np.int32 and window.token_char_offsets.shape == (20, 2)
    assert np.all(window.token_char_offsets[:5] == -1)
    assert np.all(window.token_char_offsets[13:] == -1)
    assert window.token_char_offsets[5].tolist() == [0, 2]
    assert (window.start_position, window.end_position) == (5 + 5, 5 + 6)
    assert target_text(example.context, window) == "w5 w6"


def test_window_strides_follow_the_bert_scheme(tokenizer):
    example = numbered_example((0, 0))
    windows = make_windows(example, tokenizer, max_sequence_length=16, doc_stride=4)
    # 12 context tokens per window, starts every 4 tokens until one reaches the end (30 tokens).
    first_token = tokenizer.token_to_id["w0"]
    assert [start - first_token for start in window_starts(windows)] == [0, 4, 8, 12, 16, 20]
    assert [window.window_index for window in windows] == list(range(6))
    assert int(windows[-1].padding_mask.sum()) == 3 + 10 + 1
    # Every context token is "max context" in exactly one window.
    counts = np.zeros(30, dtype=int)
    for window in windows:
        for position in np.nonzero(window.token_is_max_context)[0]:
            counts[int(window.token_ids[position]) - first_token] += 1
    assert counts.tolist() == [1] * 30


def test_answer_at_first_context_token(tokenizer):
    windows = make_windows(
        numbered_example((0, 0)), tokenizer, max_sequence_length=16, doc_stride=4
    )
    assert [(w.start_position, w.end_position) for w in windows] == [(3, 3)] + [(0, 0)] * 5


def test_answer_at_last_context_token(tokenizer):
    windows = make_windows(
        numbered_example((29, 29)), tokenizer, max_sequence_length=16, doc_stride=4
    )
    # Only the last window (context tokens 20..29) holds it, at its last context position 3 + 9.
    assert [(w.start_position, w.end_position) for w in windows] == [(0, 0)] * 5 + [(12, 12)]
    assert windows[-1].token_ids[13] == tokenizer.sep_token_id


def test_answer_at_window_edges(tokenizer):
    # Windows hold context tokens [0, 12), [4, 16), [8, 20), [12, 24), [16, 28), [20, 30).
    def targets(first, last):
        windows = make_windows(
            numbered_example((first, last)), tokenizer, max_sequence_length=16, doc_stride=4
        )
        return [(w.start_position, w.end_position) for w in windows]

    # Token 11 is the last context token of window 0 (slot 3 + 11 = 14, right before [SEP]).
    assert targets(11, 11) == [(14, 14), (10, 10), (6, 6), (0, 0), (0, 0), (0, 0)]
    # Tokens 11..12 cross window 0's end and window 3's start: only windows 1 and 2 hold both.
    assert targets(11, 12) == [(0, 0), (10, 11), (6, 7), (0, 0), (0, 0), (0, 0)]
    # Token 12 is the first context token of window 3 (slot 3).
    assert targets(12, 13) == [(0, 0), (11, 12), (7, 8), (3, 4), (0, 0), (0, 0)]


def test_answer_in_the_overlap_of_two_windows(tokenizer):
    # Windows of 12 tokens every 8: [0, 12) and [8, 20); tokens 9..10 are in both.
    example = numbered_example((9, 10), number_of_words=20)
    windows = make_windows(example, tokenizer, max_sequence_length=16, doc_stride=8)
    assert len(windows) == 2
    assert [(w.start_position, w.end_position) for w in windows] == [(12, 13), (4, 5)]
    for window in windows:
        assert target_text(example.context, window) == "w9 w10"
    # Straddling the overlap's end: tokens 11..12 are whole only in the second window.
    example = numbered_example((11, 12), number_of_words=20)
    windows = make_windows(example, tokenizer, max_sequence_length=16, doc_stride=8)
    assert [(w.start_position, w.end_position) for w in windows] == [(0, 0), (6, 7)]


def test_impossible_question_targets_cls(tokenizer):
    windows = make_windows(numbered_example(None, impossible=True), tokenizer, 16, 4)
    assert all(w.start_position == 0 and w.end_position == 0 for w in windows)


def test_max_query_length_truncation(tokenizer):
    question = " ".join(f"q{index}" for index in range(10))
    example = numbered_example((2, 3), number_of_words=6, question=question)
    (window,) = make_windows(example, tokenizer, max_sequence_length=32, max_query_length=4)
    vocabulary = tokenizer.token_to_id
    assert window.token_ids[:6].tolist() == [vocabulary["[CLS]"]] + [
        vocabulary[f"q{index}"] for index in range(4)
    ] + [vocabulary["[SEP]"]]
    assert window.token_ids[6] == vocabulary["w0"]
    assert (window.start_position, window.end_position) == (6 + 2, 6 + 3)
    assert window.segment_ids[:6].tolist() == [0] * 6 and window.segment_ids[6] == 1


def test_too_small_sequence_is_an_error(tokenizer):
    with pytest.raises(ValueError, match="no room"):
        make_windows(
            numbered_example((0, 0), question="q1 q2 q3"), tokenizer, max_sequence_length=6
        )


def test_unicode_context_answers_map_back(tokenizer):
    context = "Café  au\n\nlait, 北京 😀 fox\u0301es!\tend"
    for answer in ["北京", "lait", "Café  au", "fox\u0301es"]:
        start = context.index(answer)
        example = SquadExample("q-2", "Unicode", "what?", context, ((answer, start),), False)
        (window,) = make_windows(example, tokenizer, max_sequence_length=40)
        assert window.start_position > 0
        assert target_text(context, window) == answer


def test_answer_inside_a_token_extends_to_the_token(tokenizer):
    context = "the 1990s fox"
    example = SquadExample("q-3", "T", "what?", context, (("1990", 4),), False)
    (window,) = make_windows(example, tokenizer, max_sequence_length=16)
    # [CLS] what ? [SEP] the 1990 ##s fox: "1990" is slot 5.
    assert (window.start_position, window.end_position) == (5, 5)
    example = SquadExample("q-4", "T", "what?", context, (("990s", 5),), False)
    (window,) = make_windows(example, tokenizer, max_sequence_length=16)
    assert (window.start_position, window.end_position) == (5, 6)


def test_windows_to_arrays(tokenizer):
    windows = make_windows_for_examples(
        [numbered_example((0, 1)), numbered_example((20, 21))], tokenizer, max_sequence_length=16,
        doc_stride=8,
    )
    arrays = windows_to_arrays(windows)
    assert set(arrays) == {
        "token_ids", "segment_ids", "padding_mask", "start_positions", "end_positions",
    }
    assert arrays["token_ids"].shape == (len(windows), 16) and arrays["token_ids"].dtype == np.int32
    assert arrays["segment_ids"].dtype == np.int32 and arrays["padding_mask"].dtype == bool
    assert arrays["start_positions"].tolist() == [w.start_position for w in windows]
    assert arrays["end_positions"].dtype == np.int32
    with pytest.raises(ValueError):
        windows_to_arrays([])
    tf = pytest.importorskip("tensorflow")
    dataset = tf.data.Dataset.from_tensor_slices(arrays).batch(2)
    batch = next(iter(dataset))
    assert batch["token_ids"].shape == (2, 16)


def test_real_answers_are_recovered_from_windows():
    """On XQuAD with small windows, each gold answer is recovered from the target offsets."""
    tokenizer = WordPieceOffsetTokenizer.from_vocabulary_file(minilm_vocabulary_path())
    examples = load_squad_file(xquad_path())
    windows = make_windows_for_examples(examples, tokenizer, max_sequence_length=96, doc_stride=32)
    contexts = {example.question_id: example for example in examples}
    assert len(windows) > 2 * len(examples)
    answered = set()
    matches = 0
    total = 0
    for window in windows:
        if window.start_position == 0:
            continue
        assert 0 < window.start_position <= window.end_position < 96
        assert window.segment_ids[window.start_position] == 1
        example = contexts[window.question_id]
        offsets = window.token_char_offsets
        recovered = target_text(example.context, window)
        answer_text, answer_start = example.answers[0]
        # The recovered span covers the answer and only extends to token boundaries.
        assert offsets[window.start_position][0] <= answer_start
        assert offsets[window.end_position][1] >= answer_start + len(answer_text)
        total += 1
        matches += normalize_answer(recovered) == normalize_answer(answer_text)
        answered.add(window.question_id)
    assert len(answered) == len(examples)  # short answers always fit in some window
    assert matches / total > 0.97
