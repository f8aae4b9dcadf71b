"""The `model.video_encoder` config field, checked (`tfmm.config` coerces it with these).

    model.video_encoder = {"weights": "", "freeze": False, "temporal": "attention",
                           "temporal_layers": 1, "temporal_heads": 4,
                           "batchnorm_momentum": 0.99}

InceptionV3 per frame, then a per-frame projection, then temporal fusion over the frames
(tfmm/models/video_encoder.py; README "Video"). The data side (frames per clip, frame size,
sampling) is in the `data` section.
"""

import dataclasses

TEMPORAL_CHOICES = ("mean", "attention", "transformer")


@dataclasses.dataclass(frozen=True)
class VideoEncoderConfig:
    # "" (random init), "imagenet" (download) or a local InceptionV3 weights file without its top.
    weights: str = ""
    freeze: bool = False  # keep InceptionV3 fixed (its per-frame features can then be cached).
    # How the frames are pooled: "mean" (masked mean; blind to the order of the frames),
    # "attention" (a learned query over the frames with time positions), "transformer"
    # (temporal_layers transformer layers over the frames with time positions, then attention).
    temporal: str = "attention"
    temporal_layers: int = 1  # transformer layers of temporal "transformer".
    temporal_heads: int = 4  # attention heads ("attention", "transformer"); divides projection_dim.
    batchnorm_momentum: float = 0.99  # moving-statistics momentum of InceptionV3's BatchNorm.


def coerce_video_encoder(value, default, key: str, source: str) -> VideoEncoderConfig:
    """A `model.video_encoder` value: None / {} (the defaults), a dict of VideoEncoderConfig's
    fields, or a VideoEncoderConfig; checked field by field."""
    from tfmm.config import ConfigError

    if isinstance(value, VideoEncoderConfig):
        value = dataclasses.asdict(value)
    if value in (None, "", "none"):
        value = {}
    if not isinstance(value, dict):
        raise ConfigError(f"{source}: `{key}` must be a dict with keys "
                          f"{[field.name for field in dataclasses.fields(VideoEncoderConfig)]}. "
                          f"Received: {value!r}")
    known = {field.name: field.default for field in dataclasses.fields(VideoEncoderConfig)}
    unknown = sorted(set(value) - set(known))
    if unknown:
        raise ConfigError(f"{source}: `{key}` has unknown keys {unknown}; known keys: "
                          f"{sorted(known)}")
    options = dict(known, **value)
    expected = {"weights": (lambda item: isinstance(item, str), "a string"),
                "freeze": (lambda item: isinstance(item, bool), "true or false"),
                "temporal": (lambda item: item in TEMPORAL_CHOICES,
                             f"one of {list(TEMPORAL_CHOICES)}"),
                "temporal_layers": (_is_count, "an integer >= 1"),
                "temporal_heads": (_is_count, "an integer >= 1"),
                "batchnorm_momentum": (lambda item: isinstance(item, (int, float))
                                       and not isinstance(item, bool) and 0 <= item < 1,
                                       "a number in [0, 1)")}
    for name, (check, description) in expected.items():
        if not check(options[name]):
            raise ConfigError(f"{source}: `{key}.{name}` must be {description}. "
                              f"Received: {options[name]!r}")
    options["batchnorm_momentum"] = float(options["batchnorm_momentum"])
    return VideoEncoderConfig(**options)


def _is_count(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def encoder_frozen(model_config, modality: str) -> bool:
    """Whether the `model` section freezes this modality's encoder (video: video_encoder.freeze;
    the others: model.freeze_<modality>_encoder)."""
    if modality == "video":
        return model_config.video_encoder.freeze
    return getattr(model_config, f"freeze_{modality}_encoder")


# `tfmm.config` coerces this field with this function instead of by the default's type.
VIDEO_FIELD_COERCERS = {"model.video_encoder": coerce_video_encoder}
