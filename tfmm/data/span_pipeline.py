"""SQuAD examples -> question-answering windows (the graph preprocessing) -> tf.data batches.

The examples' strings go once through the graph preprocessing that the exported SavedModel also
runs (`tfmm.preprocessing.span_preprocessor.SpanPreprocessor`); the windows are kept in memory,
so that every epoch reshuffles them with a replayable order and the number of windows (steps per
epoch) is known before training. `SpanWindowPipeline` has the interface of
`tfmm.data.dataset.ExamplePipeline` (`batches`, `steps_per_epoch`, `num_examples`), so
`tfmm.training.trainer.Trainer` trains the span task with the same step, strategies, checkpoints
and resumption as every other task. One example is one window (a question with one slice of its
context); its batches are

    features: {"token_ids", "segment_ids", "padding_mask"} int32 [B, L]
    targets:  {"start_positions", "end_positions"} int32 [B]

Example:
    pipeline = SpanWindowPipeline.from_examples(examples, tokenizer, max_sequence_length=384)
    trainer.fit(pipeline)
"""

import logging
from typing import Optional, Sequence

import numpy as np
import tensorflow as tf

from tfmm.data.dataset import count_batches, epoch_batches
from tfmm.preprocessing.span_preprocessor import (DECODING_KEYS, FEATURE_KEYS, TARGET_KEYS,
                                                  SpanPreprocessor)

logger = logging.getLogger(__name__)

# Questions per call of the graph preprocessing while the windows are made.
QUESTIONS_PER_CALL = 64


def answer_character_spans(examples: Sequence) -> tuple:
    """Each example's first gold answer as characters [start, end); (-1, -1) for none.

    Returns:
        (starts int64 [B], ends int64 [B]).
    """
    starts = np.full(len(examples), -1, dtype=np.int64)
    ends = np.full(len(examples), -1, dtype=np.int64)
    for index, example in enumerate(examples):
        if not example.is_impossible and example.answers:
            text, start = example.answers[0]
            starts[index], ends[index] = start, start + len(text)
    return starts, ends


def make_window_arrays(examples: Sequence, preprocessor: SpanPreprocessor) -> dict:
    """Runs the graph preprocessing over the examples, 64 questions a call; numpy arrays out.

    The windows are made once and kept (see the module doc), so the traced preprocessing is
    called directly on chunks of questions: the function a `ds.map(preprocessor)` would run, but
    without instantiating a tf.data pipeline for one pass (about 1 s per pass, measured, against
    0.1 s for the 816 XQuAD questions).

    Args:
        examples: `SquadExample`s (question_id, question, context, answers, is_impossible).
        preprocessor: the `SpanPreprocessor`.

    Returns:
        What `SpanPreprocessor` returns, for all examples: arrays [N, ...], N >= len(examples);
        "question_index" counts over all examples.
    """
    if not examples:
        raise ValueError("make_window_arrays: no examples to cut into windows")
    starts, ends = answer_character_spans(examples)
    questions = tf.constant([example.question for example in examples], tf.string)
    contexts = tf.constant([example.context for example in examples], tf.string)
    chunks = []
    for first in range(0, len(examples), QUESTIONS_PER_CALL):
        rows = slice(first, first + QUESTIONS_PER_CALL)
        chunk = preprocessor.traced(questions[rows], contexts[rows], starts[rows], ends[rows])
        chunk = {key: value.numpy() for key, value in chunk.items()}
        chunk["question_index"] = chunk["question_index"] + first
        chunks.append(chunk)
    arrays = {key: np.concatenate([chunk[key] for chunk in chunks]) for key in chunks[0]}
    for question in np.unique(arrays["question_index"][~arrays["answer_in_context"]]):
        example = examples[question]
        if ends[question] > starts[question]:
            logger.warning("Question %s: the answer %r covers no context token; its windows get "
                           "the no-answer target.", example.question_id, example.answers[0][0])
    return arrays


class SpanWindowPipeline:
    """Batches of question-answering windows, shuffled per epoch with a replayable order.

    Args:
        arrays: what `make_window_arrays` returns (at least the feature and target keys; the
            decoding keys are kept for `tfmm.evaluation.evaluate_squad`).
        examples: the `SquadExample`s the windows belong to (kept for decoding), optional.
    """

    def __init__(self, arrays: dict, examples: Optional[Sequence] = None):
        missing = [key for key in FEATURE_KEYS + TARGET_KEYS if key not in arrays]
        if missing:
            raise ValueError(f"SpanWindowPipeline: the arrays lack {missing}; give what "
                             "make_window_arrays returns")
        self.arrays = arrays
        self.examples = list(examples) if examples is not None else None
        self.num_examples = int(len(arrays["token_ids"]))
        self.sequence_length = int(np.shape(arrays["token_ids"])[1])
        features = {key: np.asarray(arrays[key]).astype(np.int32) for key in FEATURE_KEYS}
        targets = {key: np.asarray(arrays[key]).astype(np.int32) for key in TARGET_KEYS}
        self.examples_dataset = tf.data.Dataset.from_tensor_slices((features, targets))

    @classmethod
    def from_examples(cls, examples: Sequence, tokenizer, max_sequence_length: int = 384,
                      doc_stride: int = 128, max_query_length: int = 64) -> "SpanWindowPipeline":
        """Cuts SQuAD examples into windows (see `SpanPreprocessor`) and builds the pipeline.

        Args:
            examples: `SquadExample`s (at least one).
            tokenizer: a `SpanPreprocessor` (then the sizes are its own), or a keras-hub
                BertTokenizer / `GraphWordPieceTokenizer` / vocabulary list or path.
            max_sequence_length, doc_stride, max_query_length: window sizes in tokens.
        """
        preprocessor = tokenizer
        if not isinstance(preprocessor, SpanPreprocessor):
            preprocessor = SpanPreprocessor(tokenizer, max_sequence_length, doc_stride,
                                            max_query_length)
        return cls(make_window_arrays(examples, preprocessor), examples=examples)

    def decoding_arrays(self) -> dict:
        """{"token_starts", "token_ends", "question_index"} of every window (see DECODING_KEYS)."""
        return {key: self.arrays[key] for key in DECODING_KEYS}

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
