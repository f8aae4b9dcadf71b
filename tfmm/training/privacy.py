"""The checks of the `training.dp_*` fields (DP-SGD), run by `Config.validate`.

DP-SGD is on when `training.dp_l2_clip` > 0. Its guarantee needs every example's gradient to
depend on that example alone, so an encoder that normalises with batch statistics (BatchNorm in
training mode) is refused unless it is frozen: a frozen encoder runs in inference mode, on its
fixed moving statistics, and mixes nothing across examples.
"""

# The trainable encoders that hold BatchNorm layers, by modality.
BATCHNORM_ENCODERS = {"image": "the ResNet50 image encoder", "audio": "the audio CNN encoder",
                      "video": "the InceptionV3 video encoder"}


def private_training_enabled(training) -> bool:
    """True when the config asks for DP-SGD (`training.dp_l2_clip` > 0)."""
    return training.dp_l2_clip > 0


def check_private_training(config):
    """Raises ConfigError (one line) for `training.dp_*` values DP-SGD cannot run with."""
    from tfmm.config import ConfigError
    from tfmm.tasks import get_task
    from tfmm.video_encoder_config import encoder_frozen, freeze_key

    training, data, model = config.training, config.data, config.model
    for key in ("dp_l2_clip", "dp_noise_multiplier"):
        if getattr(training, key) < 0:
            raise ConfigError(f"`training.{key}` must be >= 0. Received: {getattr(training, key)}")
    if training.dp_microbatch_size < 1:
        raise ConfigError("`training.dp_microbatch_size` must be >= 1. "
                          f"Received: {training.dp_microbatch_size}")
    if not 0.0 <= training.dp_delta < 1.0:
        raise ConfigError(f"`training.dp_delta` must be in [0, 1) (0: 1 / training examples). "
                          f"Received: {training.dp_delta}")
    if not private_training_enabled(training):
        if training.dp_noise_multiplier > 0:
            raise ConfigError("`training.dp_noise_multiplier` needs `training.dp_l2_clip` > 0 "
                              "(the noise is scaled by the clip). Received: dp_l2_clip=0")
        return
    if data.batch_size % training.dp_microbatch_size:
        raise ConfigError(f"`data.batch_size` ({data.batch_size}) must be divisible by "
                          f"`training.dp_microbatch_size`. Received: {training.dp_microbatch_size}")
    if training.mixed_precision == "float16":
        raise ConfigError("`training.mixed_precision` 'float16' (loss scaling) is not supported "
                          "with DP-SGD (training.dp_l2_clip > 0): use 'bfloat16' or 'none'")
    if get_task(data.task).reads_jsonl_manifests:
        for modality, encoder in BATCHNORM_ENCODERS.items():
            if modality in data.modalities and not encoder_frozen(model, modality):
                raise ConfigError(
                    f"DP-SGD (training.dp_l2_clip > 0) cannot train {encoder}: its BatchNorm "
                    "mixes the examples of a batch, so no example's gradient is its own. Set "
                    f"`{freeze_key(modality)}=true` (inference mode) or leave "
                    f"'{modality}' out of `data.modalities`")
