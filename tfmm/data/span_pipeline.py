"""Question-answering windows -> tf.data batches for the shared training loop.

`SpanWindowPipeline` has the interface of `tfmm.data.dataset.ExamplePipeline` (`batches`,
`steps_per_epoch`, `num_examples`), so `tfmm.training.trainer.Trainer` trains the span task with
the same step, strategies, checkpoints and resumption as every other task. One example is one
window (a question with one slice of its context); its batches are

    features: {"token_ids", "segment_ids", "padding_mask"} int32 [B, L]
    targets:  {"start_positions", "end_positions"} int32 [B]

Example:
    pipeline = SpanWindowPipeline.from_examples(examples, tokenizer, max_sequence_length=384)
    trainer.fit(pipeline)
"""

from typing import Optional, Sequence

import numpy as np
import tensorflow as tf

from tfmm.data.dataset import count_batches, epoch_batches
from tfmm.preprocessing.span_windows import (as_offset_tokenizer, make_windows_for_examples,
                                             windows_to_arrays)

FEATURE_KEYS = ("token_ids", "segment_ids", "padding_mask")
TARGET_KEYS = ("start_positions", "end_positions")


class SpanWindowPipeline:
    """Batches of question-answering windows, shuffled per epoch with a replayable order.

    Args:
        arrays: what `tfmm.preprocessing.span_windows.windows_to_arrays` returns.
        windows: the `SpanWindow`s the arrays were stacked from (kept for decoding), optional.
        examples: the `SquadExample`s the windows belong to (kept for decoding), optional.
    """

    def __init__(self, arrays: dict, windows: Optional[Sequence] = None,
                 examples: Optional[Sequence] = None):
        missing = [key for key in FEATURE_KEYS + TARGET_KEYS if key not in arrays]
        if missing:
            raise ValueError(f"SpanWindowPipeline: the arrays lack {missing}; give what "
                             "windows_to_arrays returns")
        self.windows = list(windows) if windows is not None else None
        self.examples = list(examples) if examples is not None else None
        self.num_examples = int(len(arrays["token_ids"]))
        self.sequence_length = int(np.shape(arrays["token_ids"])[1])
        features = {key: np.asarray(arrays[key]).astype(np.int32) for key in FEATURE_KEYS}
        targets = {key: np.asarray(arrays[key]).astype(np.int32) for key in TARGET_KEYS}
        self.examples_dataset = tf.data.Dataset.from_tensor_slices((features, targets))

    @classmethod
    def from_examples(cls, examples: Sequence, tokenizer, max_sequence_length: int = 384,
                      doc_stride: int = 128, max_query_length: int = 64) -> "SpanWindowPipeline":
        """Cuts SQuAD examples into windows (see `make_windows`) and builds the pipeline.

        Args:
            examples: `SquadExample`s.
            tokenizer: keras-hub BertTokenizer, `WordPieceOffsetTokenizer`, vocabulary list/path.
            max_sequence_length, doc_stride, max_query_length: window sizes in tokens.
        """
        windows = make_windows_for_examples(examples, as_offset_tokenizer(tokenizer),
                                            max_sequence_length, doc_stride, max_query_length)
        return cls(windows_to_arrays(windows), windows=windows, examples=examples)

    def batches(self, batch_size: int, *, shuffle: bool = False, seed: int = 0, epoch: int = 0,
                shuffle_buffer: int = 10000, drop_remainder: bool = False,
                skip_batches: int = 0) -> tf.data.Dataset:
        """One epoch of (features, targets) batches; see `ExamplePipeline.batches`.

        Args:
            batch_size: global batch size.
            shuffle: shuffle with a seed derived from (seed, epoch).
            seed, epoch: the shuffle seed's parts; the same pair gives the same order.
            shuffle_buffer: windows in the shuffle buffer.
            drop_remainder: drop the last partial batch (static shapes).
            skip_batches: batches of this epoch already trained on (resuming).
        """
        return epoch_batches(self.examples_dataset, self.num_examples, batch_size,
                             shuffle=shuffle, seed=seed, epoch=epoch,
                             shuffle_buffer=shuffle_buffer, drop_remainder=drop_remainder,
                             skip_batches=skip_batches)

    def steps_per_epoch(self, batch_size: int, drop_remainder: bool) -> int:
        return count_batches(self.num_examples, batch_size, drop_remainder)
