"""Peak resident memory of reading `tfmm.pack` shards as the Trainer does (2 shuffled epochs of
decoded batches), in a fresh process.

Usage: python records_rss.py CONFIG.json  -> prints {"examples": N, "peak_rss_mb": M} as JSON.
The config's `data.train_records` and `data.cache` choose the shards and the cache.
"""

import json
import os
import resource
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def main(config_path):
    from tfmm.config import load_config
    from tfmm.data.record_source import read_records_for_config
    from tfmm.data.records import RecordPipeline
    from tfmm.preprocessing.multimodal_preprocessor import MultimodalPreprocessor

    config = load_config(config_path)
    data = config.data
    pipeline = RecordPipeline(read_records_for_config(data.train_records, data),
                              MultimodalPreprocessor.from_data_config(data, config.model.text_preset),
                              data.task, data.cache)
    steps = pipeline.steps_per_epoch(data.batch_size, True)
    seen = 0
    for epoch in range(2):
        for _, targets in pipeline.batches(data.batch_size, shuffle=True, epoch=epoch,
                                           shuffle_buffer=data.shuffle_buffer,
                                           drop_remainder=True).take(steps):
            seen += int(targets.shape[0])
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    print(json.dumps({"examples": pipeline.num_examples, "batches_seen": seen,
                      "peak_rss_mb": round(peak, 1)}))


if __name__ == "__main__":
    main(sys.argv[1])
