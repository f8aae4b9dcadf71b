"""`data.service`: the training input pipeline on tf.data service workers (issue 19, part 4)."""

import json
import os
import subprocess
import sys
import time

import numpy as np
import pytest

from helpers import tiny


def test_the_service_option_is_checked(tiny_preset, tiny_manifest, tmp_path):
    from tfmm.config import ConfigError, config_from_dict

    def data_config(**data):
        config = tiny.tiny_config(tiny_preset, tiny_manifest, str(tmp_path / "run"), data=data)
        return config_from_dict(config).validate().data

    assert data_config(train_records="r/train-*", service="grpc://host:5050").service == {
        "dispatcher": "grpc://host:5050", "processing_mode": "distributed_epoch", "job_name": ""}
    assert data_config(train_records="r/train-*", service='{"dispatcher": "grpc://h:1", '
                       '"processing_mode": "parallel_epochs"}').service["processing_mode"] == (
        "parallel_epochs")
    assert data_config(service="none").service is None
    with pytest.raises(ConfigError, match=r"processing_mode` must be one of"):
        data_config(train_records="r/train-*", service={"dispatcher": "grpc://h:1",
                                                        "processing_mode": "sometimes"})
    with pytest.raises(ConfigError, match=r"`data.service` runs the pipeline of "
                                          r"`data.train_records`"):
        data_config(service="grpc://host:5050")


def _bytes_read(pid: int) -> int:
    """Bytes a process has read through read(2) and the like (/proc/PID/io "rchar")."""
    with open(f"/proc/{pid}/io") as handle:
        return int(next(line for line in handle if line.startswith("rchar")).split()[1])


@pytest.mark.slow
@pytest.mark.skipif(not os.path.exists("/proc/self/io"), reason="needs Linux /proc/PID/io")
def test_a_run_trains_through_a_dispatcher_and_two_workers(tiny_preset, tmp_path):
    """train.py's run with `data.service`: a dispatcher in this process and two workers started
    with `python -m tfmm.data_service worker`; the loss falls and each worker read shards (each
    record carries a 20 kB field, so reading shards is what moves a worker's read counter)."""
    from tfmm.config import load_config
    from tfmm.data.data_service import start_dispatcher
    from tfmm.data.pack import pack_manifest
    from tfmm.training.runner import run_training

    manifest = tiny.write_manifest(str(tmp_path / "data"), num_rows=32)
    with open(manifest) as handle:
        rows = [dict(json.loads(line), padding="x" * 20000) for line in handle]
    tiny.write_jsonl(manifest, rows)
    pack_manifest(manifest, str(tmp_path / "records" / "train"), 4, processes=1,
                  modalities=("text", "audio"), log=lambda line: None)
    shard_bytes = min(os.path.getsize(tmp_path / "records" / name)
                      for name in os.listdir(tmp_path / "records") if name.endswith(".tfrecord"))

    dispatcher = start_dispatcher()
    address = dispatcher.target.replace("grpc://", "")
    workers = [subprocess.Popen(
        [sys.executable, "-m", "tfmm.data_service", "worker", "--dispatcher", address,
         "--port", str(tiny.free_port())], cwd=tiny.REPO_ROOT, env=tiny.subprocess_env(),
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for _ in range(2)]
    try:
        deadline = time.time() + 180
        while dispatcher._num_workers() < 2:  # no public accessor
            assert time.time() < deadline and all(w.poll() is None for w in workers)
            time.sleep(0.5)
        before = [_bytes_read(worker.pid) for worker in workers]
        config = tiny.tiny_config(tiny_preset, manifest, str(tmp_path / "run"), epochs=4,
                                  jit_compile="false",
                                  data={"train_manifest": "", "cache": "none",
                                        "train_records": str(tmp_path / "records" / "train-*"),
                                        "service": {"dispatcher": dispatcher.target}})
        lines = []
        run_training(load_config(tiny.write_config(tmp_path / "config.json", config)),
                     log=lines.append)
        read = [_bytes_read(worker.pid) - start for worker, start in zip(workers, before)]
    finally:
        for worker in workers:
            worker.kill()
            worker.wait()
        dispatcher._stop()
    with open(tmp_path / "run" / "history.json") as handle:
        losses = [entry["loss"] for entry in json.load(handle)]
    assert len(losses) == 4 and all(np.isfinite(losses)), losses
    assert losses[-1] < losses[0], losses
    print("bytes read by the workers", read, "smallest shard", shard_bytes, "losses", losses)
    assert all(amount >= shard_bytes for amount in read), (read, shard_bytes)
