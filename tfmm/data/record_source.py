"""The shards of one split (`data.train_records` and the like), checked against the config.

A `RecordSource` tells the recipe what a `tfmm.data.manifest.Manifest` tells it (path, labels,
summary, rows) from the packs' indexes, without reading the media: the rows (ids, labels, targets
and other fields, for class weights and grouped reports) are read from the shards only when asked.
"""

import dataclasses
import json
from typing import Any, Optional

import tensorflow as tf

from tfmm.data.manifest import sort_labels
from tfmm.data.record_format import FEATURE_SPEC, RecordsError, shards_of_pattern

CYCLE_LENGTH = 8  # shards read at once (parallel interleave); also fixes the reading order
# What `RecordSource.rows` parses of a record: everything but the media.
ROW_FEATURES = {name: FEATURE_SPEC[name] for name in ("id", "line", "label", "target", "extra")}


@dataclasses.dataclass(frozen=True)
class RecordRow:
    """What a packed row holds besides its media (the fields `ManifestRow` has of them)."""

    line: int
    id: str
    label: Any
    target: Optional[tuple]
    extra: dict = dataclasses.field(default_factory=dict, compare=False)


def shard_batches(shards, shuffle_seed=None, worker=None) -> tf.data.Dataset:
    """The one reading order of the shards, which the pipeline decodes and `RecordSource.rows`
    lists: (shard number, first record index, records, serialized records tf.string [records])
    of every shard, DECODE_BATCH_SIZE records at a time, then an end marker of the shard (first
    index = the shard's record count, no records). CYCLE_LENGTH shards are read at once, a batch
    of each in turn.

    Args:
        shards: [(shard path, records)].
        shuffle_seed: None: the shards in order; else their order shuffled with this seed.
        worker: None, or (index k, workers n): only the shards k, k + n, k + 2n, ... (FILE
            sharding, before the shuffle, as tf.data's AutoShardPolicy.FILE would).
    """
    from tfmm.data.dataset import DECODE_BATCH_SIZE

    files = tf.data.Dataset.from_tensor_slices(
        (tf.constant([path for path, _ in shards]),
         tf.constant([count for _, count in shards], tf.int64),
         tf.range(len(shards), dtype=tf.int64)))
    if worker is not None:
        files = files.shard(worker[1], worker[0])
    if shuffle_seed is not None:
        files = files.shuffle(len(shards), seed=shuffle_seed, reshuffle_each_iteration=False)

    def batches_of(path, count, shard):
        batches = tf.data.TFRecordDataset(path).batch(DECODE_BATCH_SIZE).enumerate().map(
            lambda number, records: (shard, number * DECODE_BATCH_SIZE,
                                     tf.size(records, tf.int64), records))
        end = tf.data.Dataset.from_tensors((shard, count, tf.constant(0, tf.int64),
                                            tf.zeros([0], tf.string)))
        return batches.concatenate(end)

    return files.interleave(batches_of, cycle_length=max(1, min(CYCLE_LENGTH, len(shards))),
                            block_length=1, num_parallel_calls=tf.data.AUTOTUNE,
                            deterministic=True)


class RecordSource:
    """The shards matching one glob pattern, with what their indexes say.

    Args:
        pattern: glob pattern of `tfmm.pack` shards.
        task: the `tfmm.tasks.Task` whose targets the records hold.
        labels: class names in index order (the training split's, or the config's).
        skip_invalid: records that do not decode are skipped and counted (else the run stops).

    Attributes:
        path: the pattern (shown in reports and logs, like a manifest's path).
        shards: [(shard path, examples)] sorted by path.
        num_examples: records in all shards.
    """

    def __init__(self, pattern: str, shards: list, task, labels: tuple, skip_invalid: bool,
                 indexes: list):
        self.path = pattern
        self.shards = shards
        self.task = task
        self.labels = tuple(labels)
        self.skip_invalid = skip_invalid
        self.indexes = indexes
        self.num_examples = sum(count for _, count in shards)
        self.num_targets = int(indexes[0]["num_targets"])
        self.service = None  # `data.service`: a dict of tfmm.data.data_service.DataService
        self._rows = None

    def summary(self) -> str:
        sources = ", ".join(sorted({f"{index['source_manifest']} (sha256 "
                                    f"{index['source_manifest_sha256'][:12]})"
                                    for index in self.indexes}))
        skipped = sum(index["skipped"] for index in self.indexes)
        return (f"{self.path}: {len(self.shards)} shards, {self.num_examples} examples packed "
                f"from {sources}" + (f"; {skipped} rows skipped when packed" if skipped else ""))

    @property
    def rows(self) -> list:
        """`RecordRow`s in the order the unshuffled pipeline gives the examples (read once)."""
        if self._rows is None:
            rows = []
            for _, _, size, records in shard_batches(self.shards):
                if int(size) == 0:  # a shard's end marker
                    continue
                parsed = tf.io.parse_example(records, ROW_FEATURES)  # the media left unparsed
                batch = zip(parsed["line"].numpy(), parsed["id"].numpy(),
                            tf.RaggedTensor.from_sparse(parsed["label"]).to_list(),
                            tf.RaggedTensor.from_sparse(parsed["target"]).to_list(),
                            parsed["extra"].numpy())
                for line, row_id, labels, target, extra in batch:
                    labels = tuple(name.decode("utf-8") for name in labels)
                    label = (None if not self.task.has_classes else
                             labels if self.task.multilabel else (labels[0] if labels else None))
                    rows.append(RecordRow(int(line), row_id.decode("utf-8"), label,
                                          tuple(float(value) for value in target) or None,
                                          json.loads(extra.decode("utf-8"))))
            self._rows = rows
        return self._rows


def read_records_for_config(pattern: str, data_config, labels=None) -> RecordSource:
    """The shards of `pattern`, checked against a DataConfig: the task, the modalities packed,
    the labels, the sample rates.

    Args:
        labels: class names (the training split's when reading another split); None: the
            config's `data.labels`, or else the sorted labels of the packs' indexes.

    Raises:
        RecordsError: no shard matches, an index is missing, or the packs do not fit the config.
    """
    from tfmm.tasks import get_task

    task = get_task(data_config.task)
    shards = shards_of_pattern(pattern)
    indexes = list({id(index): index for _, _, index in shards}.values())
    for index in indexes:
        where = f"{pattern} (packed from {index['source_manifest']})"
        if index["task"] != task.name:
            raise RecordsError(f"{where}: packed for task {index['task']!r}; data.task is "
                               f"{task.name!r}")
        missing = [name for name in data_config.modalities if name not in index["modalities"]]
        if missing:
            raise RecordsError(f"{where}: the records hold the modalities "
                               f"{index['modalities']}, not {missing} (pack with --modalities)")
        optional = [name for name in index["optional_modalities"]
                    if name in data_config.modalities
                    and name not in data_config.optional_modalities]
        if optional:
            raise RecordsError(f"{where}: packed with {optional} optional; list them in "
                               "data.optional_modalities too")
        rates = [rate for rate in index["audio_sample_rates"]
                 if rate != data_config.audio_sample_rate]
        if "audio" in data_config.modalities and rates and not data_config.resample_audio:
            raise RecordsError(f"{where}: holds audio at {rates} Hz, expected "
                               f"{data_config.audio_sample_rate} Hz (set data.resample_audio="
                               "true to resample)")
        if not task.has_classes and index["num_targets"] != data_config.num_targets:
            raise RecordsError(f"{where}: packed with {index['num_targets']} targets per row; "
                               f"data.num_targets is {data_config.num_targets}")
    packed_labels = {name for index in indexes for name in index["labels"]}
    known = tuple(str(name) for name in (data_config.labels if labels is None else labels))
    if task.has_classes and known:
        unknown = sorted(packed_labels - set(known))
        if unknown:
            raise RecordsError(f"{pattern}: the records hold labels {unknown[:20]} that are not "
                               f"among the known labels {list(known)[:20]}")
    class_names = (known or sort_labels(packed_labels)) if task.has_classes else ()
    source = RecordSource(pattern, [(path, count) for path, count, _ in shards], task,
                          class_names, data_config.skip_invalid, indexes)
    source.service = getattr(data_config, "service", None)  # training epochs (data_service.py)
    return source
