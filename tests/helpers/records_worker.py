"""One worker of the FILE-sharding test: reads a training epoch of `tfmm.pack` shards through
MultiWorkerMirroredStrategy and writes the regression targets it was given to a JSON file.

Usage: TF_CONFIG=... python records_worker.py CONFIG.json OUT.json
The targets are the manifest's row numbers, so the test can tell which shards each worker read.
"""

import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def main(config_path, out_path):
    import tensorflow as tf

    from tfmm.config import load_config
    from tfmm.data.record_source import read_records_for_config
    from tfmm.data.records import RecordPipeline
    from tfmm.preprocessing.multimodal_preprocessor import MultimodalPreprocessor
    from tfmm.training.strategy import create_strategy

    config = load_config(config_path)
    strategy = create_strategy("multiworker")
    preprocessor = MultimodalPreprocessor.from_data_config(config.data, config.model.text_preset)
    pipeline = RecordPipeline(read_records_for_config(config.data.train_records, config.data),
                              preprocessor, config.data.task)
    pipeline.check_workers(strategy.extended._num_workers)
    dataset = pipeline.batches(config.data.batch_size)  # one pass, in reading order
    targets = []
    for _, batch_targets in strategy.experimental_distribute_dataset(dataset):
        for replica_targets in strategy.experimental_local_results(batch_targets):
            targets += [int(round(value)) for value in tf.reshape(replica_targets, [-1]).numpy()]
    with open(out_path, "w") as handle:
        json.dump(targets, handle)


if __name__ == "__main__":
    main(*sys.argv[1:3])
