"""Scoring a question-answering model on SQuAD-format data: logits -> answers -> EM/F1 report.

The windows come from the graph preprocessing (`tfmm.data.span_pipeline.SpanWindowPipeline`), the
model runs over every window (`tfmm.evaluation.predict.predict_dataset`), each question's answer is
decoded from its windows in the graph (`tfmm.evaluation.span_decoding.decode_spans`, the decoder of
the exported SavedModel too) and scored
with the official SQuAD exact match / F1 (`tfmm.evaluation.squad_metrics`). Two files are written
in the report folder (`tfmm.run_folder.RunFolder.report` and `.predictions`): the report
(exact_match, f1, total, + HasAns_* / NoAns_* for SQuAD v2.0, the window loss, and the
sentence-overlap baseline's EM/F1 beside them) and {question id: answer text}, the official
predictions format.
"""

import functools
import os

import numpy as np
import tensorflow as tf

from tfmm.atomic_write import write_json
from tfmm.data.span_pipeline import SpanWindowPipeline
from tfmm.data.squad import SquadFormatError, load_squad_file
from tfmm.errors import UserError
from tfmm.evaluation.overlap_baseline import evaluate_overlap_baseline
from tfmm.evaluation.predict import predict_dataset
from tfmm.evaluation.span_decoding import decode_spans
from tfmm.evaluation.squad_metrics import evaluate_predictions, write_predictions
from tfmm.run_folder import RunFolder
from tfmm.tasks import QuestionAnsweringTask


class SquadDataError(UserError):
    """A SQuAD file that is missing or unreadable."""


def read_squad_file(path: str, skip_invalid: bool = False) -> list:
    """`load_squad_file` with a missing file reported as a user error (one line, no traceback).

    Malformed files raise `SquadFormatError` naming the file, article title, question id and
    problem.
    """
    try:
        return load_squad_file(path, skip_invalid=skip_invalid)
    except FileNotFoundError:
        raise SquadDataError(f"SQuAD file not found: {path} (working directory "
                             f"{os.getcwd()})") from None
    except SquadFormatError:
        raise


# Questions decoded per call (bounds the [windows, L, max_answer_length] span scores in memory).
QUESTIONS_PER_DECODE = 256


@functools.lru_cache(maxsize=8)
def _traced_decoder(length: int, max_answer_length: int, version_2_with_negative: bool,
                    null_score_threshold: float):
    """`decode_spans` as a tf.function over window arrays, traced once per setting."""
    signature = [tf.TensorSpec([None, length], tf.int32), tf.TensorSpec([None, length], tf.int32),
                 tf.TensorSpec([None], tf.int32), tf.TensorSpec([None, length], tf.float32),
                 tf.TensorSpec([None, length], tf.float32), tf.TensorSpec([None], tf.string)]

    @tf.function(input_signature=signature, autograph=False)
    def decode(token_starts, token_ends, question_index, start_logits, end_logits, contexts):
        windows = {"token_starts": token_starts, "token_ends": token_ends,
                   "question_index": question_index}
        return decode_spans(windows, start_logits, end_logits, contexts, max_answer_length,
                            version_2_with_negative, null_score_threshold)

    return decode


def decode_span_outputs(examples, pipeline: SpanWindowPipeline, outputs: dict, qa_config):
    """`decode_spans` over a pipeline's windows with the `qa` config's settings.

    Args:
        examples: the `SquadExample`s the pipeline was made from, in the same order.
        pipeline: their `SpanWindowPipeline`.
        outputs: {"start_logits", "end_logits"}: float [N, L] for the pipeline's N windows.
        qa_config: `tfmm.config.QuestionAnsweringConfig` (max_answer_length, v2.0 settings).

    Returns:
        (predictions {question id: answer text}, scores {question id: float}).
    """
    start_key, end_key = QuestionAnsweringTask.output_keys
    decoding = pipeline.decoding_arrays()
    decode = _traced_decoder(pipeline.sequence_length, qa_config.max_answer_length,
                             bool(qa_config.version_2_with_negative),
                             float(qa_config.null_score_threshold))
    predictions, scores = {}, {}
    window_question = decoding["question_index"]
    for first in range(0, len(examples), QUESTIONS_PER_DECODE):
        chunk = examples[first:first + QUESTIONS_PER_DECODE]
        rows = slice(*np.searchsorted(window_question, [first, first + len(chunk)]))
        answers, chunk_scores = decode(
            decoding["token_starts"][rows], decoding["token_ends"][rows],
            window_question[rows] - first, np.asarray(outputs[start_key][rows], np.float32),
            np.asarray(outputs[end_key][rows], np.float32),
            tf.constant([example.context for example in chunk], tf.string))
        for example, answer, score in zip(chunk, answers.numpy(), chunk_scores.numpy()):
            predictions[example.question_id] = answer.decode("utf-8")
            scores[example.question_id] = float(score)
    return predictions, scores


def evaluate_span_model(model, examples, pipeline: SpanWindowPipeline, qa_config, out_dir: str,
                        name: str = "eval", batch_size: int = 32, baseline: bool = True,
                        source: str = "") -> dict:
    """Answers every question, scores the answers and writes the report and predictions.

    Args:
        model: a span model (`tfmm.models.span_model.build_span_model`).
        examples: the `SquadExample`s.
        pipeline: their windows (`SpanWindowPipeline.from_examples`).
        qa_config: the `tfmm.config.QuestionAnsweringConfig` (decoding settings).
        out_dir: folder of the report and the predictions (`RunFolder.report(name)`, ...).
        name: file prefix.
        batch_size: windows per forward pass.
        baseline: also score the sentence-overlap baseline on the same questions.
        source: where the examples came from (recorded in the report).

    Returns:
        The report dict.
    """
    outputs, _, loss = predict_dataset(model, pipeline.batches(batch_size), QuestionAnsweringTask())
    predictions, _ = decode_span_outputs(examples, pipeline, outputs, qa_config)
    metrics = evaluate_predictions(examples, predictions)
    report = {"task": QuestionAnsweringTask.name, "data": source, "questions": len(examples),
              "windows": pipeline.num_examples, "loss": loss,
              "version_2_with_negative": bool(qa_config.version_2_with_negative), **metrics}
    if baseline:
        report["overlap_baseline"] = evaluate_overlap_baseline(examples)
    tf.io.gfile.makedirs(out_dir)
    folder = RunFolder(out_dir)
    write_predictions(folder.predictions(name), predictions)
    report["predictions_file"] = os.path.basename(folder.predictions(name))
    write_json(folder.report(name), report)
    return report
