"""Extractive question answering: a span head (start and end logits per token) on a BERT backbone.

    {"token_ids", "segment_ids", "padding_mask"} int32 [B, L]
        -> keras-hub BertBackbone sequence output [B, L, H]
        -> SpanLogits: Dense(2) in float32, padding positions set to MASKED_LOGIT
        -> {"start_logits": float32 [B, L], "end_logits": float32 [B, L]}

Position 0 ([CLS]) stays unmasked: it is the "no answer in this window" target (SQuAD v2.0, and
windows that do not hold the answer).

Example:
    backbone = load_bert_backbone("minilm")
    model = build_span_model(backbone, sequence_length=384)  # a SpanModel
    model.backbone, model.head  # the BertBackbone and the SpanLogits the graph calls
"""

import keras
from keras import ops

from tfmm.models.encoder_features import EncoderFeatures
from tfmm.models.text_encoder import TEXT_INPUTS, set_backbone_trainable
from tfmm.tasks import QuestionAnsweringTask

# Logit given to padding positions: far below any real logit, yet finite (softmax stays defined
# and start + end of two masked tokens does not overflow float32).
MASKED_LOGIT = -1e9


@keras.saving.register_keras_serializable(package="tfmm")
class SpanLogits(keras.layers.Layer):
    """Start and end logits of every token, computed in float32, padding masked.

    Args:
        initializer_range: standard deviation of the truncated-normal kernel initializer.

    Call arguments:
        sequence: [B, L, H] token representations.
        padding_mask: [B, L] (bool or int), True/1 for real tokens.

    Returns:
        (start_logits, end_logits), each float32 [B, L].
    """

    def __init__(self, initializer_range=0.02, **kwargs):
        super().__init__(**kwargs)
        self.initializer_range = initializer_range
        self.dense = keras.layers.Dense(
            2, kernel_initializer=keras.initializers.TruncatedNormal(stddev=initializer_range),
            dtype="float32", name="span_logits_dense")

    def build(self, sequence_shape, padding_mask_shape=None):
        self.dense.build(sequence_shape)
        self.built = True

    def call(self, sequence, padding_mask):
        logits = self.dense(ops.cast(sequence, "float32"))
        is_real = ops.cast(padding_mask, "bool")
        start_logits = ops.where(is_real, logits[..., 0], MASKED_LOGIT)
        end_logits = ops.where(is_real, logits[..., 1], MASKED_LOGIT)
        return start_logits, end_logits

    def compute_output_shape(self, sequence_shape, padding_mask_shape=None):
        return (tuple(sequence_shape[:-1]), tuple(sequence_shape[:-1]))

    def get_config(self):
        config = super().get_config()
        config.update({"initializer_range": self.initializer_range})
        return config


@keras.saving.register_keras_serializable(package="tfmm")
class SpanModel(keras.Model):
    """A span head on a BERT backbone, both kept as attributes (`backbone`, `head`).

    Args:
        backbone: a keras-hub BertBackbone.
        head: a `SpanLogits` layer.
        sequence_length: static window length L.
        freeze_backbone: keep the backbone's weights fixed and run it in inference mode (no
            dropout, also in training: it is then a frozen `EncoderFeatures`, "text_features");
            only the span head trains.

    Inputs: {"token_ids", "segment_ids", "padding_mask"} int32 [B, L].
    Outputs: {"start_logits", "end_logits"} float32 [B, L], padding positions at MASKED_LOGIT.
    """

    def __init__(self, backbone, head, sequence_length, freeze_backbone=False, **kwargs):
        # === Layers ===
        self.backbone = backbone
        self.head = head
        self.sequence_length = sequence_length
        self.freeze_backbone = freeze_backbone

        # === Functional graph ===
        def text_inputs():
            return {name: keras.Input((sequence_length,), dtype="int32", name=name)
                    for name in TEXT_INPUTS}

        inputs = text_inputs()
        if freeze_backbone:
            feature_inputs = text_inputs()
            features = EncoderFeatures(feature_inputs, backbone(feature_inputs)["sequence_output"],
                                       name="text_features")
            features.trainable = False
            sequence = features(inputs)
        else:
            sequence = backbone(inputs)["sequence_output"]
        set_backbone_trainable(backbone, not freeze_backbone)
        start_logits, end_logits = head(sequence, inputs["padding_mask"])
        start_key, end_key = QuestionAnsweringTask.output_keys
        super().__init__(inputs, {start_key: start_logits, end_key: end_logits}, **kwargs)

    def get_config(self):
        # Not the functional config: `from_config` rebuilds the graph from the parts.
        return {"backbone": keras.layers.serialize(self.backbone),
                "head": keras.layers.serialize(self.head),
                "sequence_length": self.sequence_length,
                "freeze_backbone": self.freeze_backbone, "name": self.name}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        for part in ("backbone", "head"):
            config[part] = keras.layers.deserialize(config[part])
        return cls(**config)


def build_span_model(backbone, sequence_length: int, freeze_backbone: bool = False) -> SpanModel:
    """The question-answering model over a keras-hub BertBackbone of any preset.

    Args:
        backbone: a keras-hub BertBackbone (see `tfmm.models.text_encoder.load_bert_backbone`).
        sequence_length: static window length L.
        freeze_backbone: see `SpanModel`.

    Returns:
        A `SpanModel`: {"token_ids", "segment_ids", "padding_mask"} int32 [B, L] ->
        {"start_logits", "end_logits"} float32 [B, L], padding positions at MASKED_LOGIT.
    """
    return SpanModel(backbone, SpanLogits(name="span_logits"), sequence_length,
                     freeze_backbone=freeze_backbone, name="tfmm_span")
