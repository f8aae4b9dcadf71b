"""Missing modalities at test time (issue 13, item 4): evaluate.py --drop-modality / --drop-sweep."""

import json
import os

import numpy as np
import pytest
import tensorflow as tf

from helpers.tiny import read_jsonl, tiny_config, write_jsonl, write_manifest
from tfmm.config import config_from_dict
from tfmm.evaluation.modality_removal import (ModalityRemovalError, check_removable,
                                              remove_modalities)


def _batches(num_batches=4, batch_size=8):
    features = {"text_mask": np.ones(num_batches * batch_size, np.float32),
                "audio_mask": np.ones(num_batches * batch_size, np.float32),
                "audio": np.ones((num_batches * batch_size, 3), np.float32)}
    targets = np.arange(num_batches * batch_size)
    return tf.data.Dataset.from_tensor_slices((features, targets)).batch(batch_size)


def _masks(dataset, name):
    return np.concatenate([features[name].numpy() for features, _ in dataset])


def test_removing_a_modality_zeroes_its_mask_and_nothing_else():
    removed = remove_modalities(_batches(), ("audio",))
    assert not _masks(removed, "audio_mask").any()
    assert _masks(removed, "text_mask").all()
    assert np.all(np.concatenate([f["audio"].numpy() for f, _ in removed]) == 1)
    targets = np.concatenate([t.numpy() for _, t in removed])
    np.testing.assert_array_equal(targets, np.arange(32))


def test_a_fraction_drops_that_share_the_same_examples_every_time():
    first = _masks(remove_modalities(_batches(32), ("audio",), fraction=0.3, seed=5), "audio_mask")
    again = _masks(remove_modalities(_batches(32), ("audio",), fraction=0.3, seed=5), "audio_mask")
    other = _masks(remove_modalities(_batches(32), ("audio",), fraction=0.3, seed=6), "audio_mask")
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)
    assert abs((1 - first.mean()) - 0.3) < 0.05  # 256 examples
    assert set(np.unique(first)) == {0.0, 1.0}


def test_removable_modalities_are_checked():
    assert check_removable(("text", "audio"), ["audio", "audio"]) == ("audio",)
    with pytest.raises(ModalityRemovalError, match="--drop-modality image: the model reads"):
        check_removable(("text", "audio"), ["image"])
    with pytest.raises(ModalityRemovalError, match="every modality"):
        check_removable(("text", "audio"), ["text", "audio"])
    with pytest.raises(ModalityRemovalError, match="--drop-fraction must be in"):
        remove_modalities(_batches(), ("audio",), fraction=0.0)


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory, tiny_preset):
    from tfmm.training.runner import run_training

    root = tmp_path_factory.mktemp("removal")
    manifest = write_manifest(str(root / "data"), num_rows=16)
    rows = [dict(row, kind="even" if index % 2 == 0 else "odd")
            for index, row in enumerate(read_jsonl(manifest))]
    manifest = write_jsonl(manifest, rows)
    config = config_from_dict(tiny_config(tiny_preset, manifest, str(root / "run"),
                                          modalities=("text", "audio"), epochs=1,
                                          data={"report_group_field": "kind"}))
    run_training(config.validate(), log=lambda line: None)
    return config.training.run_dir, manifest


def test_a_removed_modality_no_longer_changes_the_predictions(trained_run, tmp_path):
    """With audio removed, swapping every row's recording for another leaves the report as it
    is; with audio kept, the swap changes it (the mask is what removes it)."""
    from tfmm.evaluation.evaluate_run import evaluate_run

    run_dir, manifest = trained_run
    rows = read_jsonl(manifest)
    recordings = [row["audio"] for row in rows]
    swapped = [dict(row, audio=os.path.join(os.path.dirname(manifest), recording))
               for row, recording in zip(rows, recordings[1:] + recordings[:1])]
    swapped_manifest = write_jsonl(tmp_path / "swapped.jsonl", swapped)
    quiet = dict(out_dir=str(tmp_path), log=lambda line: None)
    kept = [evaluate_run(run_dir, path, name=f"kept{index}", **quiet)
            for index, path in enumerate((manifest, swapped_manifest))]
    removed = [evaluate_run(run_dir, path, name=f"removed{index}", drop_modalities=("audio",),
                            **quiet) for index, path in enumerate((manifest, swapped_manifest))]
    assert kept[0]["loss"] != pytest.approx(kept[1]["loss"], abs=1e-6)
    assert removed[0]["loss"] == pytest.approx(removed[1]["loss"], abs=1e-6)
    assert removed[0]["dropped_modalities"] == {"modalities": ["audio"], "fraction": 1.0}
    assert "dropped_modalities" not in kept[0]
    # evaluate.py breaks the report down by the run's data.report_group_field, as training does
    assert set(kept[0]["by_kind"]) == {"even", "odd"}
    assert kept[0]["by_kind"]["even"]["num_examples"] == 8


def test_the_sweep_writes_one_row_per_setting(trained_run, tmp_path):
    from tfmm.evaluation.evaluate_run import sweep_modality_removal

    run_dir, manifest = trained_run
    lines = []
    summary = sweep_modality_removal(run_dir, manifest, out_dir=str(tmp_path), name="sweep",
                                     log=lines.append)
    assert [row["removed"] for row in summary["rows"]] == [[], ["text"], ["audio"]]
    with open(tmp_path / "sweep_modality_sweep_report.json") as handle:
        assert json.load(handle) == summary
    for row in summary["rows"]:
        with open(tmp_path / ("sweep" + ("_without_" + "_".join(row["removed"])
                                         if row["removed"] else "") + "_report.json")) as handle:
            assert json.load(handle)["accuracy"] == row["accuracy"]
    assert lines[-1].splitlines()[0] == "| removed | accuracy | macro-F1 |"
    assert lines[-1].splitlines()[2].startswith("| nothing | ")


def test_evaluate_py_refuses_a_modality_the_model_lacks(trained_run, capsys):
    import evaluate

    run_dir, manifest = trained_run
    assert evaluate.main([run_dir, "--data", manifest, "--drop-modality", "image"]) == 2
    assert capsys.readouterr().err.strip() == (
        "error: --drop-modality image: the model reads ['text', 'audio']")
