"""Task objects: each task's outputs, targets, loss, score, metrics, report and serving outputs.

    task = get_task("multiclass")
    losses = task.per_example_loss(targets, model(features, training=True))
"""

from tfmm.tasks.classification import MulticlassTask, MultilabelTask
from tfmm.tasks.names import RENAMED_TASKS, TASK_NAMES
from tfmm.tasks.question_answering import QuestionAnsweringTask
from tfmm.tasks.regression import RegressionTask
from tfmm.tasks.task import Task

_TASKS = {task.name: task for task in (MulticlassTask(), MultilabelTask(), RegressionTask(),
                                       QuestionAnsweringTask())}
assert tuple(_TASKS) == TASK_NAMES


def get_task(task) -> Task:
    """The task object of a `data.task` name (a Task passes through unchanged).

    Raises:
        ValueError: an unknown name, with the known ones.
    """
    if isinstance(task, Task):
        return task
    if task in RENAMED_TASKS:
        raise ValueError(f"task {task!r} is now called {RENAMED_TASKS[task]!r}")
    if task not in _TASKS:
        raise ValueError(f"task must be one of {list(TASK_NAMES)}. Received: {task!r}")
    return _TASKS[task]


__all__ = ["Task", "MulticlassTask", "MultilabelTask", "RegressionTask", "QuestionAnsweringTask",
           "TASK_NAMES", "get_task"]
