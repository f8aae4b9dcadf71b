"""Regression: T real-valued targets per example; mean squared error, scored by MAE."""

import os

import numpy as np
import tensorflow as tf

from tfmm.tasks.task import Task, as_float32, figure


class RegressionTask(Task):
    """Targets float [B, T] from the manifest's target field; the score is the mean absolute
    error (lower is better)."""

    name = "regression"
    output_keys = ("predictions",)
    score_name = "mae"
    table_columns = (("num_examples", "test examples"), ("mae", "MAE"), ("rmse", "RMSE"),
                     ("pearson_r", "Pearson r"))
    lower_score_is_better = True

    def num_outputs(self, labels, num_targets: int) -> int:
        return num_targets

    def read_answer(self, reader, record):
        return None, reader.read_target(record)

    def encode_targets(self, rows, labels):
        return np.asarray([row.target for row in rows], np.float32)

    def per_example_loss(self, targets, outputs, label_smoothing=0.0):
        error = as_float32(outputs["predictions"]) - as_float32(targets)
        return tf.reduce_mean(tf.square(error), axis=-1)

    def per_example_score(self, targets, outputs):
        error = as_float32(outputs["predictions"]) - as_float32(targets)
        return tf.reduce_mean(tf.abs(error), axis=-1)

    def metrics(self, outputs, targets, labels):
        from tfmm.evaluation.metrics import regression_metrics

        return regression_metrics(targets, np.asarray(outputs["predictions"]),
                                  list(labels) or None)

    def prediction_fields(self, outputs, rows, labels):
        predictions = np.asarray(outputs["predictions"], np.float64)
        return [{"target": list(row.target),
                 "prediction": [round(float(value), 6) for value in row_predictions],
                 "absolute_error": round(float(np.mean(np.abs(row_predictions
                                                              - np.asarray(row.target)))), 6)}
                for row, row_predictions in zip(rows, predictions)]

    def write_plots(self, report, outputs, targets, labels, out_dir, name):
        from tfmm.evaluation.plots import plot_regression_scatter

        path = os.path.join(out_dir, f"{name}_predictions.png")
        return {"scatter": plot_regression_scatter(targets, np.asarray(outputs["predictions"]),
                                                   path)}

    def headline(self, report):
        return (f"MAE {report['mae']:.4f}, RMSE {report['rmse']:.4f}, Pearson r "
                f"{figure(report, 'pearson_r')} on {report['num_examples']} examples")

    def serving_outputs(self, outputs, label_table):
        return {"predictions": as_float32(outputs["predictions"])}
