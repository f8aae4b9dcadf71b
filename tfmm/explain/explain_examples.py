"""Explaining examples of a multimodal model: removal importance, attributions, fusion attention.

`ExampleExplainer(model, task_name, tokenizer)` turns a batch of preprocessed features into one
`Explanation` per example: the JSON record (`record`) and the arrays its figure is drawn from.

    explainer = ExampleExplainer(run.model, "multiclass", tokenizer, steps=32)
    for explanation in explainer.explain_batch(features, rows, labels):
        write_json(path, explanation.record)
"""

import dataclasses

import numpy as np
import tensorflow as tf

from tfmm.explain.fusion_attention import attention_weights
from tfmm.explain.integrated_gradients import IntegratedGradients, check_method
from tfmm.explain.modality_paths import BASELINES, ModalityPaths
from tfmm.explain.removal import removal_importance
from tfmm.tasks import get_task


@dataclasses.dataclass
class Explanation:
    """One example explained.

    Attributes:
        record: the JSON-ready record (see `ExampleExplainer.explain_batch`).
        arrays: what the figure shows: "image" [S, S, 3] and "image_attribution" [S, S];
            "waveform" [N], "log_mel" [T, F] and "log_mel_attribution" [T, F].
    """

    record: dict
    arrays: dict


def most_important(importance: dict):
    """The modality with the largest importance (None values skipped), or None."""
    known = {name: value for name, value in importance.items() if value is not None}
    return max(known, key=known.get) if known else None


def _number(value):
    return None if value is None or not np.isfinite(value) else float(value)


class ExampleExplainer:
    """Explains examples of one model.

    Args:
        model: a tfmm `MultimodalModel`.
        task_name: "multiclass", "multilabel" or "regression".
        tokenizer: the run's BERT tokenizer (for the words of text attributions), or None.
        steps, method: see `IntegratedGradients`.
    """

    def __init__(self, model, task_name: str, tokenizer=None, steps: int = 32,
                 method: str = "integrated_gradients"):
        self.model = model
        self.task_name = task_name
        self.tokenizer = tokenizer
        self.paths = ModalityPaths(model)
        check_method(method, steps)
        self.method = method
        self.attributor = (IntegratedGradients(self.paths, task_name, steps, method)
                           if method != "none" else None)
        # Compiled once: eager calls through ResNet50 cost seconds per batch.
        self._forward = tf.function(lambda features: model(features, training=False),
                                    reduce_retracing=True)
        self._attention = tf.function(lambda features: attention_weights(self.paths, features),
                                      reduce_retracing=True)

    def explained_indices(self, outputs) -> np.ndarray:
        """int [B]: the class each example's explanation is about (the predicted one; target 0
        for regression)."""
        return get_task(self.task_name).explained_index(np.asarray(outputs)).numpy()

    def explain_batch(self, features, rows, labels=()) -> list:
        """Explanations of a batch.

        Args:
            features: the model's input features of B examples (as the pipeline batches them).
            rows: the B `ManifestRow`s (id, label, extra fields).
            labels: class names of the run (empty for regression).

        Returns:
            B `Explanation`s; each record holds id, label, predicted, score (the explained
            probability or prediction), correct, the row's extra fields, "removal"
            {modality: importance or None}, "attribution" (method, steps, baselines,
            per_modality mass, score, baseline_score, completeness_error), "most_important"
            {"removal", "attribution"}, "text_tokens" [[token, attribution], ...] and, with
            attention fusion, "fusion_attention" {layer: [head][query][modality] weights}.
        """
        (outputs,) = self._forward(features).values()
        outputs = tf.cast(outputs, tf.float32).numpy()
        indices = self.explained_indices(outputs)
        removal = removal_importance(self.model, features, self.task_name, indices,
                                     forward=self._forward)
        weights = None
        if self.paths.has_attention:
            weights = {name: value.numpy() for name, value in self._attention(features).items()}
        explanations = []
        for position, row in enumerate(rows):
            one = {key: value[position:position + 1] for key, value in features.items()}
            attribution = (self.attributor(one, int(indices[position])) if self.attributor
                           else None)
            record = self._record(row, labels, outputs[position], int(indices[position]),
                                  attribution, one)
            record["removal"] = {name: _number(values[position])
                                 for name, values in removal.items()}
            record["most_important"] = {
                "removal": most_important(record["removal"]),
                "attribution": (most_important(record["attribution"]["per_modality"])
                                if attribution else None)}
            if weights is not None:
                record["fusion_attention"] = {layer: value[position].tolist()
                                              for layer, value in weights.items()}
            explanations.append(Explanation(record, self._arrays(one, attribution)))
        return explanations

    def _record(self, row, labels, output, index, attribution, one) -> dict:
        predicted, score, correct = get_task(self.task_name).explained_answer(
            output, index, labels, row.label)
        record = {"id": row.id, "label": row.label if row.target is None else list(row.target),
                  "predicted": predicted, "explained": labels[index] if labels else index,
                  "score": score, "correct": correct, "fields": dict(row.extra),
                  "attribution": None}
        if attribution is None:  # method "none"
            return record
        record["attribution"] = {
            "method": self.attributor.method, "steps": self.attributor.steps,
            "baselines": {name: BASELINES[name] for name in self.paths.modalities},
            "per_modality": attribution.per_modality(), "score": attribution.score,
            "baseline_score": attribution.baseline_score,
            "completeness_error": attribution.completeness_error()}
        if "text" in attribution.values:
            record["text_tokens"] = self._token_attributions(one, attribution)
        return record

    def _token_attributions(self, one, attribution) -> list:
        """[[token, attribution summed over the embedding], ...] of the real tokens."""
        per_token = attribution.values["text"].sum(axis=-1)  # [L]
        token_ids = np.asarray(one["token_ids"][0])
        mask = np.asarray(one["padding_mask"][0])
        words = []
        for token_id, value, present in zip(token_ids, per_token, mask):
            if present:
                token = (self.tokenizer.id_to_token(int(token_id)) if self.tokenizer is not None
                         else str(int(token_id)))
                words.append([token, float(value)])
        return words

    def _arrays(self, one, attribution) -> dict:
        arrays = {}
        if attribution is None:
            return arrays
        if "image" in attribution.values:
            arrays["image"] = np.asarray(one["image"][0], np.float32)
            arrays["image_attribution"] = attribution.values["image"].sum(axis=-1)
        if "audio" in attribution.values:
            arrays["waveform"] = np.asarray(one["audio"][0], np.float32)
            arrays["log_mel"] = self.paths.paths["audio"].log_mel(one["audio"]).numpy()[0, :, :, 0]
            arrays["log_mel_attribution"] = attribution.values["audio"][:, :, 0]
        return arrays
