"""Checks of `training.cache_frozen_features` (tfmm/training/feature_cache.py does the caching)."""

from tfmm.tasks import get_task
from tfmm.video_encoder_config import encoder_frozen


def check_frozen_features_config(config) -> None:
    """Raises ConfigError when cached encoder features cannot serve this config.

    Args:
        config: a tfmm.config.Config.
    """
    from tfmm.config import ConfigError  # tfmm.config imports this module

    data, model = config.data, config.model
    if not config.training.cache_frozen_features:
        if config.training.feature_cache_dir:
            raise ConfigError("`training.feature_cache_dir` saves the features "
                              "`training.cache_frozen_features` computes; set that to true. "
                              f"Received feature_cache_dir={config.training.feature_cache_dir!r}"
                              " with cache_frozen_features=false")
        return
    frozen = [name for name in data.modalities if encoder_frozen(model, name)]
    if not frozen or not get_task(data.task).reads_jsonl_manifests:
        raise ConfigError("`training.cache_frozen_features` needs a frozen encoder "
                          "(model.freeze_text/image/audio_encoder, model.video_encoder.freeze) "
                          "of a classification or regression model. Received: task "
                          f"{data.task!r}, frozen encoders {frozen}")
    if data.text_length_buckets and "text" in data.modalities and "text" not in frozen:
        raise ConfigError("`training.cache_frozen_features` with a trainable text encoder "
                          "cannot use `data.text_length_buckets`; set one of them off")
