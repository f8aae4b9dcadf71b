"""The config fields of training on imbalanced classes, checked (`tfmm.config` calls these).

    training.class_weights   "none" | "balanced" | {label: weight}
    training.loss            "cross_entropy" | "focal" (focal_gamma, focal_alpha)
    data.resample            "none" | "balanced" | "sqrt"

README "Imbalanced data" shows what each does on the spoken digits.
"""

import math

CLASS_WEIGHT_CHOICES = ("none", "balanced")
LOSS_CHOICES = ("cross_entropy", "focal")
RESAMPLE_CHOICES = ("none", "balanced", "sqrt")


def coerce_class_weights(value, default, key: str, source: str):
    """A `training.class_weights` value from a config file or `--set`: a choice name, or a dict
    {label: weight} with string labels (Python configs may use numbers) and float weights > 0."""
    from tfmm.config import ConfigError

    if isinstance(value, str):
        return value
    if not isinstance(value, dict) or not value:
        raise ConfigError(f"{source}: `{key}` must be one of {list(CLASS_WEIGHT_CHOICES)} or a "
                          f"non-empty dict {{label: weight}}. Received: {value!r}")
    weights = {}
    for label, weight in value.items():
        if (isinstance(weight, bool) or not isinstance(weight, (int, float))
                or not math.isfinite(weight) or weight <= 0):
            raise ConfigError(f"{source}: `{key}` must map labels to finite numbers > 0. "
                              f"Received: {label!r}: {weight!r}")
        weights[str(label)] = float(weight)
    return weights


# `tfmm.config` coerces these fields with these functions instead of by the default's type.
FIELD_COERCERS = {"training.class_weights": coerce_class_weights}


def check_imbalance_config(config):
    """Raises ConfigError for imbalance settings the task or the other settings cannot run."""
    from tfmm.config import ConfigError, check_choice
    from tfmm.tasks import MulticlassTask, get_task

    data, training = config.data, config.training
    weights = training.class_weights
    if not isinstance(weights, dict):
        check_choice("training.class_weights", weights, CLASS_WEIGHT_CHOICES)
    check_choice("training.loss", training.loss, LOSS_CHOICES)
    check_choice("data.resample", data.resample, RESAMPLE_CHOICES)
    if training.focal_gamma < 0:
        raise ConfigError(f"`training.focal_gamma` must be >= 0. Received: {training.focal_gamma}")
    if not 0.0 <= training.focal_alpha <= 1.0:
        raise ConfigError("`training.focal_alpha` must be in [0, 1] (0: off). Received: "
                          f"{training.focal_alpha}")
    task = get_task(data.task)
    if not task.has_classes and (weights != "none" or training.loss != "cross_entropy"):
        raise ConfigError("`training.class_weights` and `training.loss` = 'focal' need a "
                          "classification task ('multiclass' or 'multilabel'). Received: task "
                          f"{data.task!r}, class_weights {weights!r}, loss {training.loss!r}")
    if isinstance(weights, dict) and data.labels:
        unknown = sorted(set(weights) - {str(label) for label in data.labels})
        if unknown:
            raise ConfigError(f"`training.class_weights` names labels that are not in "
                              f"`data.labels` {list(data.labels)}. Received: {unknown}")
    if data.resample != "none":
        if not isinstance(task, MulticlassTask):
            raise ConfigError("`data.resample` needs one label per example (task 'multiclass'). "
                              f"Received: task {data.task!r}")
        if data.text_length_buckets:
            raise ConfigError("`data.resample` cannot be combined with `data.text_length_buckets`"
                              "; set one of them off")
        if training.cache_frozen_features:
            raise ConfigError("`data.resample` does not apply to the cached features of "
                              "`training.cache_frozen_features`; set one of them off")
