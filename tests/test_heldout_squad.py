"""scripts/heldout_squad.py writes the articles a QA run evaluated on, and no others."""

import json

from helpers import tiny
from helpers.tiny_squad import xquad_path


def _script():
    return tiny.load_script("heldout_squad")


def test_the_written_file_holds_exactly_the_evaluation_questions(tmp_path, capsys):
    from tfmm.config import config_from_dict
    from tfmm.recipes.qa import load_span_examples
    from tfmm.run_folder import RunFolder

    config = config_from_dict({"data": {"task": "qa"},
                               "qa": {"train_file": xquad_path(), "eval_fraction": 0.25}})
    (tmp_path / "run").mkdir()
    RunFolder(str(tmp_path / "run")).write_config(config)
    out = tmp_path / "heldout.json"

    assert _script().main([str(tmp_path / "run"), str(out)]) == 0

    train, evaluation, _ = load_span_examples(config, log=lambda line: None)
    with open(out) as handle:
        written = json.load(handle)["data"]
    question_ids = {qa["id"] for article in written for paragraph in article["paragraphs"]
                    for qa in paragraph["qas"]}
    assert question_ids == {example.question_id for example in evaluation}
    assert not {article["title"] for article in written} & {example.title for example in train}
    assert f"{len(question_ids)} questions" in capsys.readouterr().out


def test_a_run_with_its_own_eval_file_is_refused(tmp_path, capsys):
    from tfmm.config import config_from_dict
    from tfmm.run_folder import RunFolder

    config = config_from_dict({"data": {"task": "qa"},
                               "qa": {"train_file": xquad_path(), "eval_file": xquad_path()}})
    (tmp_path / "run").mkdir()
    RunFolder(str(tmp_path / "run")).write_config(config)

    assert _script().main([str(tmp_path / "run"), str(tmp_path / "out.json")]) == 2
    assert "score its eval_file directly" in capsys.readouterr().err
    assert not (tmp_path / "out.json").exists()
