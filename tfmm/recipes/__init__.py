"""Recipes: what each family of tasks adds to the one run sequence, picked by task in one place.

    recipe = recipe_for("multiclass")     # train.py (tfmm.training.runner) and evaluate.py
    report = recipe.evaluate_file(run, "test.jsonl", run.folder.path, "test", 64, False)
"""

from tfmm.recipes.manifest import ManifestRecipe
from tfmm.recipes.qa import QuestionAnsweringRecipe
from tfmm.recipes.recipe import Recipe
from tfmm.tasks import TASK_NAMES, get_task

# The one place a task's name chooses code outside tfmm/tasks.
RECIPES = {"multiclass": ManifestRecipe, "multilabel": ManifestRecipe,
           "regression": ManifestRecipe, "qa": QuestionAnsweringRecipe}
assert tuple(RECIPES) == TASK_NAMES


def recipe_for(task) -> Recipe:
    """The recipe of a task (a `tfmm.tasks.Task` or its `data.task` name)."""
    task = get_task(task)
    return RECIPES[task.name](task)


__all__ = ["Recipe", "ManifestRecipe", "QuestionAnsweringRecipe", "RECIPES", "recipe_for"]
