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
        from tfmm.config import ConfigError, check_choice  # config.py imports task names

        qa = config.qa
        check_choice("qa.tfds_version", qa.tfds_version, ("", "v1.1", "v2.0"))
        for key in ("max_sequence_length", "doc_stride", "max_query_length", "max_answer_length"):
            if getattr(qa, key) <= 0:
                raise ConfigError(f"`qa.{key}` must be > 0. Received: {getattr(qa, key)}")
        if qa.max_query_length > qa.max_sequence_length - 4:
            raise ConfigError("`qa.max_query_length` must leave room for [CLS], [SEP], [SEP] "
                              "and one context token: at most `qa.max_sequence_length` - 4 "
                              f"({qa.max_sequence_length - 4}). Received: {qa.max_query_length}")
        if not 0.0 < qa.eval_fraction < 1.0:
            raise ConfigError(f"`qa.eval_fraction` must be in (0, 1). Received: "
                              f"{qa.eval_fraction}")
        if not qa.train_file and not qa.tfds_version:
            raise ConfigError("`qa.train_file` is empty: give a SQuAD JSON file (or "
                              "`qa.tfds_version` 'v1.1' / 'v2.0' for TensorFlow Datasets)")

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
