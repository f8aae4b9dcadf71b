"""The run folder's history.json: read back and turned into one list per metric."""

import json

from tfmm.run_folder import RunFolder, history_by_metric


def test_history_written_read_and_by_metric(tmp_path):
    folder = RunFolder(str(tmp_path))
    assert folder.read_history() == []
    assert history_by_metric([]) == {}
    records = [{"epoch": 0, "seconds": 3.0, "loss": 2.0, "val_accuracy": 0.5},
               {"epoch": 1, "seconds": 2.5, "loss": 1.0}]
    folder.write_history(records)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["history.json"]  # no .partial
    assert json.loads((tmp_path / "history.json").read_text()) == records
    loaded = folder.read_history()
    assert loaded == records
    assert history_by_metric(loaded) == {"loss": [2.0, 1.0], "val_accuracy": [0.5, None]}


def test_training_and_inference_mode_scores_far_apart_get_one_warning():
    from tfmm.training.history import mode_divergence_warning

    # The run: 0.98 in training mode, 0.50 on its own training data in inference mode.
    warning = mode_divergence_warning(
        {"epoch": 1, "accuracy": 0.98, "train_inference_accuracy": 0.50}, "accuracy")
    assert warning.startswith("warning: accuracy 0.980 in training mode but 0.500 on the "
                              "training data in inference mode: BatchNorm")
    assert "\n" not in warning
    assert mode_divergence_warning({"accuracy": 0.98, "val_accuracy": 0.6}, "accuracy")
    assert mode_divergence_warning({"accuracy": 0.98, "train_inference_accuracy": 0.9},
                                   "accuracy") is None
    assert mode_divergence_warning({"accuracy": 0.98}, "accuracy") is None
    # An error (regression MAE) warns when inference is the worse one by the margin and 2x.
    assert mode_divergence_warning({"mae": 0.1, "train_inference_mae": 0.9}, "mae", True)
    assert mode_divergence_warning({"mae": 0.9, "train_inference_mae": 0.1}, "mae", True) is None
    assert mode_divergence_warning({"mae": 2.0, "train_inference_mae": 2.3}, "mae", True) is None
