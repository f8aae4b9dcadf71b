"""The run folder's layout has one owner (tfmm/run_folder.py), the task picks its recipe in one
place, and the layers import downwards only."""

import ast
import os
import re

import pytest

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OWNER = os.path.join("tfmm", "run_folder.py")
# Run-folder names as a string literal spells them (anywhere in the literal) ...
FILE_NAMES = ("config.json", "config_changes.json", "run_info.json", "history.json",
              "model.keras", "_report.json", "_predictions.json", "_predictions.jsonl",
              "training_curves.png",
              "export/1")
# ... and folder names, which are ordinary words: only a literal that is exactly the name.
FOLDER_NAMES = ("checkpoints", "logs", "export")
# Literals that name another file of the same name, with the reason.
ALLOWED = {(os.path.join("tfmm", "preprocessing", "bert_presets.py"), "config.json"):
           "a keras-hub preset's config, not the run folder's"}


def python_files(root=REPO_ROOT):
    """tfmm/**.py, train.py and evaluate.py under `root`, as paths relative to it."""
    yield "train.py"
    yield "evaluate.py"
    for folder, _, names in os.walk(os.path.join(root, "tfmm")):
        for name in sorted(names):
            if name.endswith(".py"):
                yield os.path.relpath(os.path.join(folder, name), root)


def _docstrings(tree) -> set:
    nodes = [tree] + [node for node in ast.walk(tree) if isinstance(
        node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))]
    return {id(node.body[0].value) for node in nodes
            if node.body and isinstance(node.body[0], ast.Expr)
            and isinstance(node.body[0].value, ast.Constant)}


def _spells(literal: str, name: str) -> bool:
    """`name` in `literal` as a whole name ("tokenizer_config.json" is not "config.json");
    a suffix such as "_report.json" follows any report name."""
    edge = "" if name.startswith("_") else r"(?<![\w.])"
    return re.search(edge + re.escape(name) + r"(?![\w.])", literal) is not None


def run_folder_names_outside_the_owner(root=REPO_ROOT) -> list:
    """["path:line: literal"] for every run-folder name spelled outside tfmm/run_folder.py
    (docstrings and comments may describe the files; code asks a RunFolder)."""
    found = []
    for relative in python_files(root):
        if relative == OWNER:
            continue
        with open(os.path.join(root, relative), encoding="utf-8") as handle:
            tree = ast.parse(handle.read())
        docstrings = _docstrings(tree)
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Constant) and isinstance(node.value, str)):
                continue
            if id(node) in docstrings:
                continue
            names = [name for name in FILE_NAMES if _spells(node.value, name)]
            names += [name for name in FOLDER_NAMES if node.value.strip("/") == name]
            for name in names:
                if (relative, name) not in ALLOWED:
                    found.append(f"{relative}:{node.lineno}: {node.value!r}")
    return found


def test_run_folder_file_names_appear_only_in_the_run_folder_module():
    found = run_folder_names_outside_the_owner()
    assert not found, "run-folder names outside tfmm/run_folder.py:\n" + "\n".join(found)


def test_the_name_scan_catches_literals_but_not_docstrings(tmp_path):
    (tmp_path / "tfmm").mkdir()
    (tmp_path / "train.py").write_text('"""Writes config.json."""\n# and model.keras\n')
    (tmp_path / "evaluate.py").write_text(
        'import os\n\n\ndef f(d, name):\n    """Reads history.json."""\n'
        '    return os.path.join(d, "checkpoints"), f"{name}_report.json"\n')
    (tmp_path / "tfmm" / "run_folder.py").write_text('MODEL = "model.keras"\n')
    assert run_folder_names_outside_the_owner(str(tmp_path)) == [
        "evaluate.py:6: 'checkpoints'", "evaluate.py:6: '_report.json'"]


def test_evaluation_imports_no_training_module():
    """Evaluation sits below training: evaluate.py's code never imports tfmm.training."""
    found = []
    for relative in python_files():
        if not relative.startswith(os.path.join("tfmm", "evaluation")):
            continue
        with open(os.path.join(REPO_ROOT, relative), encoding="utf-8") as handle:
            tree = ast.parse(handle.read())
        for node in ast.walk(tree):
            modules = ([alias.name for alias in node.names] if isinstance(node, ast.Import)
                       else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            found += [f"{relative}:{node.lineno}: {module}" for module in modules
                      if module.startswith("tfmm.training")]
    assert not found, found


def test_every_task_has_one_recipe_for_training_and_evaluation():
    from tfmm.recipes import RECIPES, ManifestRecipe, QuestionAnsweringRecipe, recipe_for
    from tfmm.tasks import TASK_NAMES, get_task

    assert tuple(RECIPES) == TASK_NAMES
    for name in ("multiclass", "multilabel", "regression"):
        recipe = recipe_for(name)
        assert isinstance(recipe, ManifestRecipe) and recipe.task is get_task(name)
    assert isinstance(recipe_for(get_task("qa")), QuestionAnsweringRecipe)
    with pytest.raises(ValueError, match="'span' is now called 'qa'"):
        recipe_for("span")


def test_run_folder_paths_and_records(tmp_path):
    from tfmm.config import Config
    from tfmm.run_folder import RunFolder, model_file

    folder = RunFolder(str(tmp_path / "run"))
    folder.check_writable()
    assert folder.read_run_info() is None and folder.read_history() == []
    folder.write_run_info({"task": "qa", "labels": []})
    assert folder.read_run_info() == {"task": "qa", "labels": []}
    config = Config()
    config.training.epochs = 7
    folder.write_config(config)
    assert folder.read_config().training.epochs == 7
    folder.append_config_change({"training.epochs": {"before": 6, "after": 7}})
    folder.append_config_change({"training.seed": {"before": 0, "after": 1}})
    assert [list(change) for change in folder.read_config_changes()] == [
        ["training.epochs"], ["training.seed"]]
    assert model_file(folder.path) == folder.model
    assert model_file("elsewhere/best.keras") == "elsewhere/best.keras"
    assert os.path.dirname(folder.report("test")) == folder.path
    assert folder.report("test") != folder.report("eval") != folder.predictions("eval")
    assert folder.example_predictions("eval") != folder.predictions("eval")
    assert not folder.has_checkpoint()


def test_an_unfinished_run_folder_is_one_line_from_evaluate(tmp_path, capsys):
    import evaluate
    from tfmm.run_folder import RunFolder

    folder = RunFolder(str(tmp_path / "run"))
    folder.check_writable()
    folder.write_run_info({"task": "multiclass", "labels": ["a"]})
    assert evaluate.main([folder.path, "--data", "x.jsonl"]) == 2
    error = capsys.readouterr().err.strip()
    assert error == (f"error: {folder.path} is not a finished tfmm run: {folder.model} is "
                     "missing (train.py writes it when training ends)")


def test_stage_table_shows_each_task_s_own_figures():
    """A QA stage beside a classification stage: both rows hold figures, none a bare "-"."""
    import train
    from tfmm.config import Config
    from tfmm.tasks import get_task

    image, qa = Config(), Config()
    image.data.modalities = ("image",)
    image.data.report_group_field = "kind"
    qa.data.modalities = ("text",)
    results = [
        ("image", image, {"task": get_task("multiclass"), "report": {
            "num_examples": 32, "accuracy": 0.75, "macro_f1": 0.5, "auroc": 0.9,
            "by_kind": {"sum": {"accuracy": 1.0, "num_examples": 4}}}}),
        ("qa", qa, {"task": get_task("qa"), "report": {"total": 12, "exact_match": 41.5,
                                                        "f1": 55.25}}),
    ]
    lines = train.stage_table(results).splitlines()
    assert lines[0] == ("| stage | modalities | test examples | accuracy | macro-F1 | AUROC | "
                        "eval questions | exact match | F1 | sum |")
    assert lines[2] == "| image | image | 32 | 0.750 | 0.500 | 0.900 | - | - | - | 1.000 |"
    assert lines[3] == "| qa | text | - | - | - | - | 12 | 41.500 | 55.250 | - |"
