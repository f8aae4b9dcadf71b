"""TFRecord shards (`tfmm.pack`) -> batches of model inputs, decoded in the graph.

The shards are read with a parallel interleave, each record parsed and decoded by the same
`MultimodalPreprocessor` the manifest path and the serving signature use; training epochs read
the shards in a seeded order and shuffle with a bounded buffer (`data.shuffle_buffer`), so memory
does not grow with the data unless `data.cache` asks for it ("memory", or a file path).

Records are decoded a batch at a time (one preprocessor call, as the manifest path does). A
record that does not parse or decode stops the run with an error naming its shard and index;
with `data.skip_invalid` it is skipped and the skip is logged with its shard and index. Each
shard's decoded batches are checked in order against the records the shard holds (its index
count); the records of a batch that failed are decoded again one by one to find the bad ones,
so a skip is never silent and never takes good records with it.

Under MultiWorkerMirroredStrategy the shards are split by FILE (`check_workers`): each worker
reads only its own shards (docs/distributed.md).

Example:
    source = read_records_for_config("records/train-*.tfrecord", config.data)
    pipeline = RecordPipeline(source, preprocessor, "multiclass")
    for features, targets in pipeline.batches(64, shuffle=True, epoch=0): ...
"""

import re
import sys

import tensorflow as tf

from tfmm.data.data_service import distribute
from tfmm.data.dataset import AUTOTUNE, count_batches
from tfmm.data.record_format import FEATURE_SPEC, RecordsError
from tfmm.data.record_source import shard_batches
from tfmm.records_config import cache_setting
from tfmm.tasks import get_task

UNDECODABLE = ("a record does not parse or decode (corrupt bytes, a missing feature, or a label "
               "outside the run's labels); shard:")


def undecodable_record_message(error) -> "str | None":
    """One line naming the shard and record of a run stopped by an undecodable record (the
    `tf.errors.InvalidArgumentError` that the pipeline's check raises), or None for any other
    error. train.py prints it as `error: ...` instead of a traceback."""
    match = re.search(r"shard:\] \[(?P<path>[^\]]*)\] \[record index \(from 0\):\] "
                      r"\[(?P<index>\d+)\]", str(error))
    # TensorFlow escapes the quote in "run's" inside the message: match the parts around it.
    if "a record does not parse or decode" not in str(error) or not match:
        return None
    return (f"{match['path']}: record {match['index']} (counted from 0) does not parse or decode "
            "(corrupt bytes, a missing feature, or a label outside the run's labels); set "
            "data.skip_invalid=true to skip such records")

class RecordPipeline:
    """Batches of one split's shards, with `ExamplePipeline`'s interface (`batches`,
    `steps_per_epoch`, `num_examples`, `manifest`).

    Args:
        source: a `tfmm.data.record_source.RecordSource`.
        preprocessor: the `MultimodalPreprocessor` of the model.
        task: the `tfmm.tasks.Task` (or its name) whose targets the records hold.
        cache: `data.cache`: True | "memory", False | "none", or a file path prefix.
    """

    def __init__(self, source, preprocessor, task, cache=False):
        self.source = self.manifest = source
        self.preprocessor = preprocessor
        self.task = get_task(task)
        self.cache = cache_setting(cache)
        self.num_examples = source.num_examples
        self.skip_invalid = source.skip_invalid
        labels = tf.constant(list(source.labels) or [""], tf.string)
        self.label_table = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(labels, tf.range(tf.size(labels), dtype=tf.int64)),
            default_value=-1)
        # What a batch parses of its records: the model's media and the targets.
        self.features = {name: FEATURE_SPEC[name]
                         for name in tuple(preprocessor.modalities) + ("label", "target")}
        self.worker = None  # (index, workers) once check_workers has seen several workers
        self._cached = None

    def check_workers(self, num_workers: int, worker_index=None):
        """Splits the shards by worker (FILE sharding) when there are several workers: this
        one reads the shards k, k + n, ... (k: `worker_index`, by default the task index in
        TF_CONFIG, as MultiWorkerMirroredStrategy reads it). The recipe calls this before
        training: without it, every worker would read every shard.

        Raises:
            RecordsError: fewer shards than workers, or no task index to be found.
        """
        if len(self.source.shards) < num_workers:
            raise RecordsError(f"{self.source.path}: {len(self.source.shards)} shards for "
                               f"{num_workers} workers; each worker reads whole shards, so pack "
                               f"with --shards {num_workers} or more")
        if num_workers > 1:
            if worker_index is None:
                worker_index = tf.distribute.cluster_resolver.TFConfigClusterResolver().task_id
            if worker_index is None:
                raise RecordsError(f"{self.source.path}: {num_workers} workers, but TF_CONFIG "
                                   "names no task for this one; cannot tell which shards are "
                                   "its own")
            self.worker = (int(worker_index), num_workers)

    def _check_labels(self, indices):
        return _after(tf.debugging.assert_non_negative(indices, "label outside the run's labels"),
                      indices)

    def _batch_targets(self, labels: tf.SparseTensor, targets: tf.SparseTensor, size):
        """The targets of a batch of parsed records (sparse [B, None] "label" and "target")."""
        rows = labels.indices[:, 0] if self.task.has_classes else targets.indices[:, 0]
        per_row = tf.math.bincount(tf.cast(rows, tf.int32), minlength=size, maxlength=size)
        if not self.task.has_classes:
            return _after(tf.debugging.assert_equal(per_row, self.source.num_targets,
                                                    "targets per row"),
                          tf.reshape(targets.values, [size, self.source.num_targets]))
        indices = self._check_labels(self.label_table.lookup(labels.values))
        if self.task.multilabel:
            positions = tf.stack([rows, indices], axis=1)
            return tf.tensor_scatter_nd_max(tf.zeros([size, len(self.source.labels)]),
                                            positions, tf.ones_like(indices, tf.float32))
        return _after(tf.debugging.assert_equal(per_row, 1, "one label expected"),
                      tf.cast(indices, tf.int32))

    def decode_batch(self, serialized: tf.Tensor) -> tuple:
        """(model inputs, targets) of a batch of serialized records (tf.string [B]), decoded by
        one preprocessor call, as the manifest path and the serving signature decode; the one
        decoding of records (a record decoded alone is a batch of one)."""
        parsed = tf.io.parse_example(serialized, self.features)
        raw = {name: parsed[name] for name in self.preprocessor.modalities}
        size = tf.shape(serialized)[0]
        return self.preprocessor(raw), self._batch_targets(parsed["label"], parsed["target"],
                                                           size)

    def _checked_examples(self, path, start, stop):
        """Records [start, stop) of a shard decoded one by one, each checked to have decoded:
        the run stops at the first that did not, or (skip_invalid) logs and counts it."""
        decoded = (tf.data.TFRecordDataset(path).skip(start).take(stop - start).enumerate(start)
                   .map(lambda index, record: (index, tf.nest.map_structure(
                       lambda batch: batch[0], self.decode_batch(record[tf.newaxis])), False))
                   .ignore_errors())
        placeholder = tf.nest.map_structure(lambda spec: tf.zeros(spec.shape, spec.dtype),
                                            decoded.element_spec[1])
        end = tf.data.Dataset.from_tensors((stop, placeholder, True))  # checks the last ones
        skip_invalid = self.skip_invalid

        def check(expected, element):
            index, _, _ = element
            missed = index - expected
            if skip_invalid:
                def report():
                    tf.print("records: skipped", missed, "record(s) that do not parse or decode:"
                             " shard", path, "records", expected, "to", index - 1,
                             output_stream=sys.stderr)
                    return tf.constant(True)

                checked = tf.cond(missed > 0, report, lambda: tf.constant(True))
            else:
                checked = tf.debugging.Assert(tf.equal(missed, 0), [
                    UNDECODABLE, path, "record index (from 0):", expected,
                    "(set data.skip_invalid=true to skip such records)"])
            with tf.control_dependencies([checked]):
                return index + 1, element

        return (decoded.concatenate(end).scan(start, check)
                .filter(lambda index, example, is_end: tf.logical_not(is_end))
                .map(lambda index, example, is_end: example))

    def _examples(self, shuffle: bool, seed: int) -> tf.data.Dataset:
        """Every shard's examples: the shards read DECODE_BATCH_SIZE records at a time, a
        batch from each shard in turn, decoded by one function for all shards. A batch that
        fails is dropped and its records decoded again one by one (`_checked_examples`), so a
        bad record is named (or skipped) alone; each shard's end marker checks its last ones."""
        paths = tf.constant([path for path, _ in self.source.shards])
        decoded = shard_batches(self.source.shards, seed if shuffle else None,
                                self.worker).map(
            lambda shard, first, size, records: (shard, first, size, self.decode_batch(records)),
            num_parallel_calls=AUTOTUNE, deterministic=True).ignore_errors()

        def note_gap(expected, element):
            shard, first, size, examples = element
            return (tf.tensor_scatter_nd_update(expected, [[shard]], [first + size]),
                    (tf.gather(paths, shard), expected[shard], first, examples))

        def examples_of(path, start, stop, examples):
            # The records of a failed batch (start < stop), then this batch's examples. A
            # cond picks the dataset: building the retry's datasets for every batch made this
            # sequential step the pipeline's bottleneck (bench/records.py).
            return tf.cond(start < stop,
                           lambda: tf.data.Dataset.from_tensors((start, stop)).flat_map(
                               lambda start, stop: self._checked_examples(path, start, stop)
                           ).concatenate(tf.data.Dataset.from_tensor_slices(examples)),
                           lambda: tf.data.Dataset.from_tensor_slices(examples))

        return (decoded.scan(tf.zeros([len(self.source.shards)], tf.int64), note_gap)
                .flat_map(examples_of))

    def batches(self, batch_size: int, *, shuffle: bool = False, seed: int = 0, epoch: int = 0,
                shuffle_buffer: int = 10000, drop_remainder: bool = False,
                skip_batches: int = 0) -> tf.data.Dataset:
        """One epoch of batches, as `ExamplePipeline.batches` gives them.

        Training epochs (shuffle and drop_remainder) repeat the shards endlessly: the Trainer
        takes its steps, and a worker of several whose shards hold fewer examples never runs
        out before the others. With `data.service` they run on tf.data service workers.
        """
        epoch_seed = seed * 100003 + epoch
        if self.cache != "none":
            if self._cached is None:  # one fixed reading order, decoded once
                examples = self._examples(shuffle=False, seed=0)
                self._cached = examples.cache("" if self.cache == "memory" else self.cache)
            examples = self._cached
        else:
            examples = self._examples(shuffle, epoch_seed)
        if shuffle:
            examples = examples.shuffle(max(1, min(shuffle_buffer, self.num_examples)),
                                        seed=epoch_seed, reshuffle_each_iteration=False)
            if drop_remainder:
                examples = examples.repeat()
        dataset = examples.batch(batch_size, drop_remainder=drop_remainder)
        if skip_batches:
            dataset = dataset.skip(skip_batches)
        options = tf.data.Options()
        # The files are sharded by worker above (check_workers): tf.data's FILE auto-sharding
        # cannot see through the retry's tf.cond to the list of files.
        options.experimental_distribute.auto_shard_policy = (
            tf.data.experimental.AutoShardPolicy.OFF)
        options.deterministic = True
        # The maps are parallel and the prefetch explicit already: tf.data's default graph
        # rewrites find nothing to do here, and searching this graph cost about 0.2 s of CPU
        # per iterator (per epoch) when measured (bench/records.py).
        options.experimental_optimization.apply_default_optimizations = False
        dataset = dataset.with_options(options)
        if self.source.service and shuffle and drop_remainder:  # training epochs only
            dataset = distribute(dataset, self.source.service)
        return dataset.prefetch(AUTOTUNE)

    def steps_per_epoch(self, batch_size: int, drop_remainder: bool) -> int:
        return count_batches(self.num_examples, batch_size, drop_remainder)


def _after(check, tensor):
    """`tensor`, computed after the assertion op `check` (None when run eagerly) has passed."""
    with tf.control_dependencies([check] if check is not None else []):
        return tf.identity(tensor)
