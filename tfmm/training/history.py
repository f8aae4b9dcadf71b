"""A run's per-epoch history (`history.json` in the run folder): read, write, turn around.

The `Trainer` appends one record per epoch ({"epoch": 1, "seconds": 12.3, "loss": ...,
"accuracy": ..., "val_accuracy": ...}); evaluation reports plot it as curves, one list per metric.
"loss" and the score are averaged over the epoch's training steps, in training mode (dropout on,
BatchNorm on each batch's statistics). Beside them, the same model in inference mode: "val_..."
on the validation split, or, without one, "train_inference_..." on a fixed sample of the
training data.
"""

import json
import os

import tensorflow as tf

from tfmm.atomic_write import write_json

HISTORY_FILE = "history.json"
INFERENCE_PREFIX = "train_inference_"
# Training-mode and inference-mode scores further apart than this get a warning.
DIVERGENCE_MARGIN = 0.2


def history_path(run_dir: str) -> str:
    return os.path.join(run_dir, HISTORY_FILE)


def write_history(run_dir: str, records: list) -> None:
    """Writes the records aside, then renames them over the file (`tfmm.atomic_write`): a kill
    never leaves a half-written history, a full disk is one error line."""
    write_json(history_path(run_dir), records, indent=1)


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


def mode_divergence_warning(record: dict, score_name: str, lower_is_better: bool = False):
    """A one-line warning when an epoch's training-mode score and its inference-mode score
    (validation, or training data in inference mode) are far apart; None otherwise.

    Accuracies (and exact match) compare by `DIVERGENCE_MARGIN` absolute; an error (regression
    MAE) warns when the inference-mode error exceeds the training-mode one by that margin and
    is more than twice it. `lower_is_better` says the score is an error (`Task.lower_score_is_better`).
    """
    for prefix, where in ((INFERENCE_PREFIX, "the training data in inference mode"),
                          ("val_", "the validation split (inference mode)")):
        checked = record.get(prefix + score_name)
        trained = record.get(score_name)
        if checked is None or trained is None:
            continue
        is_error = lower_is_better
        gap = checked - trained if is_error else trained - checked
        if gap > DIVERGENCE_MARGIN and (not is_error or checked > 2 * trained):
            return (f"warning: {score_name} {trained:.3f} in training mode but {checked:.3f} on "
                    f"{where}: BatchNorm's moving statistics (used at inference and in serving) "
                    "lag the weights in short runs or with a high momentum (about "
                    "1/(1 - momentum) steps to catch up), and dropout is off at inference; "
                    "on a validation split overfitting also shows here. Train longer or lower "
                    "model.image_batchnorm_momentum / audio_batchnorm_momentum.")
    return None
