"""A run's per-epoch history (`history.json` in the run folder): read, write, turn around.

The `Trainer` appends one record per epoch ({"epoch": 0, "seconds": 12.3, "loss": ...,
"val_accuracy": ...}); evaluation reports plot it as curves, one list per metric.
"""

import json
import os

import tensorflow as tf

HISTORY_FILE = "history.json"


def history_path(run_dir: str) -> str:
    return os.path.join(run_dir, HISTORY_FILE)


def write_history(run_dir: str, records: list) -> None:
    """Writes the records aside, then renames them over the file: a kill never leaves a
    half-written history."""
    path = history_path(run_dir)
    partial = path + ".partial"
    with tf.io.gfile.GFile(partial, "w") as handle:
        json.dump(records, handle, indent=1)
    tf.io.gfile.rename(partial, path, overwrite=True)


def load_history(run_dir: str) -> list:
    """The run's epoch records, oldest first ([] when the run has none yet)."""
    path = history_path(run_dir)
    if not tf.io.gfile.exists(path):
        return []
    with tf.io.gfile.GFile(path) as handle:
        return json.load(handle)


def history_by_metric(records: list) -> dict:
    """Epoch records -> {metric: [value per epoch]} (the "epoch" and "seconds" keys left out)."""
    keys = [key for key in (records[0] if records else {}) if key not in ("epoch", "seconds")]
    return {key: [record.get(key) for record in records] for key in keys}
