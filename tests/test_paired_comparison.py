"""scripts/compare_predictions.py on predictions files written as evaluation writes them:
hand-counted disagreements, the exact McNemar p-value worked by hand, pairs summed, per-group
rows, and one-line errors for files that cannot be compared."""

import os
import sys

import numpy as np
import pytest

from tfmm.atomic_write import write_jsonl
from tfmm.data.manifest_rows import ManifestRow
from tfmm.evaluation.paired_comparison import PairedCounts, compare_runs
from tfmm.evaluation.report import example_prediction_lines

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(__file__)), "scripts"))
import compare_predictions  # noqa: E402

LABELS = ("yes", "no")


def write_predictions(path, answers, predicted, kinds):
    """A multiclass predictions file: example i has label answers[i], prediction predicted[i]."""
    rows = [ManifestRow(line=index + 1, id=f"q{index}", text="a", image=None, audio=None,
                        label=answer, target=None, audio_sample_rate=None,
                        extra={"question_type": kind})
            for index, (answer, kind) in enumerate(zip(answers, kinds))]
    logits = np.array([[3.0, 0.0] if guess == "yes" else [0.0, 3.0] for guess in predicted])
    write_jsonl(str(path), example_prediction_lines("multiclass", {"logits": logits}, rows,
                                                    LABELS, group_field="question_type"))
    return str(path)


ANSWERS = ["yes"] * 8
KINDS = ["who"] * 4 + ["where"] * 4
# Examples 0-1 both right, 2-6 only A wrong, 7 both wrong.
A = ["yes", "yes", "no", "no", "no", "no", "no", "no"]
B = ["yes", "yes", "yes", "yes", "yes", "yes", "yes", "no"]


def test_hand_counted_disagreements_and_exact_mcnemar(tmp_path):
    a = write_predictions(tmp_path / "a.jsonl", ANSWERS, A, KINDS)
    b = write_predictions(tmp_path / "b.jsonl", ANSWERS, B, KINDS)
    groups = compare_runs([a], [b], "question_type")
    assert groups["all"] == PairedCounts(both_right=2, only_a_wrong=5, only_b_wrong=0,
                                         both_wrong=1)
    assert groups["who"] == PairedCounts(2, 2, 0, 0)
    assert groups["where"] == PairedCounts(0, 3, 0, 1)
    # 5 of 5 disagreements one way: two-sided p = 2 * 0.5 ** 5.
    assert groups["all"].mcnemar_p_value() == pytest.approx(0.0625)
    assert groups["who"].mcnemar_p_value() == pytest.approx(0.5)
    assert PairedCounts(3, 0, 0, 1).mcnemar_p_value() == 1.0
    # Swapping the models swaps the counts; two pairs add up (A against itself: 2 right, 6 wrong).
    swapped = compare_runs([b], [a])["all"]
    assert (swapped.only_a_wrong, swapped.only_b_wrong) == (0, 5)
    assert compare_runs([a, a], [b, a])["all"] == PairedCounts(2 + 2, 5, 0, 1 + 6)


def test_script_prints_the_table(tmp_path, capsys):
    a = write_predictions(tmp_path / "a.jsonl", ANSWERS, A, KINDS)
    b = write_predictions(tmp_path / "b.jsonl", ANSWERS, B, KINDS)
    assert compare_predictions.main(["--a", a, "--b", b, "--group-field", "question_type"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[2] == "| all | 8 | 6 | 1 | 5 | 0 | 0.0625 |"
    assert lines[3:] == ["| where | 4 | 4 | 1 | 3 | 0 | 0.25 |",
                         "| who | 4 | 2 | 0 | 2 | 0 | 0.5 |"]


def test_files_that_cannot_be_compared_end_in_one_line(tmp_path, capsys):
    a = write_predictions(tmp_path / "a.jsonl", ANSWERS, A, KINDS)
    fewer = write_predictions(tmp_path / "fewer.jsonl", ANSWERS[:6], B[:6], KINDS[:6])
    regression = tmp_path / "regression.jsonl"
    regression.write_text('{"id": "q0", "line": 1, "target": [1.0], "prediction": [2.0], '
                          '"absolute_error": 1.0}\n')
    cases = [(["--a", a, "--b", fewer], "must hold the same example ids to be compared. "
                                        "Received: 2 ids only in the first"),
             (["--a", str(regression), "--b", a], "regression.jsonl, line 1: expected an `id` "
                                                  "and a true/false `correct`"),
             (["--a", a, "--b", a, "--group-field", "speaker"], "no field 'speaker' to group by"),
             (["--a", a, a, "--b", a], "as many predictions files for A as for B"),
             (["--a", str(tmp_path / "missing.jsonl"), "--b", a], "cannot read predictions file")]
    for argv, message in cases:
        assert compare_predictions.main(argv) == 2
        error = capsys.readouterr().err
        assert message in error and error.count("\n") == 1, error
