"""Task objects (tfmm/tasks): every task difference lives in one object, none in `task ==` branches."""

import os
import re

import numpy as np
import pytest

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TASK_BRANCH = re.compile(
    r"""\btask["')\]]*\s*(==|!=|\bin\b|\bnot in\b)\s*[("'\[]"""
    r"""|[=!]=\s*["'](multiclass|multilabel|regression|qa|span)["']""")


def _python_files():
    for top in ("tfmm", "train.py", "evaluate.py"):
        path = os.path.join(REPO_ROOT, top)
        if path.endswith(".py"):
            yield path
            continue
        for folder, _, names in os.walk(path):
            if os.path.join("tfmm", "tasks") in folder:
                continue
            yield from (os.path.join(folder, name) for name in names if name.endswith(".py"))


def test_no_task_branch_outside_the_task_objects():
    found = []
    for path in _python_files():
        with open(path, encoding="utf-8") as handle:
            for number, line in enumerate(handle, start=1):
                if TASK_BRANCH.search(line.split("#")[0]):
                    found.append(f"{os.path.relpath(path, REPO_ROOT)}:{number}: {line.strip()}")
    assert not found, "task branches outside tfmm/tasks:\n" + "\n".join(found)


def test_the_branch_pattern_catches_the_old_forms():
    for line in ('if task == "regression":', "if config.data.task == 'qa':",
                 'elif run_info["task"] != "multiclass":', "if task in ('a', 'b'):",
                 'kind = "x" if mode == "multilabel" else "y"'):
        assert TASK_BRANCH.search(line), line
    assert not TASK_BRANCH.search("task = get_task(config.data.task)")
    assert not TASK_BRANCH.search('if task_type == "worker":')  # a cluster task, not tfmm's


def test_get_task_names_and_errors():
    from tfmm.tasks import TASK_NAMES, get_task

    assert [get_task(name).name for name in TASK_NAMES] == list(TASK_NAMES)
    with pytest.raises(ValueError, match=r"task must be one of \['multiclass'"):
        get_task("ranking")
    with pytest.raises(ValueError, match="'span' is now called 'qa'"):
        get_task("span")


def test_renamed_task_in_a_config_says_the_new_name():
    from tfmm.config import ConfigError, config_from_dict

    with pytest.raises(ConfigError, match="`data.task` 'span' is now called 'qa'"):
        config_from_dict({"data": {"task": "span"}, "qa": {"train_file": "x.json"}}).validate()


@pytest.mark.parametrize("name, targets, outputs, scores", [
    ("multiclass", np.array([0, 2, 1]),
     {"logits": np.array([[3.0, 0, 0], [0, 0, 1], [1, 0, 0]])}, [1, 1, 0]),
    ("multilabel", np.array([[1, 0], [1, 1], [0, 0]], np.float32),
     {"logits": np.array([[2.0, -1], [1, -1], [-3, -2]])}, [1, 0, 1]),
    ("regression", np.array([[1.0], [2.0], [0.0]], np.float32),
     {"predictions": np.array([[1.5], [2.0], [-1.0]])}, [0.5, 0.0, 1.0]),
    ("qa", {"start_positions": np.array([1, 0, 2]), "end_positions": np.array([2, 0, 2])},
     {"start_logits": np.array([[0, 5.0, 0], [3, 0, 0], [0, 0, 1]]),
      "end_logits": np.array([[0, 0, 5.0], [0, 4, 0], [0, 0, 1]])}, [1, 0, 1]),
])
def test_one_score_function_serves_training_and_reports(name, targets, outputs, scores):
    from tfmm.tasks import get_task

    task = get_task(name)
    per_example = task.per_example_score(targets, outputs).numpy()
    np.testing.assert_allclose(per_example, scores)
    assert task.score(outputs, targets) == pytest.approx(np.mean(scores))
    losses = task.per_example_loss(targets, outputs).numpy()
    assert losses.shape == (3,) and np.all(np.isfinite(losses)) and np.all(losses >= 0)


def test_grouped_scores_use_the_task_score():
    from tfmm.evaluation.report import grouped_scores

    outputs = {"predictions": np.array([[1.0], [2.0], [5.0]])}
    targets = np.array([[1.5], [2.0], [3.0]], np.float32)
    scores = grouped_scores("regression", ["a", "b", "a"], outputs, targets)
    assert scores == {"a": {"mae": pytest.approx(1.25), "num_examples": 2},
                      "b": {"mae": 0.0, "num_examples": 1}}


def test_targets_encode_from_manifest_rows():
    from tfmm.data.manifest_rows import ManifestRow
    from tfmm.tasks import get_task

    rows = [ManifestRow(line=1, id="1", text="a", image=None, audio=None, label="b", target=None,
                        audio_sample_rate=None),
            ManifestRow(line=2, id="2", text="a", image=None, audio=None, label="a", target=None,
                        audio_sample_rate=None)]
    np.testing.assert_array_equal(get_task("multiclass").encode_targets(rows, ("a", "b")), [1, 0])
    multi = [ManifestRow(line=1, id="1", text="a", image=None, audio=None, label=("a", "c"),
                         target=None, audio_sample_rate=None)]
    np.testing.assert_array_equal(get_task("multilabel").encode_targets(multi, ("a", "b", "c")),
                                  [[1, 0, 1]])


def test_prediction_lines_hand_worked_for_every_task():
    from tfmm.data.manifest_rows import ManifestRow
    from tfmm.evaluation.report import example_prediction_lines

    def row(line, label=None, target=None, kind="who"):
        return ManifestRow(line=line, id=f"q{line}", text="a", image=None, audio=None,
                           label=label, target=target, audio_sample_rate=None,
                           extra={"kind": kind})

    logits = {"logits": np.array([[2.0, 0.0], [0.0, 3.0]])}
    lines = example_prediction_lines("multiclass", logits, [row(1, "b"), row(2, "b", kind="x")],
                                     ("a", "b"), group_field="kind")
    assert lines[0] == {"id": "q1", "line": 1, "kind": "who", "label": "b", "predicted": "a",
                        "probability": pytest.approx(1 / (1 + np.exp(-2.0)), abs=1e-6),
                        "correct": False}
    assert lines[1]["predicted"] == "b" and lines[1]["correct"] and lines[1]["kind"] == "x"

    lines = example_prediction_lines("multilabel", {"logits": np.array([[1.0, -1.0, 0.5]])},
                                     [row(1, ("a", "c"))], ("a", "b", "c"))
    assert lines == [{"id": "q1", "line": 1, "label": ["a", "c"], "predicted": ["a", "c"],
                      "correct": True}]

    lines = example_prediction_lines("regression", {"predictions": np.array([[1.0, 4.0]])},
                                     [row(1, target=(2.0, 2.0))], ())
    assert lines == [{"id": "q1", "line": 1, "target": [2.0, 2.0], "prediction": [1.0, 4.0],
                      "absolute_error": 1.5}]
