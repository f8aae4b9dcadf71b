"""Starting a model's encoders from the encoders of earlier tfmm runs (transfer learning)."""

import keras
import tensorflow as tf

from tfmm.errors import UserError
from tfmm.models.multimodal_model import MultimodalModel
from tfmm.run_folder import model_file


class EncoderTransferError(UserError):
    """An `init_encoders_from` source that is missing or does not fit the model."""


def same_shapes(target: keras.Model, origin: keras.Model) -> bool:
    """Whether two models hold weights of the same shapes in the same order."""
    return ([tuple(weight.shape) for weight in target.weights]
            == [tuple(weight.shape) for weight in origin.weights])


def load_encoder_weights(model: MultimodalModel, sources, log=print) -> list:
    """Copies the weights of every encoder that a source model shares with `model`.

    An encoder is shared when both models have one for the same modality (`model.encoders`).
    A video encoder whose temporal part differs (fusion, frame count) loads its InceptionV3 only.

    Args:
        model: the freshly built tfmm model.
        sources: run folders (their model.keras) or .keras files of `MultimodalModel`s, earlier
            ones first; a later source overrides an earlier one for the same encoder.
        log: function taking one line of text.

    Returns:
        The modalities whose encoder was loaded, one entry per source and encoder.
    """
    loaded = []
    for source in sources:
        path = model_file(source)
        if not tf.io.gfile.exists(path):
            raise EncoderTransferError(f"`model.init_encoders_from`: {path} not found (train that "
                                       "run first)")
        source_model = keras.saving.load_model(path, compile=False)
        if not isinstance(source_model, MultimodalModel):
            raise EncoderTransferError(
                f"`model.init_encoders_from`: {path} holds a {type(source_model).__name__}, not "
                "a tfmm MultimodalModel (a question-answering model, or one saved by an older "
                "tfmm: train that run again)")
        shared = [modality for modality in model.modalities if modality in source_model.encoders]
        if not shared:
            raise EncoderTransferError(
                f"`model.init_encoders_from`: {path} has none of this model's encoders "
                f"({list(model.modalities)}; it has {list(source_model.modalities)})")
        for modality in shared:
            target, origin = model.encoders[modality], source_model.encoders[modality]
            part = "encoder"
            if modality == "video" and not same_shapes(target, origin):
                # Another temporal fusion or frame count (a mean-pooling stage before an
                # attention one): InceptionV3, the part that was learnt per frame, transfers.
                target, origin = (encoder.get_layer("video_features") for encoder in
                                  (target, origin))
                part = "encoder's InceptionV3 (its temporal part differs: not loaded)"
            if not same_shapes(target, origin):
                raise EncoderTransferError(
                    f"`model.init_encoders_from`: the {modality} encoder of {path} does not fit "
                    "this model (different sizes: check projection_dim, image_size, audio "
                    "settings)")
            target.set_weights(origin.get_weights())
            loaded.append(modality)
            log(f"{modality} {part}: weights from {path}")
    return loaded
