"""Validated manifest rows -> tf.data pipelines with static shapes.

Files are read and decoded in parallel (AUTOTUNE) by the same `MultimodalPreprocessor` the
serving signature uses; decoded examples are cached in memory, then every epoch gets its own
seeded shuffle, so a resumed run can replay an epoch's order exactly and skip what it had done.

Optional text length buckets (`data.text_length_buckets`, off by default): a batch's texts are cut
from `text_sequence_length` to the smallest bucket boundary that holds its longest text, and
training batches (drop_remainder=True) are grouped by that boundary, so a BERT step on short
texts computes on a handful of static shapes (one XLA compilation each) instead of on padding.

Optional label-balanced resampling (`data.resample`, multiclass, off by default): a training epoch
draws as many examples as the manifest holds, each class with probability 1/C ("balanced") or in
proportion to the square root of its count ("sqrt"), with replacement, seeded by (seed, epoch).
"""

import numpy as np
import tensorflow as tf

from tfmm.data.manifest import Manifest
from tfmm.records_config import cache_setting
from tfmm.tasks import get_task

AUTOTUNE = tf.data.AUTOTUNE
DECODE_BATCH_SIZE = 64  # raw examples per preprocessor call when a pipeline decodes its files
TEXT_FEATURES = ("token_ids", "segment_ids", "padding_mask")


def read_file_or_empty(path: tf.Tensor) -> tf.Tensor:
    """File bytes, or "" (the missing-modality marker) for an empty path."""
    return tf.cond(tf.strings.length(path) > 0, lambda: tf.io.read_file(path),
                   lambda: tf.constant(b""))


def read_files_or_empty(paths: tf.Tensor) -> tf.Tensor:
    """`read_file_or_empty` of a path ([]) or of each path of a vector ([F]: a video's frames)."""
    if paths.shape.rank == 0:
        return read_file_or_empty(paths)
    return tf.map_fn(read_file_or_empty, paths, fn_output_signature=tf.string)


def video_path_rows(rows) -> list:
    """Each row's video files ((gif,) or its frames; none without video) padded with "" to the
    longest: the [rows, F] paths whose bytes the preprocessor decodes."""
    longest = max([len(row.video or ()) for row in rows] + [1])
    return [list(row.video or ()) + [""] * (longest - len(row.video or ())) for row in rows]


class ExamplePipeline:
    """Decoded, cached examples of one manifest, batched per epoch.

    Args:
        manifest: a validated `tfmm.data.manifest.Manifest`.
        preprocessor: the `MultimodalPreprocessor` of the model.
        task: the `tfmm.tasks.Task` (or its name) whose targets the rows hold.
        cache: `data.cache`: True | "memory" keeps decoded examples in memory after the first
            pass, False | "none" decodes every epoch, a file path caches them on disk there.
        log: prints the one-line note on texts cut to `text_sequence_length`, when any are.
        text_length_buckets: increasing token lengths (e.g. (16, 32, 64)); empty (the default):
            every batch keeps the preprocessor's static `text_sequence_length`. Otherwise each
            batch is cut to the smallest boundary (or `text_sequence_length`) that holds its
            longest text, and drop_remainder batches are grouped by that boundary; the model's
            text inputs must then accept any length (`build_multimodal_model` does so when
            `data.text_length_buckets` is set). Padding is masked, so outputs do not change.
        resample: "none" | "balanced" | "sqrt" (`data.resample`; multiclass targets, no length
            buckets): how shuffled epochs (`batches(shuffle=True)`, training) draw the classes.
    """

    def __init__(self, manifest: Manifest, preprocessor, task: str, cache=True,
                 text_length_buckets=(), log=print, resample: str = "none"):
        self.manifest = manifest
        self.num_examples = len(manifest.rows)
        self.resample = resample
        if resample != "none" and text_length_buckets:
            raise ValueError("resample cannot be combined with text_length_buckets")
        modalities = preprocessor.modalities
        self.num_cut_texts = 0
        if "text" in modalities:
            # One tokenisation serves the cut-text note and the length buckets.
            sequence_length = preprocessor.text_sequence_length
            token_counts = text_token_counts(preprocessor,
                                             [row.text or "" for row in manifest.rows])
            self.num_cut_texts = int(np.sum(token_counts > sequence_length))
            if self.num_cut_texts:
                present = sum(1 for row in manifest.rows if row.text)
                log(f"{manifest.path}: {self.num_cut_texts} of {present} texts are longer than "
                    f"data.text_sequence_length={sequence_length} tokens "
                    "([CLS] and [SEP] included) and are cut")
        self.bucket_boundaries = ()
        if text_length_buckets:
            if "text" not in modalities:
                raise ValueError("text_length_buckets needs the text modality; modalities are "
                                 f"{list(modalities)}")
            self.bucket_boundaries = bucket_boundaries(text_length_buckets,
                                                       preprocessor.text_sequence_length)
            self.text_lengths = np.minimum(token_counts, preprocessor.text_sequence_length)
        columns = {}
        if "text" in modalities:
            columns["text"] = [row.text or "" for row in manifest.rows]
        if "image" in modalities:
            columns["image"] = [row.image or "" for row in manifest.rows]
        if "audio" in modalities:
            columns["audio"] = [row.audio or "" for row in manifest.rows]
        if "video" in modalities:
            columns["video"] = video_path_rows(manifest.rows)
        targets = get_task(task).encode_targets(manifest.rows, manifest.labels)
        if resample != "none":
            self.class_counts = np.bincount(targets, minlength=len(manifest.labels))
        dataset = tf.data.Dataset.from_tensor_slices((columns, targets))

        def read(columns, target):
            return {name: (value if name == "text" else read_files_or_empty(value))
                    for name, value in columns.items()}, target

        # Files are read one by one, then decoded a batch at a time by the same batched call
        # the serving signature makes (WAV files in one vectorised pass), and split back into
        # examples for the cache and the per-epoch shuffle.
        dataset = (dataset.map(read, num_parallel_calls=AUTOTUNE, deterministic=True)
                   .batch(DECODE_BATCH_SIZE)
                   .map(lambda raw, target: (preprocessor(raw), target),
                        num_parallel_calls=AUTOTUNE, deterministic=True)
                   .unbatch())
        cache = cache_setting(cache)
        self.examples = dataset if cache == "none" else dataset.cache(
            "" if cache == "memory" else cache)

    def batches(self, batch_size: int, *, shuffle: bool = False, seed: int = 0, epoch: int = 0,
                shuffle_buffer: int = 10000, drop_remainder: bool = False,
                skip_batches: int = 0) -> tf.data.Dataset:
        """One epoch of batches.

        Args:
            batch_size: global batch size.
            shuffle: shuffle with a seed derived from (seed, epoch): the same epoch always has the
                same order, and different epochs differ.
            drop_remainder: drop the last partial batch (static batch shape for XLA/TPU).
            skip_batches: batches of this epoch already trained on (resuming).

        Returns:
            A dataset of (features dict, targets) with static shapes except, when
            drop_remainder is False, the batch dimension, and with text length buckets the text
            length (one of the bucket boundaries). With buckets and drop_remainder, the batches
            hold texts of one bucket each, and each bucket's last partial batch is dropped.
        """
        if shuffle and self.resample != "none":
            dataset = resampled_examples(self.examples, self.class_counts, self.resample,
                                         self.num_examples, seed * 100003 + epoch)
            return _finish_epoch(dataset.batch(batch_size, drop_remainder=drop_remainder),
                                 skip_batches)
        if not self.bucket_boundaries:
            return epoch_batches(self.examples, self.num_examples, batch_size, shuffle=shuffle,
                                 seed=seed, epoch=epoch, shuffle_buffer=shuffle_buffer,
                                 drop_remainder=drop_remainder, skip_batches=skip_batches)
        dataset = self.examples
        if shuffle:
            dataset = _shuffle_for_epoch(dataset, self.num_examples, seed, epoch, shuffle_buffer)
        if drop_remainder:
            boundaries = tf.constant(self.bucket_boundaries, tf.int64)
            dataset = dataset.group_by_window(
                key_func=lambda features, target: _bucket_index(features, boundaries),
                reduce_func=lambda key, window: window.batch(batch_size, drop_remainder=True),
                window_size=batch_size)
            dataset = dataset.map(lambda features, target: (
                _cut_text(features, self.bucket_boundaries), target))
        else:
            dataset = dataset.batch(batch_size).map(lambda features, target: (
                _cut_text(features, self.bucket_boundaries), target))
        return _finish_epoch(dataset, skip_batches)

    def steps_per_epoch(self, batch_size: int, drop_remainder: bool) -> int:
        if drop_remainder and self.bucket_boundaries:
            buckets = np.searchsorted(self.bucket_boundaries, self.text_lengths)
            return int(sum(np.bincount(buckets) // batch_size))
        return count_batches(self.num_examples, batch_size, drop_remainder)


def epoch_batches(examples: tf.data.Dataset, num_examples: int, batch_size: int, *,
                  shuffle: bool = False, seed: int = 0, epoch: int = 0,
                  shuffle_buffer: int = 10000, drop_remainder: bool = False,
                  skip_batches: int = 0) -> tf.data.Dataset:
    """One epoch of batches of an in-memory dataset of examples, as every tfmm pipeline makes
    them: a shuffle seeded by (seed, epoch), batches, the batches already trained on skipped."""
    if shuffle:
        examples = _shuffle_for_epoch(examples, num_examples, seed, epoch, shuffle_buffer)
    return _finish_epoch(examples.batch(batch_size, drop_remainder=drop_remainder), skip_batches)


def class_draw_probabilities(class_counts, resample: str) -> np.ndarray:
    """float64 [C]: the probability an epoch's draw picks each class ("balanced": the same for
    every class with examples; "sqrt": in proportion to the square root of its count)."""
    if resample not in ("balanced", "sqrt"):
        raise ValueError(f"resample must be 'balanced' or 'sqrt'. Received: {resample!r}")
    counts = np.asarray(class_counts, np.float64)
    shares = np.sqrt(counts) if resample == "sqrt" else (counts > 0).astype(np.float64)
    return shares / shares.sum()


def resampled_examples(examples: tf.data.Dataset, class_counts, resample: str,
                       num_examples: int, seed: int) -> tf.data.Dataset:
    """`num_examples` (features, class index) pairs drawn from `examples` class by class.

    Each class is an endless, reshuffled stream of its own examples; `sample_from_datasets`
    picks the stream of every draw with `class_draw_probabilities`. All of it is seeded by
    `seed`: the same seed gives the same examples in the same order (a resumed epoch replays).

    Args:
        examples: dataset of (features, int class index) pairs, `class_counts[c]` of class c.
        class_counts: int [C].
    """
    probabilities = class_draw_probabilities(class_counts, resample)
    classes = [index for index, count in enumerate(class_counts) if count > 0]
    streams = [examples.filter(lambda features, target, index=index: tf.equal(
                   tf.cast(target, tf.int64), index))
               .shuffle(int(class_counts[index]), seed=seed * 1009 + index,
                        reshuffle_each_iteration=True).repeat()
               for index in classes]
    return tf.data.Dataset.sample_from_datasets(
        streams, weights=[float(probabilities[index]) for index in classes],
        seed=seed).take(num_examples)


def count_batches(num_examples: int, batch_size: int, drop_remainder: bool) -> int:
    if drop_remainder:
        return num_examples // batch_size
    return -(-num_examples // batch_size)


def _shuffle_for_epoch(dataset, num_examples, seed, epoch, shuffle_buffer):
    # The same epoch always has the same order (a resumed run replays it); epochs differ.
    return dataset.shuffle(max(1, min(shuffle_buffer, num_examples)), seed=seed * 100003 + epoch,
                           reshuffle_each_iteration=False)


def _finish_epoch(dataset, skip_batches):
    if skip_batches:
        dataset = dataset.skip(skip_batches)
    options = tf.data.Options()
    # One in-memory source (the manifest rows), no files to split: under
    # MultiWorkerMirroredStrategy every worker runs this same seeded pipeline and keeps its
    # slice of each global batch (AUTO would try FILE first and fall back with a warning).
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    options.deterministic = True
    return dataset.with_options(options).prefetch(AUTOTUNE)


def bucket_boundaries(buckets, sequence_length: int) -> tuple:
    """The bucket lengths below `sequence_length`, sorted, with `sequence_length` last."""
    return tuple(sorted({int(length) for length in buckets if int(length) < sequence_length})
                 ) + (int(sequence_length),)


def text_token_counts(preprocessor, texts, chunk: int = 4096) -> np.ndarray:
    """WordPiece tokens per text with [CLS] and [SEP], before the packer cuts them to
    `text_sequence_length`, counted with the preprocessor's own tokenizer.

    Returns:
        int64 [len(texts)].
    """
    tokenizer = preprocessor.text_preprocessor.tokenizer
    counts = []
    for start in range(0, len(texts), chunk):
        tokens = tokenizer(tf.constant(texts[start:start + chunk]))
        # keras-hub gives a RaggedTensor, or in eager mode a list of token lists.
        counts.append(tokens.row_lengths().numpy() if isinstance(tokens, tf.RaggedTensor)
                      else np.asarray([len(row) for row in tokens], np.int64))
    return np.concatenate(counts) + 2 if counts else np.zeros([0], np.int64)


def _bucket_index(features, boundaries):
    """Index of the smallest boundary that holds the (unbatched) example's text."""
    length = tf.reduce_sum(tf.cast(features["padding_mask"], tf.int64))
    return tf.reduce_sum(tf.cast(boundaries < length, tf.int64))


def _cut_text(features, boundaries):
    """Cuts a batch's text features to the smallest boundary that holds its longest text."""
    longest = tf.reduce_max(tf.reduce_sum(tf.cast(features["padding_mask"], tf.int32), axis=1))
    boundaries = tf.constant(boundaries, tf.int32)
    length = tf.gather(boundaries, tf.reduce_sum(tf.cast(boundaries < longest, tf.int32)))
    features = dict(features)
    for name in TEXT_FEATURES:
        features[name] = features[name][:, :length]
    return features
