"""The multimodal model: encoders -> modality masks (+ dropout) -> fusion -> task head.

`MultimodalModel` is a functional Keras model composed of the layer objects it is given, which it
keeps as attributes (`encoders`, `modality_dropout`, `fusion`, `head`): code that needs a part
(feature caching, encoder transfer) takes it from there instead of looking it up by name.
`build_multimodal_model` builds those parts from a `tfmm.config.Config`.

Example:
    model = build_multimodal_model(config, num_outputs=10)
    model.encoders["audio"]  # the audio encoder the graph calls
    model.save("model.keras")  # keras.saving.load_model gives a MultimodalModel back
"""

import keras

from tfmm.augmentation_config import augmentation_options
from tfmm.models.audio_encoder import build_audio_encoder
from tfmm.models.fusion.attention_fusion import AttentionFusion
from tfmm.models.fusion.concat_fusion import ConcatFusion
from tfmm.models.fusion.modality_dropout import ModalityDropout
from tfmm.models.heads.task_head import TaskHead
from tfmm.models.image_encoder import build_image_encoder
from tfmm.models.text_encoder import build_text_encoder, load_bert_backbone
from tfmm.models.token_masking import bert_special_token_ids
from tfmm.models.video_encoder import build_video_encoder
from tfmm.preprocessing.multimodal_preprocessor import MASK_SUFFIX
from tfmm.tasks import get_task


@keras.saving.register_keras_serializable(package="tfmm")
class MultimodalModel(keras.Model):
    """Encoders -> one vector per modality -> modality dropout -> fusion -> task head.

    Any non-empty subset of ("text", "image", "audio") gives the same graph shape: one [D] vector
    per modality, stacked into tokens [B, M, D] with masks [B, M].

    Args:
        encoders: {modality: encoder}, in the order the fusion sees the modalities; each
            encoder is a keras.Model from its raw input(s) to [B, D] (see `build_text_encoder`,
            `build_image_encoder`, `build_audio_encoder`). The model's inputs take the encoders'
            input names, shapes and dtypes.
        fusion: a fusion layer, (tokens [B, M, D], masks [B, M]) -> [B, F].
        modality_dropout: a `ModalityDropout` layer, masks [B, M] -> masks [B, M].
        head: a `TaskHead`, [B, F] -> [B, K]; its `task` names the output key.

    Inputs: {"<modality>_mask": float32 [B]} and each encoder's inputs ("token_ids",
    "segment_ids", "padding_mask" int32 [B, L]; "image" float32 [B, S, S, 3]; "audio" float32
    [B, N]), as `MultimodalPreprocessor` produces them.
    Outputs: {"logits": float32 [B, K]} (classification) or {"predictions": ...} (regression).

    Saved with `model.save`, it is rebuilt from these parts' configs by
    `keras.saving.load_model` (after `import tfmm`), attributes included.
    """

    def __init__(self, encoders, fusion, modality_dropout, head, **kwargs):
        if not encoders:
            raise ValueError("MultimodalModel: `encoders` must name at least one modality. "
                             f"Received: encoders={encoders!r}")
        # === Layers ===
        self.modalities = tuple(encoders)
        self.encoders = dict(encoders)
        self.modality_dropout = modality_dropout
        self.fusion = fusion
        self.head = head

        # === Functional graph ===
        inputs, embeddings, masks = {}, [], []
        for modality, encoder in encoders.items():
            mask = keras.Input((), dtype="float32", name=modality + MASK_SUFFIX)
            inputs[mask.name] = mask
            masks.append(mask)
            encoder_inputs, named = new_encoder_inputs(encoder)
            inputs.update(named)
            embeddings.append(encoder(encoder_inputs))
        outputs = fuse_and_predict(embeddings, masks, modality_dropout, fusion, head, head.task)
        super().__init__(inputs=inputs, outputs=outputs, **kwargs)

    def get_config(self):
        # Not the functional config: `from_config` rebuilds the graph from the parts.
        return {"encoders": {modality: keras.layers.serialize(encoder)
                             for modality, encoder in self.encoders.items()},
                "fusion": keras.layers.serialize(self.fusion),
                "modality_dropout": keras.layers.serialize(self.modality_dropout),
                "head": keras.layers.serialize(self.head),
                "name": self.name}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["encoders"] = {modality: keras.layers.deserialize(encoder)
                              for modality, encoder in config["encoders"].items()}
        for part in ("fusion", "modality_dropout", "head"):
            config[part] = keras.layers.deserialize(config[part])
        return cls(**config)


def new_encoder_inputs(encoder: keras.Model) -> tuple:
    """New model inputs with the names, shapes and dtypes of `encoder`'s own inputs.

    Returns:
        (inputs in the encoder's input structure (one tensor, or a dict for text),
        the same inputs as {name: tensor}).
    """
    inputs = keras.tree.map_structure(
        lambda tensor: keras.Input(tensor.shape[1:], dtype=tensor.dtype, name=tensor.name),
        encoder.input)
    return inputs, {tensor.name: tensor for tensor in keras.tree.flatten(inputs)}


def build_multimodal_model(config, num_outputs: int, text_backbone=None) -> MultimodalModel:
    """Builds the `MultimodalModel` that a `tfmm.config.Config` describes.

    Args:
        config: a `tfmm.config.Config` (its `data` and `model` sections are read).
        num_outputs: classes (classification) or targets (regression).
        text_backbone: an already loaded keras-hub BertBackbone; loaded from
            `config.model.text_preset` when None.

    Returns:
        A `MultimodalModel` taking the dict that `MultimodalPreprocessor` produces and returning
        {"logits": float32 [B, num_outputs]} (classification) or {"predictions": ...}
        (regression).
    """
    data, model_config = config.data, config.model
    encoders = {}
    for modality in data.modalities:
        if modality == "text":
            backbone = text_backbone or load_bert_backbone(model_config.text_preset)
            # Length buckets feed batches cut to several lengths: the text inputs take any.
            text_length = None if data.text_length_buckets else data.text_sequence_length
            text_augmentation = augmentation_options("model.text_augmentation",
                                                     model_config.text_augmentation)
            encoders["text"] = build_text_encoder(
                backbone, text_length, model_config.projection_dim,
                freeze=model_config.freeze_text_encoder, augmentation=text_augmentation,
                special_token_ids=bert_special_token_ids(model_config.text_preset)
                if text_augmentation.token_mask_rate > 0 else None, seed=config.training.seed)
        elif modality == "image":
            encoders["image"] = build_image_encoder(
                data.image_size, model_config.projection_dim, weights=model_config.image_weights,
                freeze=model_config.freeze_image_encoder,
                augmentation=augmentation_options("model.image_augmentation",
                                                  model_config.image_augmentation),
                batchnorm_momentum=model_config.image_batchnorm_momentum,
                seed=config.training.seed)
        elif modality == "audio":
            encoders["audio"] = build_audio_encoder(
                data.audio_length, data.audio_sample_rate, model_config.projection_dim,
                frame_length=model_config.audio_frame_length,
                frame_step=model_config.audio_frame_step,
                num_mel_bins=model_config.audio_num_mel_bins,
                conv_filters=model_config.audio_conv_filters, dropout=model_config.dropout,
                freeze=model_config.freeze_audio_encoder,
                batchnorm_momentum=model_config.audio_batchnorm_momentum,
                augmentation=augmentation_options("model.audio_augmentation",
                                                  model_config.audio_augmentation),
                seed=config.training.seed)
        elif modality == "video":
            video = model_config.video_encoder  # a tfmm.video_encoder_config.VideoEncoderConfig
            encoders["video"] = build_video_encoder(
                data.video_frames, data.video_size, model_config.projection_dim,
                weights=video.weights, freeze=video.freeze, temporal=video.temporal,
                temporal_layers=video.temporal_layers, temporal_heads=video.temporal_heads,
                dropout=model_config.dropout, batchnorm_momentum=video.batchnorm_momentum,
                seed=config.training.seed)
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
    return MultimodalModel(encoders, fusion, modality_dropout, head, name="tfmm_multimodal")


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
