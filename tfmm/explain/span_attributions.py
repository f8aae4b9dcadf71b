"""Token attributions of an extractive QA model's start and end logits (integrated gradients).

For one window (question and context tokens, as the span pipeline makes them), the attributions
of the start logit at the answer's first token and of the end logit at its last token, over the
token embeddings of every real token (baseline: zero token embeddings, position and segment
embeddings unchanged, as for the text of `tfmm.explain.modality_paths`). Both sum to their
logit's change from the baseline within the quadrature error (the result holds both sides).

    attributor = SpanAttributions(span_model, steps=64)
    result = attributor(window_features, start=12, end=14)
    result["start"]  # float [L]: per-token attribution of the start logit
"""

import numpy as np
import tensorflow as tf

from tfmm.explain.integrated_gradients import ExplainMethodError
from tfmm.explain.modality_paths import bert_from_token_embeddings


class SpanAttributions:
    """Integrated gradients of a `SpanModel`'s start and end logits over token embeddings.

    Args:
        model: a `tfmm.models.span_model.SpanModel`.
        steps: intervals of the integral (>= 1).
    """

    def __init__(self, model, steps: int = 64):
        if steps < 1:
            raise ExplainMethodError(f"--steps must be >= 1. Received: {steps}")
        self.model = model
        self.steps = steps
        self._gradients = tf.function(self._logits_and_gradients, reduce_retracing=True)

    def logits(self, token_embeddings, features):
        """(start_logits, end_logits) float32 [B, L] from token embeddings [B, L, H]."""
        sequence = bert_from_token_embeddings(self.model.backbone, token_embeddings,
                                              features["segment_ids"], features["padding_mask"])
        return self.model.head(sequence, features["padding_mask"])

    def _logits_and_gradients(self, path, features, start, end):
        with tf.GradientTape(persistent=True) as tape:
            tape.watch(path)
            start_logits, end_logits = self.logits(path, features)
            start_score = start_logits[:, start]
            end_score = end_logits[:, end]
        gradients = (tape.gradient(start_score, path), tape.gradient(end_score, path))
        del tape
        return start_score, end_score, gradients

    def __call__(self, features, start: int, end: int) -> dict:
        """Attributions of one window.

        Args:
            features: {"token_ids", "segment_ids", "padding_mask"} int32 [1, L].
            start, end: the token positions whose start and end logits are explained.

        Returns:
            {"start", "end": float64 [L] per-token attributions (0 on padding);
            "start_logit", "end_logit": the logits; "start_baseline_logit",
            "end_baseline_logit": the same at the baseline}.
        """
        embeddings = tf.cast(self.model.backbone.token_embedding(features["token_ids"]),
                             tf.float32)
        alphas = tf.reshape(tf.linspace(0.0, 1.0, self.steps + 1), (-1, 1, 1))
        path = alphas * embeddings  # baseline: zero token embeddings
        count = self.steps + 1
        repeated = {key: tf.repeat(value, count, axis=0) for key, value in features.items()}
        start_scores, end_scores, gradients = self._gradients(
            path, repeated, tf.constant(start, tf.int32), tf.constant(end, tf.int32))
        result = {}
        for name, gradient in zip(("start", "end"), gradients):
            gradient = gradient.numpy().astype(np.float64)
            average = ((gradient[:-1] + gradient[1:]) / 2).mean(axis=0)
            result[name] = (embeddings.numpy()[0].astype(np.float64) * average).sum(axis=-1)
        result["start_logit"], result["start_baseline_logit"] = (
            float(start_scores[-1]), float(start_scores[0]))
        result["end_logit"], result["end_baseline_logit"] = (
            float(end_scores[-1]), float(end_scores[0]))
        return result
