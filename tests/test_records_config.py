"""`data.*_records` and `data.cache` (memory | none | a file path) in the config."""

import pytest


def test_cache_keeps_booleans_and_takes_memory_none_or_a_path():
    from tfmm.config import load_config
    from tfmm.records_config import cache_setting

    base = ["data.train_manifest=train.jsonl"]
    for text, value, setting in (("true", True, "memory"), ("false", False, "none"),
                                 ("none", "none", "none"), ("memory", "memory", "memory"),
                                 ("cache/train", "cache/train", "cache/train")):
        config = load_config(None, base + [f"data.cache={text}"])
        assert config.data.cache == value and cache_setting(config.data.cache) == setting
    assert load_config(None, base).data.cache is True  # the default: in memory, as before


def test_records_replace_the_manifest_and_refuse_what_they_cannot_do():
    from tfmm.config import ConfigError, load_config

    config = load_config(None, ["data.train_records=records/train-*",
                                "data.test_records=records/test-*"])
    assert config.data.train_manifest == "" and config.data.test_records == "records/test-*"
    with pytest.raises(ConfigError, match="`data.train_records` cannot be combined with "
                                          "`data.text_length_buckets` or `data.resample`"):
        load_config(None, ["data.train_records=records/train-*", "data.resample=balanced"])
    with pytest.raises(ConfigError, match="`data.train_manifest` is empty"):
        load_config(None, [])
