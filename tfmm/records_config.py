"""The config fields of reading TFRecord shards (`tfmm.config` calls these).

    data.train_records / validation_records / test_records   glob patterns of `tfmm.pack` shards
    data.cache   true | "memory" (decoded examples kept in memory after the first pass),
                 false | "none" (decoded every epoch: memory does not grow with the data),
                 or a file path prefix (decoded examples cached on disk there)
    data.service   {"dispatcher": "grpc://host:port", ...}: the training input pipeline runs on
                   tf.data service workers (`tfmm.data.data_service`)

README "Data at scale: TFRecord shards" shows the commands.
"""

RECORD_SPLITS = ("train", "validation", "test")


def coerce_cache(value, default, key: str, source: str):
    """A `data.cache` value: True/False (also "true"/"false") stay booleans, "memory", "none"
    and file paths stay strings."""
    from tfmm.config import ConfigError

    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip():
        text = value.strip()
        return {"true": True, "false": False}.get(text.lower(), text)
    raise ConfigError(f"{source}: `{key}` must be true, false, 'memory', 'none' or a file path. "
                      f"Received: {value!r}")


def coerce_service(value, default, key: str, source: str):
    from tfmm.data.data_service import coerce_service as coerce

    return coerce(value, default, key, source)


# `tfmm.config` coerces these fields with these functions instead of by the default's type.
RECORD_FIELD_COERCERS = {"data.cache": coerce_cache, "data.service": coerce_service}


def cache_setting(value) -> str:
    """"memory", "none" or a file path, from a `data.cache` value (booleans included)."""
    if value is True or value == "memory":
        return "memory"
    if value is False or value == "none" or value == "":
        return "none"
    return str(value)


def check_records_config(config):
    """Raises ConfigError for record settings the task or the other settings cannot run."""
    from tfmm.config import ConfigError
    from tfmm.tasks import get_task

    data = config.data
    patterns = {split: getattr(data, f"{split}_records") for split in RECORD_SPLITS}
    if data.service and not patterns["train"]:
        raise ConfigError("`data.service` runs the pipeline of `data.train_records` on tf.data "
                          "service workers; set data.train_records (pack the manifest with "
                          "`python -m tfmm.pack`)")
    if not any(patterns.values()):
        return
    if not get_task(data.task).reads_jsonl_manifests:
        raise ConfigError(f"`data.*_records` need a manifest task (multiclass, multilabel, "
                          f"regression). Received: task {data.task!r}")
    if patterns["train"] and (data.text_length_buckets or data.resample != "none"):
        raise ConfigError("`data.train_records` cannot be combined with "
                          "`data.text_length_buckets` or `data.resample` (they need every "
                          "example's length or class before the first epoch); set them off")
