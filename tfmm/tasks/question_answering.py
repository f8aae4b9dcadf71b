"""Extractive question answering (SQuAD format): start and end logits over a window's tokens.

The model is a span model (`tfmm.models.span_model`); one training example is one window of a
question's context (`tfmm.data.span_pipeline`). Answers are decoded from the logits in the graph
(`tfmm.evaluation.span_decoding`) and scored by the official SQuAD definitions
(`tfmm.evaluation.squad_metrics`); the QA recipe (`tfmm.recipes.qa`) runs both.
"""

import tensorflow as tf

from tfmm.tasks.task import Task, as_float32


class QuestionAnsweringTask(Task):
    """Targets are {"start_positions", "end_positions"} int [B]; the training score is the share
    of windows whose arg-max start and end tokens both equal the targets."""

    name = "qa"
    output_keys = ("start_logits", "end_logits")
    score_name = "span_exact"
    table_columns = (("total", "eval questions"), ("exact_match", "exact match"), ("f1", "F1"))
    reads_jsonl_manifests = False  # SQuAD JSON files (tfmm.data.squad)

    def check_config(self, config):
        from tfmm.config import check_question_answering

        check_question_answering(config)

    def _logits(self, outputs):
        return as_float32(outputs["start_logits"]), as_float32(outputs["end_logits"])

    def per_example_loss(self, targets, outputs, label_smoothing=0.0):
        # The mean of the start and end cross-entropies (BERT's SQuAD loss).
        start_logits, end_logits = self._logits(outputs)
        start_loss = tf.nn.sparse_softmax_cross_entropy_with_logits(
            tf.cast(targets["start_positions"], tf.int32), start_logits)
        end_loss = tf.nn.sparse_softmax_cross_entropy_with_logits(
            tf.cast(targets["end_positions"], tf.int32), end_logits)
        return 0.5 * (start_loss + end_loss)

    def per_example_score(self, targets, outputs):
        start_logits, end_logits = self._logits(outputs)
        start_right = tf.equal(tf.argmax(start_logits, -1, output_type=tf.int32),
                               tf.cast(targets["start_positions"], tf.int32))
        end_right = tf.equal(tf.argmax(end_logits, -1, output_type=tf.int32),
                             tf.cast(targets["end_positions"], tf.int32))
        return as_float32(tf.logical_and(start_right, end_right))

    def headline(self, report):
        text = (f"exact match {report['exact_match']:.2f}, F1 {report['f1']:.2f} on "
                f"{report['total']} questions")
        if "HasAns_f1" in report:
            text += f" (HasAns F1 {report['HasAns_f1']:.2f}, NoAns F1 {report['NoAns_f1']:.2f})"
        baseline = report.get("overlap_baseline")
        if baseline:
            text += (f"; sentence-overlap baseline: exact match {baseline['exact_match']:.2f}, "
                     f"F1 {baseline['f1']:.2f}")
        return text
