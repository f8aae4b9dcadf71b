"""A run's per-epoch history: what its records hold, and the train/inference divergence check.

The run folder stores the records (`tfmm.run_folder.RunFolder.read_history` / `write_history`;
`tfmm.run_folder.history_by_metric` turns them into one list per metric).

The `Trainer` appends one record per epoch ({"epoch": 1, "seconds": 12.3, "loss": ...,
"accuracy": ..., "val_accuracy": ...}); evaluation reports plot it as curves.
"loss" and the score are averaged over the epoch's training steps, in training mode (dropout on,
BatchNorm on each batch's statistics). Beside them, the same model in inference mode: "val_..."
on the validation split, or, without one, "train_inference_..." on a fixed sample of the
training data.
"""

INFERENCE_PREFIX = "train_inference_"
# Training-mode and inference-mode scores further apart than this get a warning.
DIVERGENCE_MARGIN = 0.2


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
