"""Reads SQuAD v1.1 / v2.0 question-answering data into a flat, validated list of examples.

The SQuAD JSON format is `{"version": ..., "data": [article, ...]}` where an article is
`{"title", "paragraphs": [{"context", "qas": [{"id", "question", "answers": [{"text",
"answer_start"}], "is_impossible" (v2.0 only)}]}]}`. Every question becomes one `SquadExample`
carrying its paragraph's context. Problems stop the load with a `SquadFormatError` naming the file,
the article title, the question id and what is wrong, e.g.

    dev.json: article 'Super_Bowl_50', question 56be4db0acb8001400a502ec: answer 0 'Denver
    Broncos' does not match the context at answer_start 177 (the context has 'enver Broncos ')

Example:
    examples = load_squad_file("dev-v1.1.json")
    train_examples, test_examples = split_by_article(examples, test_fraction=0.2, seed=0)
"""

import dataclasses
import json
import logging
import math
import random
from typing import Any, Optional, Sequence

import tensorflow as tf
from tfmm.errors import UserError
from tfmm.preprocessing.bert_presets import root_cause

logger = logging.getLogger(__name__)

TFDS_VERSIONS = ("v1.1", "v2.0")


class SquadFormatError(UserError, ValueError):
    """A SQuAD file (or TFDS record) that does not fit the SQuAD format."""


class TfdsDownloadError(UserError):
    """SQuAD from TensorFlow Datasets is unavailable: the package or the network is missing."""


@dataclasses.dataclass(frozen=True)
class SquadExample:
    """One question with its context paragraph.

    Attributes:
        question_id: the SQuAD `id` of the question.
        title: the title of the article the paragraph belongs to.
        question: the question text.
        context: the paragraph text; answers are character spans of it.
        answers: the gold answers as (text, char_start) pairs, so that
            `context[char_start:char_start + len(text)] == text`; empty for impossible questions.
        is_impossible: True for SQuAD v2.0 questions without an answer in the context.
    """

    question_id: str
    title: str
    question: str
    context: str
    answers: tuple
    is_impossible: bool = False

    @property
    def answer_texts(self) -> list:
        """The gold answer texts."""
        return [text for text, _ in self.answers]


def _excerpt(text: str, limit: int = 40) -> str:
    return repr(text if len(text) <= limit else text[:limit] + "...")


def _parse_answers(raw_answers: Any, context: str, where: str) -> tuple:
    if not isinstance(raw_answers, list):
        raise SquadFormatError(
            f"{where}: 'answers' must be a list, got {type(raw_answers).__name__}"
        )
    answers = []
    for answer_index, answer in enumerate(raw_answers):
        if not isinstance(answer, dict):
            raise SquadFormatError(f"{where}: answer {answer_index} is not an object")
        text = answer.get("text")
        start = answer.get("answer_start")
        if not isinstance(text, str) or not text:
            raise SquadFormatError(f"{where}: answer {answer_index} has a missing or empty 'text'")
        if isinstance(start, bool) or not isinstance(start, int):
            raise SquadFormatError(
                f"{where}: answer {answer_index} {_excerpt(text)} has a missing or non-integer "
                f"'answer_start' ({start!r})"
            )
        found = context[start : start + len(text)] if start >= 0 else ""
        if start < 0 or found != text:
            raise SquadFormatError(
                f"{where}: answer {answer_index} {_excerpt(text)} does not match the context at "
                f"answer_start {start} (the context has {_excerpt(found)}; context length "
                f"{len(context)})"
            )
        answers.append((text, start))
    return tuple(answers)


def _parse_question(
    qa: Any, context: Optional[str], title: str, location: str, is_version_2: bool
) -> SquadExample:
    if not isinstance(qa, dict):
        raise SquadFormatError(f"{location}: a question entry is not an object")
    question_id = qa.get("id")
    if not isinstance(question_id, str) or not question_id:
        if isinstance(question_id, int) and not isinstance(question_id, bool):
            question_id = str(question_id)
        else:
            raise SquadFormatError(
                f"{location}: a question has a missing or empty 'id' (question "
                f"{_excerpt(str(qa.get('question', '')))})"
            )
    where = f"{location}, question {question_id}"
    if context is None:
        raise SquadFormatError(f"{where}: the paragraph has no 'context' string")
    question = qa.get("question")
    if not isinstance(question, str) or not question.strip():
        raise SquadFormatError(f"{where}: missing or empty 'question'")
    answers = _parse_answers(qa.get("answers", []), context, where)
    # A v2.0 question without the flag is impossible exactly when it has no answers (the official
    # v2.0 evaluation's rule); v1.1 questions are never impossible unless flagged.
    is_impossible = qa.get("is_impossible", is_version_2 and not answers)
    if not isinstance(is_impossible, bool):
        raise SquadFormatError(
            f"{where}: 'is_impossible' must be true or false, got {is_impossible!r}"
        )
    if is_impossible and answers:
        raise SquadFormatError(f"{where}: is_impossible is true but it has {len(answers)} answers")
    if not is_impossible and not answers:
        version_note = "" if is_version_2 else " (SQuAD v1.1 questions must have an answer)"
        raise SquadFormatError(
            f"{where}: no answers for a question that is not impossible{version_note}"
        )
    return SquadExample(
        question_id=question_id,
        title=title,
        question=question,
        context=context,
        answers=answers,
        is_impossible=is_impossible,
    )


def parse_squad_json(data: Any, source: str = "<squad>", skip_invalid: bool = False) -> list:
    """Turns a parsed SQuAD JSON object into a flat list of validated examples.

    Args:
        data: the decoded JSON object, `{"version": ..., "data": [...]}`.
        source: the name used in error messages (the file path).
        skip_invalid: log and skip invalid questions instead of raising (a malformed file
            structure still raises).

    Returns:
        The examples, in file order.

    Raises:
        SquadFormatError: on the first problem (unless skipped), naming the source, the article
            title, the question id and the problem.
    """
    if not isinstance(data, dict) or not isinstance(data.get("data"), list):
        raise SquadFormatError(f"{source}: expected a JSON object with a 'data' list of articles")
    version = str(data.get("version", ""))
    is_version_2 = version.lstrip("v").startswith("2")
    examples = []
    seen_ids = {}
    skipped = 0
    for article_index, article in enumerate(data["data"]):
        if not isinstance(article, dict):
            raise SquadFormatError(f"{source}: article {article_index} is not an object")
        title = article.get("title", "")
        if not isinstance(title, str):
            title = str(title)
        article_name = f"article {title!r}" if title else f"article {article_index} (untitled)"
        paragraphs = article.get("paragraphs")
        if not isinstance(paragraphs, list):
            raise SquadFormatError(f"{source}: {article_name}: missing 'paragraphs' list")
        for paragraph_index, paragraph in enumerate(paragraphs):
            location = f"{source}: {article_name}, paragraph {paragraph_index}"
            if not isinstance(paragraph, dict):
                raise SquadFormatError(f"{location}: the paragraph is not an object")
            qas = paragraph.get("qas")
            if not isinstance(qas, list):
                raise SquadFormatError(f"{location}: missing 'qas' list")
            context = paragraph.get("context")
            if not isinstance(context, str):
                context = None
            for qa in qas:
                try:
                    example = _parse_question(qa, context, title, location, is_version_2)
                    if example.question_id in seen_ids:
                        raise SquadFormatError(
                            f"{location}, question {example.question_id}: duplicate question id "
                            f"(first seen in {seen_ids[example.question_id]})"
                        )
                except SquadFormatError as error:
                    if not skip_invalid:
                        raise
                    logger.warning("Skipping an invalid question: %s", error)
                    skipped += 1
                    continue
                seen_ids[example.question_id] = article_name
                examples.append(example)
    if skipped:
        logger.warning("%s: skipped %d invalid questions, kept %d.", source, skipped, len(examples))
    return examples


def load_squad_file(path: str, skip_invalid: bool = False) -> list:
    """Reads a SQuAD v1.1 or v2.0 JSON file (any `tf.io.gfile` path).

    Args:
        path: the JSON file.
        skip_invalid: log and skip invalid questions instead of raising.

    Returns:
        A flat list of `SquadExample`, in file order.

    Raises:
        SquadFormatError: if the file is not valid JSON or not valid SQuAD (the message names the
            file, article title, question id and problem).
        FileNotFoundError: if the file does not exist.
    """
    if not tf.io.gfile.exists(path):
        raise FileNotFoundError(f"SQuAD file not found: {path}")
    with tf.io.gfile.GFile(path, "r") as file:
        text = file.read()
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise SquadFormatError(f"{path}: invalid JSON ({error})") from error
    return parse_squad_json(data, source=path, skip_invalid=skip_invalid)


def split_by_article(
    examples: Sequence[SquadExample], test_fraction: float, seed: int = 0
) -> tuple:
    """Splits examples into train and test sets with no article in both.

    Articles (grouped by title) are shuffled with `seed` and the first
    `round(test_fraction * number_of_articles)` go to the test set (at least one article on each
    side when there are two or more articles and 0 < test_fraction < 1). The result depends only
    on the examples, the fraction and the seed; each side keeps the input order.

    Args:
        examples: the examples.
        test_fraction: share of articles for the test set, in [0, 1].
        seed: shuffling seed.

    Returns:
        (train examples, test examples).

    Raises:
        ValueError: if test_fraction is outside [0, 1].
    """
    if not 0.0 <= test_fraction <= 1.0:
        raise ValueError(f"test_fraction must be in [0, 1], got {test_fraction}.")
    titles = sorted({example.title for example in examples})
    random.Random(seed).shuffle(titles)
    test_count = int(math.floor(test_fraction * len(titles) + 0.5))
    if len(titles) >= 2 and 0.0 < test_fraction < 1.0:
        test_count = min(max(test_count, 1), len(titles) - 1)
    test_titles = set(titles[:test_count])
    train = [example for example in examples if example.title not in test_titles]
    test = [example for example in examples if example.title in test_titles]
    return train, test


def _decode(value: Any) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def examples_from_tfds_records(records: Any, version: str = "v1.1", source: str = "tfds") -> list:
    """Converts TFDS `squad` records (as NumPy dictionaries) into validated examples.

    Args:
        records: an iterable of dictionaries with the TFDS squad features (`id`, `title`,
            `context`, `question`, `answers` {`text`, `answer_start`}, and for v2.0
            `is_impossible`), strings as bytes or str.
        version: "v1.1" or "v2.0".
        source: the name used in error messages.

    Returns:
        The examples, in record order.

    Raises:
        SquadFormatError: for an invalid record.
    """
    articles = []
    for record in records:
        answers = record.get("answers", {})
        texts = [_decode(text) for text in answers.get("text", [])]
        starts = [int(start) for start in answers.get("answer_start", [])]
        qa = {
            "id": _decode(record["id"]),
            "question": _decode(record["question"]),
            "answers": [{"text": t, "answer_start": s} for t, s in zip(texts, starts)],
        }
        if "is_impossible" in record:
            qa["is_impossible"] = bool(record["is_impossible"])
        articles.append(
            {
                "title": _decode(record.get("title", "")),
                "paragraphs": [{"context": _decode(record["context"]), "qas": [qa]}],
            }
        )
    return parse_squad_json({"version": version, "data": articles}, source=source)


def load_tfds_squad(
    version: str = "v1.1", split: str = "validation", data_dir: Optional[str] = None
) -> list:
    """Loads SQuAD from TensorFlow Datasets (`squad/v1.1` or `squad/v2.0`; downloads when online).

    Args:
        version: "v1.1" or "v2.0".
        split: a TFDS split, e.g. "train" or "validation".
        data_dir: TFDS data folder; None for the TFDS default.

    Returns:
        A flat list of `SquadExample`, as `load_squad_file` gives.

    Raises:
        ValueError: for an unknown version.
        TfdsDownloadError: tensorflow_datasets cannot be imported, or the download failed
            (offline); the message names the offline alternative.
    """
    if version not in TFDS_VERSIONS:
        raise ValueError(f"version must be one of {TFDS_VERSIONS}, got {version!r}.")
    offline = ("offline, leave qa.tfds_version empty and set qa.train_file (and qa.eval_file) to "
               f"a local SQuAD {version} JSON file such as "
               f"{'train-v1.1.json' if version == 'v1.1' else 'train-v2.0.json'}")
    try:
        import tensorflow_datasets as tfds  # Lazy: heavy, and only needed online.
    except ImportError as error:
        raise TfdsDownloadError(f"qa.tfds_version={version!r}: tensorflow_datasets cannot be "
                                f"imported ({error}); reinstall tfmm (`pip install -e .`) or, "
                                f"{offline}") from None
    try:
        dataset = tfds.load(f"squad/{version}", split=split, data_dir=data_dir)
    except OSError as error:  # requests' ConnectionError and urllib's URLError are OSErrors
        raise TfdsDownloadError(f"qa.tfds_version={version!r}: downloading squad/{version} "
                                f"through TensorFlow Datasets failed ({type(error).__name__}: "
                                f"{root_cause(error)}); {offline}") from None
    return examples_from_tfds_records(
        tfds.as_numpy(dataset), version=version, source=f"tfds squad/{version} {split}"
    )
