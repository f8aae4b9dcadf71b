"""What every task object provides: the one place that knows how a task differs.

A task owns its output keys, how manifest answers become targets, its loss, its one score
function (used for training logs, validation and per-group reports alike), its evaluation
metrics and report, and what the serving signature returns. Layers above and below ask the task;
none of them branches on the task's name.
"""

import numpy as np
import tensorflow as tf


class Task:
    """Base class of tfmm's tasks.

    Attributes:
        name: the `data.task` value ("multiclass", "multilabel", "regression", "qa").
        output_keys: the model outputs the loss and score read, in order.
        score_name: what `per_example_score` measures ("accuracy", "mae", ...), as logged.
        lower_score_is_better: True when the score is an error (regression's MAE).
        has_classes: the manifest's answers are class names (a label vocabulary exists).
        reads_jsonl_manifests: the task's data is a JSONL manifest (`tfmm.data.manifest`).
        table_columns: ((report key, column title), ...): the report's figures in train.py's
            table of stages, the number of examples first.
    """

    name = ""
    output_keys = ()
    score_name = ""
    lower_score_is_better = False
    has_classes = False
    reads_jsonl_manifests = True
    table_columns = ()

    # --- config ------------------------------------------------------------------------------
    def check_config(self, config):
        """Raises `tfmm.config.ConfigError` for settings this task cannot run with."""
        from tfmm.config import ConfigError  # config.py imports the task names from here

        data = config.data
        if data.num_targets < 1:
            raise ConfigError(f"`data.num_targets` must be >= 1 (numbers per regression "
                              f"target). Received: {data.num_targets}")
        if not data.train_manifest and not data.builder and not data.train_records:
            raise ConfigError("`data.train_manifest` is empty: give a JSONL manifest "
                              "(or `data.builder`).")

    # --- model -------------------------------------------------------------------------------
    def num_outputs(self, labels, num_targets: int) -> int:
        """Width of the head: classes, or regression targets."""
        raise NotImplementedError(f"{type(self).__name__} has no single-head output width")

    # --- data --------------------------------------------------------------------------------
    def read_answer(self, reader, record: dict) -> tuple:
        """(label, target) of one manifest record, checked by `reader` (a RowReader)."""
        raise NotImplementedError(f"{type(self).__name__} does not read JSONL manifests")

    def label_names(self, row) -> tuple:
        """The class names one manifest row holds (empty for tasks without classes)."""
        return ()

    def encode_targets(self, rows, labels) -> np.ndarray:
        """Manifest rows -> the target array the loss expects."""
        raise NotImplementedError(f"{type(self).__name__} does not read JSONL manifests")

    # --- training ----------------------------------------------------------------------------
    def per_example_loss(self, targets, outputs: dict, label_smoothing: float = 0.0):
        """float32 [B]: the loss of each example (averaging over the batch is the caller's)."""
        raise NotImplementedError

    def per_example_score(self, targets, outputs: dict):
        """float32 [B]: the task's score of each example (see `score_name`)."""
        raise NotImplementedError

    def score(self, outputs: dict, targets) -> float:
        """The mean of `per_example_score` over arrays (evaluation, per-group reports)."""
        return float(np.mean(self.per_example_score(targets, outputs)))

    def select_outputs(self, outputs: dict) -> dict:
        """The model outputs this task reads, as float32 (what evaluation collects)."""
        return {key: tf.cast(outputs[key], tf.float32) for key in self.output_keys}

    # --- evaluation --------------------------------------------------------------------------
    def metrics(self, outputs: dict, targets, labels) -> dict:
        """The metrics the task's community reports, on arrays of a whole split."""
        raise NotImplementedError

    def write_plots(self, report: dict, outputs: dict, targets, labels, out_dir: str,
                    name: str) -> dict:
        """Writes the task's plots; returns {plot kind: path}."""
        return {}

    def headline(self, report: dict) -> str:
        """One line with the metrics a community reports for the task."""
        raise NotImplementedError

    def prediction_fields(self, outputs: dict, rows, labels) -> list:
        """One JSON-ready dict per example: its answer in the manifest and the model's
        prediction (the lines of an evaluation's `{name}_predictions.jsonl`; question answering
        writes the official {question id: answer} file instead).

        Args:
            outputs: {output key: float32 [N, ...]} as `predict_dataset` collects them.
            rows: the N `ManifestRow`s, in the same order.
            labels: class names (classification) or target names (regression).
        """
        raise NotImplementedError

    # --- explanation (tfmm/explain) ----------------------------------------------------------
    def explained_scores(self, outputs):
        """float32 [N, K]: what explanations attribute, per unit of the head's output [N, K]
        (graph-safe): the prediction itself here; probabilities for classification."""
        return as_float32(outputs)

    def explained_index(self, outputs):
        """int32 [N]: the output unit each explanation is about (target 0 here; the predicted
        class for classification)."""
        return tf.zeros(tf.shape(outputs)[:1], tf.int32)

    def explained_answer(self, output: np.ndarray, index: int, labels, answer) -> tuple:
        """(predicted answer, explained score, correct or None) of one example's output [K]."""
        return output.tolist(), float(output[index]), None

    # --- serving -----------------------------------------------------------------------------
    def serving_outputs(self, outputs: dict, label_table: tf.Tensor) -> dict:
        """The serving signature's outputs from the model's outputs (in a tf.function)."""
        raise NotImplementedError


def as_float32(value):
    return tf.cast(value, tf.float32)


def figure(report: dict, key: str) -> str:
    """A report's metric with 4 decimals, or "n/a" when it is undefined (None)."""
    value = report.get(key)
    return "n/a" if value is None else f"{value:.4f}"
