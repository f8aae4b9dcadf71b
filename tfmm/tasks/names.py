"""The task names a config may give in `data.task` (no TensorFlow import: config.py reads it)."""

TASK_NAMES = ("multiclass", "multilabel", "regression", "qa")
# Renamed names, with the name to use instead (a config that still says "span" gets told).
RENAMED_TASKS = {"span": "qa"}
