"""The config fields of augmentation per modality, checked (`tfmm.config` calls these).

    model.audio_augmentation  None | {"spec_time_masks": 2, "spec_time_mask_width": 10,
                                      "noise_snr_db": [0, 20], "noise_probability": 0.5, ...}
    model.image_augmentation  a float (the largest random shift, as before) | {"shift": 0.1,
                                      "horizontal_flip": True, "crop_scale": 0.8, ...}
    model.text_augmentation   None | {"token_mask_rate": 0.1}

Every option is off unless given; the options and their meaning are the fields below. The
layers (tfmm/models/audio_augmentation.py, image_augmentation.py, token_masking.py) run inside
the model and only in training. A frozen encoder runs in inference mode, so it is never
augmented (and `training.cache_frozen_features` computes its features once, unaugmented).
"""

import dataclasses
import logging
import math

logger = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class AudioAugmentation:
    spec_time_masks: int = 0  # SpecAugment time bands per clip.
    spec_time_mask_width: int = 0  # largest width of a time band, in spectrogram frames.
    spec_frequency_masks: int = 0  # SpecAugment frequency bands per clip.
    spec_frequency_mask_width: int = 0  # largest width of a frequency band, in Mel bins.
    gain_db: tuple = None  # [low, high]: random gain in dB.
    noise_snr_db: tuple = None  # [low, high]: white noise at this SNR (dB, per clip's power).
    noise_probability: float = 1.0  # share of clips that get noise.
    time_shift: float = 0.0  # largest shift as a fraction of the clip (zero-filled).


@dataclasses.dataclass(frozen=True)
class ImageAugmentation:
    shift: float = 0.0  # largest random translation, fraction of the size (zero-filled).
    horizontal_flip: bool = False  # mirror left-right with probability 1/2 (not for digits).
    vertical_flip: bool = False  # mirror top-bottom with probability 1/2.
    rotate90: bool = False  # rotate by 0, 90, 180 or 270 degrees (square images).
    crop_scale: float = 1.0  # random crop of side >= crop_scale * size, resized back (1: off).
    brightness: float = 0.0  # add delta * 255, delta uniform in [-brightness, brightness].
    contrast: float = 0.0  # scale around the image mean by a factor in [1 - c, 1 + c].


@dataclasses.dataclass(frozen=True)
class TextAugmentation:
    token_mask_rate: float = 0.0  # share of real (non-special) tokens replaced by [MASK].


OPTION_CLASSES = {"model.audio_augmentation": AudioAugmentation,
                  "model.image_augmentation": ImageAugmentation,
                  "model.text_augmentation": TextAugmentation}

# option -> (check, what is expected)
_RANGE = (lambda value: isinstance(value, (list, tuple)) and len(value) == 2
          and all(_is_number(item) for item in value) and value[0] <= value[1],
          "a list [low, high] of numbers with low <= high")
_COUNT = (lambda value: isinstance(value, int) and not isinstance(value, bool) and value >= 0,
          "an integer >= 0")
_FLAG = (lambda value: isinstance(value, bool), "true or false")
_FRACTION = (lambda value: _is_number(value) and 0 <= value < 1, "a number in [0, 1)")
_PROBABILITY = (lambda value: _is_number(value) and 0 <= value <= 1, "a number in [0, 1]")
_NON_NEGATIVE = (lambda value: _is_number(value) and value >= 0, "a number >= 0")
_SCALE = (lambda value: _is_number(value) and 0 < value <= 1, "a number in (0, 1]")
CHECKS = {
    "model.audio_augmentation": {
        "spec_time_masks": _COUNT, "spec_time_mask_width": _COUNT,
        "spec_frequency_masks": _COUNT, "spec_frequency_mask_width": _COUNT,
        "gain_db": _RANGE, "noise_snr_db": _RANGE, "noise_probability": _PROBABILITY,
        "time_shift": _FRACTION},
    "model.image_augmentation": {
        "shift": _FRACTION, "horizontal_flip": _FLAG, "vertical_flip": _FLAG, "rotate90": _FLAG,
        "crop_scale": _SCALE, "brightness": _NON_NEGATIVE, "contrast": _FRACTION},
    "model.text_augmentation": {"token_mask_rate": _FRACTION},
}


def _is_number(value) -> bool:
    return (isinstance(value, (int, float)) and not isinstance(value, bool)
            and math.isfinite(value))


def coerce_augmentation(value, default, key: str, source: str):
    """A `model.<modality>_augmentation` value from a config file or `--set`, checked: None (or
    "none", {}) for off, a dict of the options `CHECKS[key]` names, and for images also a number
    (the largest shift, the field's original meaning). Returns a plain dict (or the number)."""
    from tfmm.config import ConfigError

    if value is None or value == "none" or value == {}:
        return default if key == "model.image_augmentation" else None
    if key == "model.image_augmentation" and _is_number(value):
        if not _FRACTION[0](value):
            raise ConfigError(f"{source}: `{key}` (the largest shift) must be a number in [0, 1). "
                              f"Received: {value!r}")
        return float(value)
    checks = CHECKS[key]
    if not isinstance(value, dict):
        kinds = "a number (the largest shift) or " if key == "model.image_augmentation" else ""
        raise ConfigError(f"{source}: `{key}` must be {kinds}a dict of options "
                          f"{sorted(checks)}. Received: {value!r}")
    options = {}
    for option, setting in value.items():
        if option not in checks:
            raise ConfigError(f"{source}: `{key}` has no option {option!r}; the options are "
                              f"{sorted(checks)}")
        check, expected = checks[option]
        if isinstance(setting, float) and expected == _COUNT[1] and setting.is_integer():
            setting = int(setting)
        if not check(setting):
            raise ConfigError(f"{source}: `{key}.{option}` must be {expected}. "
                              f"Received: {setting!r}")
        options[option] = list(setting) if isinstance(setting, tuple) else setting
    return options


FIELD_COERCERS = {key: coerce_augmentation for key in OPTION_CLASSES}


def augmentation_options(key: str, value):
    """The option dataclass (`AudioAugmentation`, ...) of a checked config value; all off for
    None. An image float is the shift."""
    option_class = OPTION_CLASSES[key]
    if not value:
        return option_class()
    if _is_number(value):
        return option_class(shift=float(value))
    return option_class(**{name: tuple(setting) if isinstance(setting, list) else setting
                           for name, setting in value.items()})


def is_enabled(options) -> bool:
    """Whether an options dataclass changes anything."""
    return options != type(options)()


def check_augmentation_config(config):
    """Logs a warning for augmentation configured on a frozen encoder, which runs in inference
    mode and so never augments (with `training.cache_frozen_features` its features are even
    computed once, before training)."""
    for modality in config.data.modalities:
        key = f"model.{modality}_augmentation"
        if not hasattr(config.model, f"{modality}_augmentation"):
            continue  # video has no augmentation options
        options = augmentation_options(key, getattr(config.model, f"{modality}_augmentation"))
        if is_enabled(options) and getattr(config.model, f"freeze_{modality}_encoder"):
            cached = (" and its features are cached once (training.cache_frozen_features)"
                      if config.training.cache_frozen_features else "")
            logger.warning(f"warning: `{key}` has no effect: the {modality} encoder is frozen "
                           f"(model.freeze_{modality}_encoder) and runs in inference mode"
                           f"{cached}")
