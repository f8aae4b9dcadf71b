"""FILE sharding of `tfmm.pack` shards across workers (issue 19, part 3)."""

import json
import os

import pytest

from helpers import tiny
from helpers.loopback_workers import run_two_workers

HELPERS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "helpers")


def _pack(manifest, prefix, shards, **options):
    from tfmm.data.pack import pack_manifest

    return pack_manifest(manifest, prefix, shards, processes=1, log=lambda line: None, **options)


def test_fewer_shards_than_workers_is_a_clear_error(tiny_preset, tiny_manifest, tmp_path):
    from tfmm.config import config_from_dict
    from tfmm.data.record_format import RecordsError
    from tfmm.data.record_source import read_records_for_config
    from tfmm.data.records import RecordPipeline
    from tfmm.preprocessing.multimodal_preprocessor import MultimodalPreprocessor

    _pack(tiny_manifest, str(tmp_path / "train"), 2, modalities=("text",))
    data = config_from_dict(tiny.tiny_config(tiny_preset, tiny_manifest, str(tmp_path / "run"),
                                             modalities=("text",))).validate().data
    pipeline = RecordPipeline(read_records_for_config(str(tmp_path / "train-*"), data),
                              MultimodalPreprocessor.from_data_config(data, tiny_preset),
                              "multiclass")
    pipeline.check_workers(2, worker_index=1)
    assert pipeline.worker == (1, 2)  # reads the shards 1, 3, ...: here shard 1, 16 rows
    assert sum(int(targets.shape[0]) for _, targets in pipeline.batches(8)) == 16
    with pytest.raises(RecordsError, match=r"TF_CONFIG names no task for this one"):
        pipeline.check_workers(2)  # no TF_CONFIG here
    with pytest.raises(RecordsError, match=r"train-\*: 2 shards for 3 workers; each worker reads "
                                           r"whole shards, so pack with --shards 3 or more"):
        pipeline.check_workers(3)


@pytest.mark.slow
def test_each_of_two_workers_reads_only_its_own_shards(tiny_preset, tmp_path):
    """Regression targets = row numbers: worker k is given exactly the rows of shards k, k+2."""
    rows = [{"id": f"row{index}", "text": "the sound is high", "target": float(index)}
            for index in range(40)]
    manifest = tiny.write_jsonl(tmp_path / "rows.jsonl", rows)
    _pack(manifest, str(tmp_path / "records" / "train"), 4, task="regression",
          modalities=("text",))
    config = tiny.tiny_config(tiny_preset, manifest, str(tmp_path / "run"), modalities=("text",),
                              strategy="multiworker", jit_compile="false",
                              data={"task": "regression", "labels": [], "train_manifest": "",
                                    "train_records": str(tmp_path / "records" / "train-*"),
                                    "batch_size": 4})
    config_path = tiny.write_config(tmp_path / "config.json", config)
    outputs = [str(tmp_path / f"worker{index}.json") for index in range(2)]
    results = run_two_workers(lambda index: [os.path.join(HELPERS, "records_worker.py"),
                                          config_path, outputs[index]], 400)
    for code, output in results:
        assert code == 0, output[-4000:]
    seen = []
    for index, path in enumerate(outputs):
        with open(path) as handle:
            seen.append(sorted(json.load(handle)))
    # Round robin packing: shard s holds rows s, s+4, ...; FILE sharding: worker k reads
    # shards k and k+2, the rows k mod 2 (20 each, 5 batches of 4 = 2 replicas' halves).
    assert seen[0] == list(range(0, 40, 2)) and seen[1] == list(range(1, 40, 2))


@pytest.mark.slow
def test_two_workers_train_from_shards(tiny_preset, tiny_manifest, tmp_path):
    """train.py's run (run_training) on two loopback workers from FILE-sharded records."""
    _pack(tiny_manifest, str(tmp_path / "records" / "train"), 4, modalities=("text", "audio"))
    config = tiny.tiny_config(tiny_preset, tiny_manifest, str(tmp_path / "run"),
                              strategy="multiworker", jit_compile="false",
                              data={"train_manifest": "", "cache": "none",
                                    "train_records": str(tmp_path / "records" / "train-*")})
    config_path = tiny.write_config(tmp_path / "config.json", config)
    results = run_two_workers(lambda index: [
        os.path.join(HELPERS, "train_worker.py"), config_path,
        str(tmp_path / f"weights{index}.npz"), "--set",
        f"training.run_dir={tmp_path / f'run{index}'}"], 500)
    for code, output in results:
        assert code == 0, output[-4000:]
        assert "4 shards, 32 examples packed" in output
    import numpy as np

    chief, worker = (np.load(tmp_path / f"weights{index}.npz") for index in range(2))
    for name in chief.files:
        np.testing.assert_array_equal(chief[name], worker[name], err_msg=name)
