"""Starting a model's encoders from the encoders of earlier tfmm runs (transfer learning)."""

import keras
import tensorflow as tf

from tfmm.errors import UserError
from tfmm.run_folder import model_file

ENCODER_NAMES = ("text_encoder", "image_encoder", "audio_encoder")


class EncoderTransferError(UserError):
    """An `init_encoders_from` source that is missing or does not fit the model."""


def _sub_model(model, name):
    try:
        return model.get_layer(name)
    except ValueError:
        return None


def load_encoder_weights(model: keras.Model, sources, log=print) -> list:
    """Copies the weights of every encoder that a source model shares with `model`.

    Args:
        model: the freshly built tfmm model.
        sources: run folders (their model.keras) or .keras files, earlier ones first; a later
            source overrides an earlier one for the same encoder.
        log: function taking one line of text.

    Returns:
        Names of the encoders that were loaded.
    """
    loaded = []
    for source in sources:
        path = model_file(source)
        if not tf.io.gfile.exists(path):
            raise EncoderTransferError(f"`model.init_encoders_from`: {path} not found (train that "
                                       "run first)")
        source_model = keras.saving.load_model(path, compile=False)
        shared = [name for name in ENCODER_NAMES
                  if _sub_model(model, name) is not None and _sub_model(source_model, name)]
        if not shared:
            raise EncoderTransferError(f"`model.init_encoders_from`: {path} has none of this "
                                       f"model's encoders ({[n for n in ENCODER_NAMES if _sub_model(model, n)]})")
        for name in shared:
            target, origin = _sub_model(model, name), _sub_model(source_model, name)
            target_shapes = [tuple(weight.shape) for weight in target.weights]
            origin_shapes = [tuple(weight.shape) for weight in origin.weights]
            if target_shapes != origin_shapes:
                raise EncoderTransferError(
                    f"`model.init_encoders_from`: the {name} of {path} does not fit this model "
                    "(different sizes: check projection_dim, image_size, audio settings)")
            target.set_weights(origin.get_weights())
            loaded.append(name)
            log(f"{name}: weights from {path}")
    return loaded
