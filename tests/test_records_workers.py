"""FILE sharding of `tfmm.pack` shards across workers (issue 19, part 3)."""

import json
import os
import subprocess
import sys
import time

import pytest

from helpers import tiny

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
    pipeline.check_workers(2)
    with pytest.raises(RecordsError, match=r"train-\*: 2 shards for 3 workers; each worker reads "
                                           r"whole shards, so pack with --shards 3 or more"):
        pipeline.check_workers(3)


def _run_workers(script_args, timeout):
    """Starts two loopback workers running helpers/SCRIPT; returns [(exit code, output)]."""
    cluster = {"worker": [f"127.0.0.1:{tiny.free_port()}" for _ in range(2)]}
    processes = []
    try:
        for index in range(2):
            env = tiny.subprocess_env(TF_CONFIG=json.dumps(
                {"cluster": cluster, "task": {"type": "worker", "index": index}}))
            processes.append(subprocess.Popen(
                [sys.executable, *script_args(index)], cwd=tiny.REPO_ROOT, env=env,
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
        deadline = time.time() + timeout
        outputs = [process.communicate(timeout=max(1.0, deadline - time.time()))[0]
                   for process in processes]
        return [(process.returncode, output) for process, output in zip(processes, outputs)]
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()


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
    results = _run_workers(lambda index: [os.path.join(HELPERS, "records_worker.py"),
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
    results = _run_workers(lambda index: [
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
