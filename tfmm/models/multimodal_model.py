"""The multimodal model: encoders -> modality masks (+ dropout) -> fusion -> task head."""

import keras

from tfmm.models.audio_encoder import build_audio_encoder
from tfmm.models.fusion.attention_fusion import AttentionFusion
from tfmm.models.fusion.concat_fusion import ConcatFusion
from tfmm.models.fusion.modality_dropout import ModalityDropout
from tfmm.models.heads.task_head import TaskHead
from tfmm.models.image_encoder import build_image_encoder
from tfmm.models.text_encoder import TEXT_INPUTS, build_text_encoder, load_bert_backbone
from tfmm.preprocessing.multimodal_preprocessor import MASK_SUFFIX
from tfmm.tasks import get_task


def build_multimodal_model(config, num_outputs: int, text_backbone=None) -> keras.Model:
    """Builds the functional model that a `tfmm.config.Config` describes.

    Any non-empty subset of ("text", "image", "audio") gives the same graph shape: one
    [projection_dim] vector per modality, stacked into tokens [B, M, D] with masks [B, M].

    Args:
        config: a `tfmm.config.Config` (its `data` and `model` sections are read).
        num_outputs: classes (classification) or targets (regression).
        text_backbone: an already loaded keras-hub BertBackbone; loaded from
            `config.model.text_preset` when None.

    Returns:
        A keras.Model taking the dict that `MultimodalPreprocessor` produces and returning
        {"logits": float32 [B, num_outputs]} (classification) or {"predictions": ...}
        (regression).
    """
    data, model_config = config.data, config.model
    inputs, embeddings, masks = {}, [], []
    for modality in data.modalities:
        mask = keras.Input((), dtype="float32", name=modality + MASK_SUFFIX)
        inputs[mask.name] = mask
        masks.append(mask)
        if modality == "text":
            backbone = text_backbone or load_bert_backbone(model_config.text_preset)
            # Length buckets feed batches cut to several lengths: the text inputs take any.
            text_length = None if data.text_length_buckets else data.text_sequence_length
            encoder = build_text_encoder(backbone, text_length, model_config.projection_dim,
                                         freeze=model_config.freeze_text_encoder)
            text_inputs = {name: keras.Input((text_length,), dtype="int32", name=name)
                           for name in TEXT_INPUTS}
            inputs.update(text_inputs)
            embeddings.append(encoder(text_inputs))
        elif modality == "image":
            encoder = build_image_encoder(
                data.image_size, model_config.projection_dim, weights=model_config.image_weights,
                freeze=model_config.freeze_image_encoder,
                augmentation=model_config.image_augmentation,
                batchnorm_momentum=model_config.image_batchnorm_momentum,
                seed=config.training.seed)
            image = keras.Input((data.image_size, data.image_size, 3), name="image")
            inputs["image"] = image
            embeddings.append(encoder(image))
        elif modality == "audio":
            encoder = build_audio_encoder(
                data.audio_length, data.audio_sample_rate, model_config.projection_dim,
                frame_length=model_config.audio_frame_length,
                frame_step=model_config.audio_frame_step,
                num_mel_bins=model_config.audio_num_mel_bins,
                conv_filters=model_config.audio_conv_filters, dropout=model_config.dropout,
                freeze=model_config.freeze_audio_encoder,
                batchnorm_momentum=model_config.audio_batchnorm_momentum)
            audio = keras.Input((data.audio_length,), name="audio")
            inputs["audio"] = audio
            embeddings.append(encoder(audio))
    if model_config.fusion == "concat":
        fusion = ConcatFusion(name="concat_fusion")
    else:
        fusion = AttentionFusion(num_heads=model_config.fusion_num_heads,
                                 num_layers=model_config.fusion_num_layers,
                                 dropout=model_config.dropout, name="attention_fusion")
    modality_dropout = ModalityDropout(model_config.modality_dropout, seed=config.training.seed,
                                       name="modality_dropout")
    head = TaskHead(data.task, num_outputs, hidden_dim=model_config.head_hidden_dim,
                    dropout=model_config.dropout, name="task_head")
    outputs = fuse_and_predict(embeddings, masks, modality_dropout, fusion, head, data.task)
    return keras.Model(inputs, outputs, name="tfmm_multimodal")


def fuse_and_predict(embeddings, masks, modality_dropout, fusion, head, task: str) -> dict:
    """Modality vectors [B, D] and masks [B] -> tokens [B, M, D] -> fusion -> {head kind: [B, K]}.

    The layers come from the caller, so a model over cached encoder features
    (`tfmm.training.feature_cache`) can share them with the full model.
    """
    width = embeddings[0].shape[-1]
    tokens = keras.layers.Concatenate(axis=1, name="modality_tokens")(
        [keras.layers.Reshape((1, width))(vector) for vector in embeddings])
    stacked_masks = keras.layers.Concatenate(axis=1, name="modality_masks")(
        [keras.layers.Reshape((1,))(mask) for mask in masks])
    fused = fusion(tokens, modality_dropout(stacked_masks))
    (output_key,) = get_task(task).output_keys
    return {output_key: head(fused)}
