"""Config files, overrides and the errors for unknown or ill-typed keys."""

import json

import pytest
from helpers.tiny import write_config

from tfmm.config import ConfigError, config_from_dict, load_config


def test_python_config_and_overrides(tmp_path):
    path = write_config(tmp_path / "config.py", {"data": {"train_manifest": "m.jsonl",
                                                          "modalities": ["text", "audio"]},
                                                 "training": {"epochs": 3}})
    config = load_config(path, ["training.epochs=5", "model.fusion=concat",
                                "training.learning_rate=2e-4", "data.cache=false",
                                "model.audio_conv_filters=8,16"])
    assert config.training.epochs == 5
    assert config.model.fusion == "concat"
    assert config.training.learning_rate == pytest.approx(2e-4)
    assert config.data.cache is False
    assert config.data.modalities == ("text", "audio")
    assert config.model.audio_conv_filters == (8, 16)


def test_overrides_take_json_values(tmp_path):
    """A --set dict written in JSON (true / false inside it) reads as its Python value."""
    path = write_config(tmp_path / "config.py", {"data": {"train_manifest": "m.jsonl"}})
    config = load_config(path, ['model.fusion_options={"cross_attention_summary_tokens": true}'])
    assert config.model.fusion_options == {"cross_attention_summary_tokens": True}


def test_null_for_a_text_field_is_an_error_not_the_text_none(tmp_path):
    """`--set training.feature_cache_dir=null` once became the folder "None"."""
    path = write_config(tmp_path / "config.py", {"data": {"train_manifest": "m.jsonl"}})
    with pytest.raises(ConfigError, match=r"--set: `training.feature_cache_dir` must be a string "
                       r'\(\"\" for none\). Received: None'):
        load_config(path, ["training.feature_cache_dir=null"])
    assert load_config(path, ["training.feature_cache_dir="]).training.feature_cache_dir == ""
    assert load_config(path, ["training.tpu=10.0.0.2"]).training.tpu == "10.0.0.2"


def test_json_config_round_trip(tmp_path):
    config = load_config(write_config(tmp_path / "config.py",
                                      {"data": {"train_manifest": "m.jsonl"}}))
    again = load_config(write_config(tmp_path / "config.json", config.to_dict()))
    assert again == config


def test_unknown_key_is_an_error(tmp_path):
    path = write_config(tmp_path / "config.py", {"data": {"train_manifest": "m.jsonl"},
                                                 "training": {"epoch": 3}})
    with pytest.raises(ConfigError, match=r"unknown key 'training.epoch'.*Did you mean "
                       r"\['training.epochs', 'training.steps_per_epoch'\]\?"):
        load_config(path)


def test_unknown_override_and_section(tmp_path):
    path = write_config(tmp_path / "config.py", {"data": {"train_manifest": "m.jsonl"}})
    with pytest.raises(ConfigError, match=r"--set: unknown key 'model.fusoin'"):
        load_config(path, ["model.fusoin=concat"])
    with pytest.raises(ConfigError, match=r"unknown section 'optimizer'"):
        config_from_dict({"optimizer": {}})
    with pytest.raises(ConfigError, match=r"--set expects key=value"):
        load_config(path, ["training.epochs"])


def test_type_and_value_errors(tmp_path):
    path = write_config(tmp_path / "config.py", {"data": {"train_manifest": "m.jsonl"}})
    with pytest.raises(ConfigError, match=r"`training.epochs` must be a number. Received: 'many'"):
        load_config(path, ["training.epochs=many"])
    with pytest.raises(ConfigError, match=r"`model.fusion` must be one of \['concat', 'attention', "
                       r"'cross_attention', 'tensor', 'low_rank', 'gated', 'late'\]"):
        load_config(path, ["model.fusion=sum"])
    with pytest.raises(ConfigError, match=r"`training.dropout_masks` must be one of "
                                          r"\['threefry', 'keras'\]"):
        load_config(path, ["training.dropout_masks=philox"])
    with pytest.raises(ConfigError, match=r"`data.modalities` must be one of"):
        load_config(path, ["data.modalities=text,smell"])
    with pytest.raises(ConfigError, match=r"`data.image_size` must be >= 32"):
        load_config(path, ["data.image_size=16"])
    with pytest.raises(ConfigError, match=r"`model.fusion_options.cross_attention_pooled_skip` "
                                          r"must be true or false. Received: 'yes'"):
        load_config(path, ['model.fusion_options={"cross_attention_pooled_skip": "yes"}'])
    with pytest.raises(ConfigError, match=r"divisible by `model.fusion_num_heads`"):
        load_config(path, ["model.projection_dim=30"])
    with pytest.raises(ConfigError, match=r"`data.num_targets` must be >= 1 .* Received: 0"):
        load_config(path, ["data.num_targets=0"])  # before any data is written or read
    with pytest.raises(ConfigError, match=r"config file not found"):
        load_config(str(tmp_path / "missing.py"))


def test_stages_load_in_order_with_overrides(tmp_path):
    from tfmm.config import load_stages

    base = {"data": {"train_manifest": "m.jsonl"}}
    path = write_config(tmp_path / "recipe.py", [dict(base, name="first"),
                                                 dict(base, name="second",
                                                      training={"epochs": 7})])
    stages = load_stages(str(path), ["training.seed=3"])
    assert [name for name, _ in stages] == ["first", "second"]
    assert stages[1][1].training.epochs == 7
    assert all(config.training.seed == 3 for _, config in stages)
    with pytest.raises(ConfigError, match="describes 2 stages"):
        load_config(str(path))


def test_quickstart_and_ablation_configs_load():
    import os

    from tfmm.config import load_stages

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    quickstart = load_stages(os.path.join(root, "configs", "av_digits.py"))
    assert [name for name, _ in quickstart] == ["image_encoder", "audio_encoder", "fused"]
    ablation = load_stages(os.path.join(root, "configs", "av_digits_ablation.py"))
    names = [name for name, _ in ablation]
    assert names[:3] == ["image_encoder", "audio_encoder", "fused"]
    assert {"text_image", "text_audio", "text_only", "image_only", "audio_only"} <= set(names)
    fused = dict(ablation)["fused"]
    assert fused.model.init_encoders_from == ("runs/av_digits/image_encoder",
                                              "runs/av_digits/audio_encoder")
    # Every stage is watched on its validation split, never on its test split.
    for name, config in quickstart:
        assert config.data.validation_manifest, name
        assert config.data.validation_manifest != config.data.test_manifest


def test_tpu_notebook_reads_the_report_the_quickstart_writes():
    import os
    import re

    from tfmm.config import load_stages

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    with open(os.path.join(root, "notebooks", "tpu_quickstart.ipynb")) as handle:
        notebook = json.load(handle)
    code = "".join("".join(cell["source"]) for cell in notebook["cells"]
                   if cell["cell_type"] == "code")
    read = re.findall(r"open\(\"([^\"]*_report\.json)\"\)", code)
    stages = dict(load_stages(os.path.join(root, "configs", "av_digits.py")))
    assert read == [stages["fused"].training.run_dir + "/test_report.json"]
