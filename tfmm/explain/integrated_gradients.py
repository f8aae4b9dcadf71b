"""Integrated gradients (and gradient x input) of one output score over every modality's input.

For an example x, a baseline b (per modality, see `tfmm.explain.modality_paths.BASELINES`) and
the score f (the predicted class's probability; see `task_score`), integrated gradients is

    attribution_i = (x_i - b_i) * mean over alpha of df/dx_i (b + alpha (x - b)),

with alpha on `steps` equal intervals of [0, 1] (trapezoidal rule). All modalities move from
their baselines together, so the attributions of all inputs sum to f(x) - f(b) up to the
quadrature error (completeness; the record holds both sides). "gradient_x_input" is the one-point
version: (x - b) * df/dx (x). A modality's mass is the sum of its attributions.

    attributor = IntegratedGradients(ModalityPaths(model), "multiclass", steps=32)
    result = attributor(features_of_one_example, class_index)
"""

import dataclasses

import numpy as np
import tensorflow as tf

from tfmm.errors import UserError
from tfmm.tasks import get_task

METHODS = ("integrated_gradients", "gradient_x_input")
# What explain.py accepts: an attribution method, or "none" (removal and attention only).
EXPLAIN_METHODS = METHODS + ("none",)


class ExplainMethodError(UserError):
    """An attribution method or step count that does not exist."""


def check_method(method: str, steps: int) -> None:
    """Raises ExplainMethodError for a method not in EXPLAIN_METHODS or steps < 1."""
    if method not in EXPLAIN_METHODS:
        raise ExplainMethodError(f"--method must be one of {list(EXPLAIN_METHODS)}. Received: "
                                 f"{method!r}")
    if steps < 1:
        raise ExplainMethodError(f"--steps must be >= 1. Received: {steps}")


def task_score(task_name: str, outputs, index):
    """float32 [N]: the score explained, per row of the head's output [N, K].

    multiclass: softmax probability of class `index`; multilabel: sigmoid of its logit;
    regression: target `index` of the prediction.
    """
    return tf.gather(get_task(task_name).explained_scores(outputs), index, axis=1)


@dataclasses.dataclass
class Attribution:
    """Attributions of one example.

    Attributes:
        values: {modality: float32 array shaped like its attribution input, batch dim dropped}.
        score: f(x); baseline_score: f(b) (all modalities at their baselines).
    """

    values: dict
    score: float
    baseline_score: float

    def per_modality(self) -> dict:
        """{modality: sum of its attributions} (signed mass)."""
        return {name: float(value.sum()) for name, value in self.values.items()}

    def completeness_error(self) -> float:
        """|sum of all attributions - (f(x) - f(b))|."""
        total = sum(self.per_modality().values())
        return abs(total - (self.score - self.baseline_score))


def _repeat(features, count):
    return {key: tf.repeat(value, count, axis=0) for key, value in features.items()}


class IntegratedGradients:
    """Attributions of `task_score` over every modality's attribution input.

    Args:
        paths: a `ModalityPaths` of the model.
        task_name: "multiclass", "multilabel" or "regression".
        steps: intervals of the integral (integrated_gradients; >= 1).
        method: "integrated_gradients" or "gradient_x_input".
    """

    def __init__(self, paths, task_name: str, steps: int = 32,
                 method: str = "integrated_gradients"):
        check_method(method, steps)
        if method == "none":
            raise ExplainMethodError("IntegratedGradients needs an attribution method")
        self.paths = paths
        self.task_name = task_name
        self.steps = steps
        self.method = method
        self._gradients = tf.function(self._scores_and_gradients, reduce_retracing=True)

    def _scores_and_gradients(self, values, features, masks, index):
        with tf.GradientTape() as tape:
            tape.watch(values)
            outputs = self.paths.predict(values, features, masks)
            scores = task_score(self.task_name, outputs, index)
        return scores, tape.gradient(scores, values)

    def __call__(self, features, index: int) -> Attribution:
        """Attributions of one example.

        Args:
            features: the model's input features of ONE example (batch dimension 1).
            index: the class (or target) whose score is explained.
        """
        inputs = self.paths.attribution_inputs(features)
        baselines = self.paths.baselines(inputs)
        masks = self.paths.masks(features)
        if self.method == "integrated_gradients":
            alphas = tf.linspace(0.0, 1.0, self.steps + 1)
        else:  # the baseline (for f(b)) and the input
            alphas = tf.constant([0.0, 1.0])
        count = int(alphas.shape[0])
        path = {}
        for name, value in inputs.items():
            shape = [count] + [1] * (len(value.shape) - 1)
            path[name] = baselines[name] + tf.reshape(alphas, shape) * (value - baselines[name])
        scores, gradients = self._gradients(path, _repeat(features, count),
                                            tf.repeat(masks, count, axis=0),
                                            tf.constant(index, tf.int32))
        values = {}
        for name, gradient in gradients.items():
            if gradient is None:  # an input the score does not depend on at all
                gradient = tf.zeros_like(path[name])
            gradient = gradient.numpy().astype(np.float64)
            if self.method == "integrated_gradients":
                average = ((gradient[:-1] + gradient[1:]) / 2).mean(axis=0)
            else:
                average = gradient[-1]
            difference = (inputs[name] - baselines[name]).numpy()[0].astype(np.float64)
            values[name] = difference * average
        scores = scores.numpy()
        return Attribution(values, float(scores[-1]), float(scores[0]))
