"""Tests for tfmm.data.squad: reading, validation messages, article splits, TFDS records."""

import copy

import pytest
from helpers.tiny_squad import UNICODE_CONTEXT as CONTEXT
from helpers.tiny_squad import unicode_squad, write_squad_file, xquad_path

from tfmm.data.squad import (
    SquadExample,
    SquadFormatError,
    examples_from_tfds_records,
    load_squad_file,
    load_tfds_squad,
    parse_squad_json,
    split_by_article,
)

def test_load_v1(tmp_path):
    examples = load_squad_file(write_squad_file(tmp_path / "squad.json", unicode_squad()))
    assert [example.question_id for example in examples] == ["q1", "q2", "q3"]
    first = examples[0]
    assert first == SquadExample(
        question_id="q1",
        title="Super_Bowl_50",
        question="Who won Super Bowl 50?",
        context=CONTEXT,
        answers=(("Denver Broncos", 29), ("the Denver Broncos", 25)),
        is_impossible=False,
    )
    assert first.answer_texts == ["Denver Broncos", "the Denver Broncos"]
    third = examples[2]
    assert third.context[21:24] == "2 €" and third.title == "Café"


def test_load_v2_with_impossible_questions(tmp_path):
    examples = load_squad_file(write_squad_file(tmp_path / "squad.json", unicode_squad("v2.0")))
    by_id = {example.question_id: example for example in examples}
    assert by_id["q4"].is_impossible and by_id["q4"].answers == ()
    assert not by_id["q1"].is_impossible
    # A v2.0 question without the flag is impossible exactly when it has no answers.
    data = unicode_squad("v2.0")
    del data["data"][0]["paragraphs"][0]["qas"][2]["is_impossible"]
    assert parse_squad_json(data)[2].is_impossible


def break_data(mutate, version=1):
    data = unicode_squad() if version == 1 else unicode_squad("v2.0")
    mutate(data)
    return data


def first_paragraph(data):
    return data["data"][0]["paragraphs"][0]


def first_question(data):
    return first_paragraph(data)["qas"][0]


BROKEN_FILES = {
    "missing context": (lambda d: first_paragraph(d).pop("context"), "no 'context'"),
    "missing question": (
        lambda d: first_question(d).pop("question"),
        "missing or empty 'question'",
    ),
    "empty question": (
        lambda d: first_question(d).update(question="  "),
        "missing or empty 'question'",
    ),
    "offset mismatch": (
        lambda d: first_question(d)["answers"][0].update(answer_start=30),
        "does not match the context at answer_start 30",
    ),
    "offset past the end": (
        lambda d: first_question(d)["answers"][0].update(answer_start=500),
        "answer_start 500",
    ),
    "missing answers": (lambda d: first_question(d).pop("answers"), "no answers"),
    "empty answers": (lambda d: first_question(d).update(answers=[]), "SQuAD v1.1 questions must"),
    "empty answer text": (
        lambda d: first_question(d)["answers"][0].update(text=""),
        "missing or empty 'text'",
    ),
    "non-integer start": (
        lambda d: first_question(d)["answers"][0].update(answer_start="29"),
        "non-integer 'answer_start'",
    ),
    "impossible with answers": (
        lambda d: first_question(d).update(is_impossible=True),
        "is_impossible is true",
    ),
    "duplicate id": (
        lambda d: first_paragraph(d)["qas"][1].update(id="q1"),
        "duplicate question id",
    ),
}


@pytest.mark.parametrize("case", sorted(BROKEN_FILES))
def test_bad_file_messages_name_file_title_and_question(tmp_path, case):
    mutate, problem = BROKEN_FILES[case]
    path = write_squad_file(tmp_path / "broken.json", break_data(mutate))
    with pytest.raises(SquadFormatError) as error:
        load_squad_file(path)
    message = str(error.value)
    assert "broken.json" in message
    assert "'Super_Bowl_50'" in message
    assert "question q1" in message
    assert problem in message


def test_v2_possible_question_without_answers_is_an_error():
    data = unicode_squad("v2.0")
    first_question(data)["answers"] = []
    with pytest.raises(SquadFormatError, match=r"'Super_Bowl_50'.*question q1.*no answers"):
        parse_squad_json(data, source="dev-v2.0.json")


def test_structural_errors(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text("{not json", encoding="utf-8")
    with pytest.raises(SquadFormatError, match="bad.json: invalid JSON"):
        load_squad_file(str(path))
    with pytest.raises(SquadFormatError, match="'data' list"):
        parse_squad_json({"version": "1.1"}, source="x.json")
    data = unicode_squad()
    del data["data"][1]["paragraphs"][0]["qas"]
    with pytest.raises(SquadFormatError, match=r"article 'Café', paragraph 0: missing 'qas'"):
        parse_squad_json(data, source="x.json")
    data = unicode_squad()
    del first_question(data)["id"]
    with pytest.raises(SquadFormatError, match=r"'Super_Bowl_50'.*missing or empty 'id'.*Who won"):
        parse_squad_json(data, source="x.json")
    with pytest.raises(FileNotFoundError):
        load_squad_file(str(tmp_path / "absent.json"))


def test_skip_invalid_keeps_the_valid_questions(caplog):
    data = unicode_squad()
    first_question(data)["answers"][0]["answer_start"] = 3
    examples = parse_squad_json(data, source="x.json", skip_invalid=True)
    assert [example.question_id for example in examples] == ["q2", "q3"]
    assert "q1" in caplog.text


def many_articles(number_of_articles=10, questions_per_article=3):
    examples = []
    for article in range(number_of_articles):
        for question in range(questions_per_article):
            examples.append(
                SquadExample(f"a{article}-q{question}", f"Article {article}", "Why?", "Because.",
                             (("Because", 0),), False)
            )
    return examples


def test_split_by_article_is_disjoint_complete_and_deterministic():
    examples = many_articles()
    train, test = split_by_article(examples, test_fraction=0.3, seed=7)
    assert {e.title for e in train}.isdisjoint({e.title for e in test})
    assert len({e.title for e in test}) == 3
    assert sorted(e.question_id for e in train + test) == sorted(e.question_id for e in examples)
    # Order within each side follows the input.
    assert [e.question_id for e in train] == [e.question_id for e in examples if e in train]
    assert split_by_article(examples, 0.3, seed=7) == (train, test)
    assert split_by_article(list(reversed(examples)), 0.3, seed=7)[1] == list(reversed(test))
    test_titles_per_seed = {
        tuple(e.title for e in split_by_article(examples, 0.3, seed)[1]) for seed in range(5)
    }
    assert len(test_titles_per_seed) > 1


def test_split_by_article_edges():
    examples = many_articles(number_of_articles=3)
    assert split_by_article(examples, 0.0, 1)[1] == []
    assert split_by_article(examples, 1.0, 1)[0] == []
    train, test = split_by_article(examples, 0.01, 1)  # at least one article on each side
    assert len({e.title for e in test}) == 1 and len({e.title for e in train}) == 2
    train, test = split_by_article(examples, 0.99, 1)
    assert len({e.title for e in train}) == 1
    with pytest.raises(ValueError):
        split_by_article(examples, 1.5, 1)


def test_examples_from_tfds_records():
    records = [
        {
            "id": b"q1",
            "title": b"Super_Bowl_50",
            "context": CONTEXT.encode("utf-8"),
            "question": b"Who won?",
            "answers": {"text": [b"Denver Broncos"], "answer_start": [29]},
        },
        {
            "id": b"q9",
            "title": b"Super_Bowl_50",
            "context": CONTEXT.encode("utf-8"),
            "question": b"Who lost?",
            "answers": {"text": [], "answer_start": []},
            "is_impossible": True,
        },
    ]
    examples = examples_from_tfds_records(records, version="v2.0")
    assert examples[0].answers == (("Denver Broncos", 29),) and examples[0].title == "Super_Bowl_50"
    assert examples[1].is_impossible
    broken = copy.deepcopy(records[:1])
    broken[0]["answers"]["answer_start"] = [28]
    with pytest.raises(SquadFormatError, match=r"tfds.*'Super_Bowl_50'.*question q1"):
        examples_from_tfds_records(broken)


def test_load_tfds_squad_rejects_unknown_versions():
    with pytest.raises(ValueError, match="v1.1"):
        load_tfds_squad(version="v3")


def test_real_xquad_file_loads():
    examples = load_squad_file(xquad_path())
    assert len(examples) == 816
    assert len({example.title for example in examples}) == 32
    assert not any(example.is_impossible for example in examples)
    train, test = split_by_article(examples, 0.25, seed=0)
    assert len(train) + len(test) == 816
    assert {e.title for e in train}.isdisjoint({e.title for e in test})
