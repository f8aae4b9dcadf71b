"""The run folder's history.json: read back and turned into one list per metric."""

import json

from tfmm.training.history import history_by_metric, load_history, write_history


def test_history_written_read_and_by_metric(tmp_path):
    assert load_history(str(tmp_path)) == []
    assert history_by_metric([]) == {}
    records = [{"epoch": 0, "seconds": 3.0, "loss": 2.0, "val_accuracy": 0.5},
               {"epoch": 1, "seconds": 2.5, "loss": 1.0}]
    write_history(str(tmp_path), records)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["history.json"]  # no .partial
    assert json.loads((tmp_path / "history.json").read_text()) == records
    loaded = load_history(str(tmp_path))
    assert loaded == records
    assert history_by_metric(loaded) == {"loss": [2.0, 1.0], "val_accuracy": [0.5, None]}
