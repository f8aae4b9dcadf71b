"""Each encoder split at the input that attributions are computed on, and the model's rest.

Integrated gradients need a continuous input per modality and a baseline beside it:

    text   token embeddings [B, L, H] (BERT's `token_embedding` output, before the position
           and segment embeddings are added); baseline: zero vectors (position and segment
           embeddings and the padding stay as they are).
    image  pixels [B, S, S, 3] in [0, 255] (before ResNet's own normalisation); baseline: a
           black image (all 0).
    audio  log-Mel cells [B, T, F, 1], standardised per clip as the encoder's
           `spectrogram_normalization` does before its learned scale and offset ((x - mean) /
           sqrt(variance + epsilon) over the clip); baseline: all 0, which is what any constant
           spectrogram (silence) standardises to. (On the raw log-Mel, the straight path from a
           constant baseline passes the normalisation's division by ~0: its gradients blow up
           near the baseline and the integral's quadrature fails.)

`ModalityPaths(model)` gives, per modality, `attribution_input(features)`, `baseline(value)` and
`encode(value, features)` -> the modality's [B, D] vector, and `predict(vectors, masks)` runs
the fusion and the head on them: together, exactly the model's forward pass (checked in
tests/test_explain.py).
"""

import keras
import keras_hub
import tensorflow as tf

from tfmm.models.fusion.attention_fusion import AttentionFusion
from tfmm.models.log_mel_spectrogram import LogMelSpectrogram
from tfmm.models.pooling import MaskedMeanPooling
from tfmm.preprocessing.multimodal_preprocessor import MASK_SUFFIX

BASELINES = {"text": "zero token embeddings", "image": "black image (all pixels 0)",
             "audio": "standardised log-Mel all 0 (a constant spectrogram, e.g. silence)"}


def _layer_of_type(model, kind):
    for layer in model.layers:
        if isinstance(layer, kind):
            return layer
    raise ValueError(f"{model.name}: no {kind.__name__} layer")


def bert_from_token_embeddings(backbone, token_embeddings, segment_ids, padding_mask):
    """A keras-hub BertBackbone's sequence output [B, L, H] (inference mode) from its token
    embeddings [B, L, H] instead of the token ids: position and segment embeddings are added,
    then the embedding LayerNorm and the transformer layers run as in the backbone's graph."""
    token_embeddings = tf.cast(token_embeddings, backbone.compute_dtype)
    positions = backbone.position_embedding(token_embeddings)
    segments = backbone.segment_embedding(segment_ids)
    hidden = backbone.embeddings_add((token_embeddings, positions, segments))
    hidden = backbone.embeddings_layer_norm(hidden)
    for layer in backbone.transformer_layers:
        hidden = layer(hidden, padding_mask=padding_mask, training=False)
    return hidden


class TextPath:
    """BERT from its token embeddings on: embeddings -> positions, segments -> layers -> pool."""

    def __init__(self, encoder):
        features = encoder.get_layer("text_features")
        self.backbone = _layer_of_type(features, keras_hub.models.BertBackbone)
        self.pooling = _layer_of_type(features, MaskedMeanPooling)
        self.projection = encoder.get_layer("text_projection")

    def attribution_input(self, features):
        """float32 [B, L, H]: the token embeddings of `features["token_ids"]`."""
        return tf.cast(self.backbone.token_embedding(features["token_ids"]), tf.float32)

    def baseline(self, value):
        return tf.zeros_like(value)

    def encode(self, token_embeddings, features):
        """[B, L, H] token embeddings -> [B, D], as the text encoder in inference mode."""
        hidden = bert_from_token_embeddings(self.backbone, token_embeddings,
                                            features["segment_ids"], features["padding_mask"])
        return self.projection(self.pooling(hidden, features["padding_mask"]))


class ImagePath:
    """The image encoder as it is: pixels are its input."""

    def __init__(self, encoder):
        self.encoder = encoder

    def attribution_input(self, features):
        """float32 [B, S, S, 3] pixels in [0, 255]."""
        return tf.cast(features["image"], tf.float32)

    def baseline(self, value):
        return tf.zeros_like(value)

    def encode(self, pixels, features):
        return self.encoder(pixels, training=False)


class AudioPath:
    """The audio encoder from its standardised log-Mel spectrogram on."""

    def __init__(self, encoder):
        features = encoder.get_layer("audio_features")
        self.spectrogram = _layer_of_type(features, LogMelSpectrogram)
        layers = [layer for layer in features.layers
                  if not isinstance(layer, keras.layers.InputLayer)]
        # The feature part is one chain: every layer after the spectrogram, in order; the
        # first is the per-clip LayerNormalization, split into standardising and scale/offset.
        self.normalization = layers[layers.index(self.spectrogram) + 1]
        if not isinstance(self.normalization, keras.layers.LayerNormalization):
            raise ValueError(f"{encoder.name}: expected a LayerNormalization after the "
                             f"spectrogram, found {self.normalization.name}")
        self.after_normalization = layers[layers.index(self.normalization) + 1:]
        self.projection = encoder.get_layer("audio_projection")

    def log_mel(self, waveforms):
        """float32 [B, T, F, 1]: the log-Mel spectrogram (before standardising)."""
        return self.spectrogram(waveforms)

    def attribution_input(self, features):
        """float32 [B, T, F, 1] standardised log-Mel cells of `features["audio"]`."""
        log_mel = self.log_mel(features["audio"])
        axes = tuple(self.normalization.axis)
        mean, variance = tf.nn.moments(log_mel, axes=axes, keepdims=True)
        return (log_mel - mean) * tf.math.rsqrt(variance + self.normalization.epsilon)

    def baseline(self, value):
        return tf.zeros_like(value)

    def encode(self, standardised, features):
        norm = self.normalization
        hidden = standardised
        if norm.scale:
            hidden = hidden * tf.cast(norm.gamma, hidden.dtype)
        if norm.center:
            hidden = hidden + tf.cast(norm.beta, hidden.dtype)
        for layer in self.after_normalization:
            hidden = layer(hidden, training=False)
        return self.projection(hidden)


_PATHS = {"text": TextPath, "image": ImagePath, "audio": AudioPath}


class ModalityPaths:
    """The model as (attribution inputs per modality, masks) -> outputs.

    Args:
        model: a `tfmm.models.multimodal_model.MultimodalModel`.
    """

    def __init__(self, model):
        self.model = model
        self.modalities = tuple(model.modalities)
        self.paths = {name: _PATHS[name](model.encoders[name]) for name in self.modalities}
        self.has_attention = isinstance(model.fusion, AttentionFusion)

    def attribution_inputs(self, features) -> dict:
        return {name: path.attribution_input(features) for name, path in self.paths.items()}

    def baselines(self, values: dict) -> dict:
        return {name: self.paths[name].baseline(value) for name, value in values.items()}

    def masks(self, features):
        """float32 [B, M]: the modality masks in the fusion's order."""
        return tf.stack([tf.cast(features[name + MASK_SUFFIX], tf.float32)
                         for name in self.modalities], axis=1)

    def predict(self, values: dict, features, masks, return_attention=False):
        """The head's output [B, K] from attribution inputs (and the other features).

        Returns:
            The output; with return_attention (attention fusion only), (output, weights) with
            the weights of `AttentionFusion(return_attention_scores=True)`.
        """
        vectors = [self.paths[name].encode(values[name], features) for name in self.modalities]
        tokens = tf.stack([tf.cast(vector, tf.float32) for vector in vectors], axis=1)
        tokens = tf.cast(tokens, self.model.fusion.compute_dtype)
        masks = tf.cast(masks, tokens.dtype)
        if return_attention:
            fused, weights = self.model.fusion(tokens, masks, training=False,
                                               return_attention_scores=True)
            return tf.cast(self.model.head(fused, training=False), tf.float32), weights
        fused = self.model.fusion(tokens, masks, training=False) if self.has_attention else \
            self.model.fusion(tokens, masks)
        return tf.cast(self.model.head(fused, training=False), tf.float32)
