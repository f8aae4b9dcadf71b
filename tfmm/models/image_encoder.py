"""Image encoder: keras.applications.ResNet50 (its own preprocess_input), projected to the shared
width."""

import keras
import tensorflow as tf
from tfmm.errors import UserError
from tfmm.augmentation_config import ImageAugmentation as ImageAugmentationOptions
from tfmm.models.encoder_features import EncoderFeatures
from tfmm.models.image_augmentation import ImageAugmentation
from tfmm.models.random_shift import RandomShift
from tfmm.models.token_projection import TokenMask, TokenProjection


class ImageWeightsError(UserError, ValueError):
    """ResNet50 weights that are neither none, "imagenet" nor a readable local file."""


@keras.saving.register_keras_serializable(package="tfmm")
class ResNetInputNormalization(keras.layers.Layer):
    """`keras.applications.resnet50.preprocess_input` as a layer: RGB [0, 255] -> BGR, centred.

    Being a layer (not a Lambda) it is saved with the model and runs in the serving graph.
    """

    def call(self, images):
        return keras.applications.resnet50.preprocess_input(images)


def resolve_image_weights(weights: str):
    """Maps the config value to ResNet50's `weights` argument.

    Args:
        weights: "" or "none" (random init), "imagenet" (downloads when online), or a path to a
            local weights file for ResNet50 without its top (`*_notop.h5` or `.weights.h5`).
    """
    if weights in ("", "none", None):
        return None
    if weights == "imagenet":
        return "imagenet"
    if not tf.io.gfile.exists(weights):
        raise ImageWeightsError("`model.image_weights` must be '', 'imagenet' or a local ResNet50 "
                                f"weights file. File not found: {weights}")
    return weights


def load_resnet50(image_size: int, weights: str, pooling: str = "avg") -> keras.Model:
    """ResNet50 without its top, average-pooled (or its feature map: pooling None), with the
    weights `weights` names.

    Raises:
        ImageWeightsError: a missing local file, or "imagenet" whose download failed (offline).
    """
    resolved = resolve_image_weights(weights)
    local_file = resolved not in (None, "imagenet")
    try:
        resnet = keras.applications.ResNet50(
            include_top=False, weights=None if local_file else resolved,
            input_shape=(image_size, image_size, 3), pooling=pooling)
    except Exception as error:  # keras' get_file raises a bare Exception("URL fetch failure...")
        if resolved != "imagenet" or not (isinstance(error, OSError)
                                          or "URL fetch failure" in str(error)):
            raise
        reason = " ".join(str(error).split())[:200]
        raise ImageWeightsError(
            f"model.image_weights='imagenet': downloading the ResNet50 ImageNet weights failed "
            f"({reason}); offline, set model.image_weights to a local ResNet50 weights file "
            "without its top (resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5, from "
            "~/.keras/models/ of a machine that downloaded it) or to '' (random "
            "initialisation)") from None
    if local_file:
        resnet.load_weights(resolved)
    return resnet


def build_image_encoder(image_size: int, projection_dim: int, weights: str = "",
                        freeze: bool = False, augmentation=0.0,
                        batchnorm_momentum: float = 0.99, seed: int = 0,
                        output_tokens: bool = False) -> keras.Model:
    """RGB images -> one [projection_dim] vector per image (or a grid of tokens,
    `output_tokens`).

    Args:
        image_size: static height and width (>= 32).
        projection_dim: output width.
        weights: see `resolve_image_weights`.
        freeze: keep ResNet50's weights fixed and run the frozen part in inference mode.
        augmentation: maximum random translation, as a fraction of the size, or an
            `tfmm.augmentation_config.ImageAugmentation` (flips, rotations, crops, colour
            jitter, shift); applied in training to a trainable encoder (a frozen one does not
            augment).
        batchnorm_momentum: momentum of ResNet50's BatchNorm moving statistics.
        seed: seed of the augmentation.
        output_tokens: return ResNet50's last feature map (h x w cells, h = w = the size / 32
            rounded up: 2 x 2 at 64, 7 x 7 at 224) as h * w spatial tokens, row by row, each
            projected with a learned row and column embedding added, instead of its average.
            `image_features` then returns {"features": [B, h * w, 2048], "token_mask": ones}.

    The frozen part is `image_features` (augmentation, input normalisation and ResNet50, an
    `EncoderFeatures`): frozen, it runs in inference mode even in training (no augmentation,
    BatchNorm on moving statistics); `image_projection` always learns.

    Returns:
        A functional model: float32 [B, S, S, 3] in [0, 255] -> [B, projection_dim]; with
        output_tokens, {"tokens": [B, h * w, projection_dim], "token_mask": float32 ones
        [B, h * w]}.
    """
    images = keras.Input((image_size, image_size, 3), name="image")
    features = images
    if not isinstance(augmentation, ImageAugmentationOptions):
        augmentation = ImageAugmentationOptions(shift=float(augmentation))
    if augmentation == ImageAugmentationOptions(shift=augmentation.shift):
        if augmentation.shift > 0:  # the shift alone: the layer (and weights layout) as before
            features = RandomShift(augmentation.shift, seed=seed,
                                   name="image_augmentation")(features)
    else:
        features = ImageAugmentation(**vars(augmentation), seed=seed,
                                     name="image_augmentation")(features)
    features = ResNetInputNormalization(name="resnet_input_normalization")(features)
    resnet = load_resnet50(image_size, weights, pooling=None if output_tokens else "avg")
    for layer in resnet.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = batchnorm_momentum
    outputs = resnet(features)
    if output_tokens:
        _, rows, cols, channels = outputs.shape
        grid = keras.layers.Reshape((rows * cols, channels), name="image_grid_tokens")(outputs)
        outputs = {"features": grid, "token_mask": TokenMask(name="image_token_mask")(grid)}
    image_features = EncoderFeatures(images, outputs, name="image_features")
    image_features.trainable = not freeze
    encoder_input = keras.Input((image_size, image_size, 3), name="image")  # own input
    if output_tokens:
        computed = image_features(encoder_input)
        tokens = TokenProjection(projection_dim, (rows, cols), name="image_projection")(
            computed["features"])
        return keras.Model(encoder_input, {"tokens": tokens, "token_mask": computed["token_mask"]},
                           name="image_encoder")
    projected = keras.layers.Dense(projection_dim, name="image_projection")(
        image_features(encoder_input))
    return keras.Model(encoder_input, projected, name="image_encoder")
