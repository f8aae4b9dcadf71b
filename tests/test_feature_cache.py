"""`training.cache_frozen_features`: fusion and head trained on features frozen encoders compute
once give the model that training through the encoders gives, and the full model is what is saved,
evaluated and exported."""

import os

import keras
import numpy as np
import pytest

from helpers import tiny
from tfmm.config import ConfigError, config_from_dict
from tfmm.training.runner import run_training


def _config(tiny_preset, tiny_manifest, run_dir, cache, modalities=("text", "audio"), **model):
    values = tiny.tiny_config(
        tiny_preset, tiny_manifest, run_dir, modalities=modalities,
        data={"test_manifest": tiny_manifest},
        model={"freeze_text_encoder": True, "freeze_image_encoder": True,
               "freeze_audio_encoder": True, **model},
        epochs=2, cache_frozen_features=cache)
    return config_from_dict(values).validate()


def _weights(model):
    return {variable.path: variable.numpy() for variable in model.weights}


def test_cached_training_equals_training_through_the_encoders(tiny_manifest, tmp_path):
    """With real dropout rates: BERT's own (0.2), the audio encoder's, the fusion's and the
    head's (model.dropout 0.2), XLA on (ThreeFry masks). The frozen encoders draw no masks in
    either run; the fusion and head draw the same ones."""
    preset = tiny.write_bert_preset(str(tmp_path / "bert_with_dropout"), dropout=0.2)
    results = {}
    for cache in (False, True):
        config = _config(preset, tiny_manifest, str(tmp_path / f"cache_{cache}"), cache,
                         dropout=0.2)
        assert config.training.jit_compile == "auto" and config.model.dropout == 0.2
        results[cache] = run_training(config, log=lambda line: None)
    plain, cached = results[False], results[True]
    # Same examples in the same order, same initial weights, same updates.
    for key in ("loss", "accuracy"):
        np.testing.assert_allclose(plain["history"][key], cached["history"][key], atol=1e-4)
    plain_weights, cached_weights = _weights(plain["model"]), _weights(cached["model"])
    assert plain_weights.keys() == cached_weights.keys()
    for path, value in plain_weights.items():
        np.testing.assert_allclose(value, cached_weights[path], atol=1e-4, err_msg=path)
    # The saved, evaluated model is the full one (raw inputs), trained by the cached run.
    assert cached["report"]["num_examples"] == 32
    assert cached["report"]["accuracy"] == pytest.approx(plain["report"]["accuracy"])
    reloaded = keras.saving.load_model(os.path.join(cached["run_dir"], "model.keras"))
    assert "audio" in reloaded.input and "token_ids" in reloaded.input


def test_feature_extraction_runs_each_encoder_with_its_faster_compilation(tiny_preset,
                                                                          tiny_manifest, tmp_path):
    """"auto" times each frozen encoder with XLA on and off on its first batch, keeps the faster
    (logged once per encoder) and gives the features the whole extractor gives."""
    from tfmm.models.multimodal_model import build_multimodal_model
    from tfmm.training.feature_cache import FeatureExtraction, build_feature_models

    config = _config(tiny_preset, tiny_manifest, str(tmp_path / "split"), True,
                     modalities=("text", "image", "audio"))
    model = build_multimodal_model(config, 2)
    extractor, _ = build_feature_models(model, ("text", "image", "audio"))
    lines = []
    extraction = FeatureExtraction.per_modality(model, extractor, "auto", log=lines.append)
    assert {modality: sorted(part.input) for modality, part in extraction.parts.items()} == {
        "text": ["padding_mask", "segment_ids", "token_ids"], "image": ["image"],
        "audio": ["audio"]}
    rng = np.random.default_rng(0)
    length, size = config.data.text_sequence_length, config.data.image_size
    batch = {"token_ids": rng.integers(5, 50, (3, length)).astype("int32"),
             "segment_ids": np.zeros((3, length), "int32"),
             "padding_mask": np.ones((3, length), "int32"),
             "image": rng.uniform(0, 255, (3, size, size, 3)).astype("float32"),
             "audio": rng.uniform(-0.5, 0.5, (3, config.data.audio_length)).astype("float32"),
             "text_mask": np.ones((3,), "float32")}  # a column the extractor does not read
    expected = extractor({name: batch[name] for name in extractor.input}, training=False)
    for _ in range(2):
        outputs = extraction(batch)
        assert outputs.keys() == expected.keys()
        for name, value in expected.items():
            np.testing.assert_allclose(outputs[name], np.asarray(value), atol=1e-4, rtol=1e-4,
                                       err_msg=name)
    assert sorted(line.split(" features:")[0] for line in lines) == ["audio", "image", "text"]
    assert all("s with XLA" in line and "s without" in line for line in lines), lines

    lines.clear()
    forced = FeatureExtraction.per_modality(model, extractor, "false", log=lines.append)
    np.testing.assert_allclose(forced(batch)["image_features"],
                               np.asarray(expected["image_features"]), atol=1e-4, rtol=1e-4)
    assert lines == []  # a forced choice times nothing
    with pytest.raises(ValueError, match="'auto', 'true' or 'false'. Received: 'yes'"):
        FeatureExtraction(extractor, jit_compile="yes")


def test_frozen_encoders_stay_fixed_and_unfrozen_ones_learn(tiny_preset, tiny_manifest,
                                                            tmp_path):
    from tfmm.models.multimodal_model import build_multimodal_model
    from tfmm.training.feature_cache import build_feature_models

    # The split, with ResNet50 among the frozen encoders (built, not trained: it is slow).
    config = _config(tiny_preset, tiny_manifest, str(tmp_path / "split"), True,
                     modalities=("text", "image", "audio"), freeze_audio_encoder=False)
    extractor, top = build_feature_models(build_multimodal_model(config, 2), ("text", "image"))
    assert set(extractor.output) == {"text_features", "image_features"}
    assert extractor.output["image_features"].shape[1:] == (2048,)
    assert set(top.input) == {"text_features", "image_features", "audio", "text_mask",
                              "image_mask", "audio_mask"}

    config = _config(tiny_preset, tiny_manifest, str(tmp_path / "run"), True,
                     freeze_audio_encoder=False)
    keras.utils.set_random_seed(config.training.seed)
    before = _weights(build_multimodal_model(config, 2))
    result = run_training(config, log=lambda line: None)
    after = _weights(result["model"])
    assert before.keys() == after.keys()
    changed = {path for path in before if not np.allclose(before[path], after[path])}
    assert not any(path.startswith("bert_backbone") for path in changed), changed
    assert any("audio_conv" in path for path in changed)
    assert any("text_projection" in path for path in changed)


def test_cache_needs_a_frozen_encoder(tiny_preset, tiny_manifest, tmp_path):
    values = tiny.tiny_config(tiny_preset, tiny_manifest, str(tmp_path), cache_frozen_features=True,
                              model={"freeze_text_encoder": False})
    with pytest.raises(ConfigError, match="needs a frozen encoder"):
        config_from_dict(values).validate()


def test_features_are_computed_once_and_only_when_batches_are_asked_for():
    from tfmm.training.feature_cache import FeaturePipeline

    calls = []

    def compute():
        calls.append(1)
        return {"x_features": np.arange(10, dtype=np.float32)[:, None]}, np.arange(10)

    pipeline = FeaturePipeline(compute, 10)
    assert not calls and pipeline.steps_per_epoch(4, drop_remainder=True) == 2
    epochs = [[targets.numpy().tolist() for _, targets in
               pipeline.batches(4, shuffle=True, seed=3, epoch=epoch, drop_remainder=True)]
              for epoch in (0, 0, 1)]
    assert len(calls) == 1
    assert epochs[0] == epochs[1] and epochs[0] != epochs[2]
    assert all(len(batch) == 4 for batch in epochs[0])


def test_feature_cache_dir_saves_then_a_second_run_loads_the_same_features(
        tiny_preset, tiny_manifest, tmp_path):
    """Two runs of the same config with `training.feature_cache_dir`: the first computes and
    saves the frozen features of each split, the second loads them, runs no encoder and trains
    to the same weights (dropout on in the fusion and head)."""
    cache_dir = str(tmp_path / "features")
    results, logs = {}, {}
    for name in ("first", "second"):
        values = tiny.tiny_config(
            tiny_preset, tiny_manifest, str(tmp_path / name), data={
                "validation_manifest": tiny_manifest, "test_manifest": tiny_manifest},
            model={"freeze_text_encoder": True, "freeze_audio_encoder": True, "dropout": 0.2},
            epochs=2, cache_frozen_features=True, feature_cache_dir=cache_dir)
        logs[name] = []
        results[name] = run_training(config_from_dict(values).validate(),
                                     log=logs[name].append)
    saved = [line for line in logs["first"] if line.startswith("saved the features")]
    loaded = [line for line in logs["second"] if line.startswith("loaded the cached features")]
    # Training and validation read the same manifest: one file serves both splits.
    assert len(saved) == 1 and len(loaded) == 2, (logs["first"], logs["second"])
    assert not any(line.startswith("saved the features") for line in logs["second"])
    # 32 examples are a few batches: jit_compile "auto" keeps XLA and times nothing.
    assert not any(" features: XLA" in line for line in logs["first"]), logs["first"]
    assert sorted(os.listdir(cache_dir)) == [os.path.basename(saved[0].split(" to ")[1])]
    np.testing.assert_allclose(results["first"]["history"]["loss"],
                               results["second"]["history"]["loss"], atol=1e-6)
    first, second = _weights(results["first"]["model"]), _weights(results["second"]["model"])
    for path, value in first.items():
        np.testing.assert_allclose(value, second[path], atol=1e-6, err_msg=path)


class _ListPipeline:
    """Fixed decoded batches, as `ExamplePipeline.batches` yields them."""

    def __init__(self, batches):
        self._batches, self.num_examples = batches, sum(len(t) for _, t in batches)

    def batches(self, batch_size):
        return iter(self._batches)


def test_feature_cache_file_name_follows_weights_and_examples(tmp_path):
    """Another weight value or another example gives another file: a stale file is never
    read. The same extractor and examples find their file."""
    from tfmm.training.feature_cache import compute_features

    inputs = keras.Input((3,), name="x")
    extractor = keras.Model({"x": inputs}, {"x_features": keras.layers.Dense(2, name="d")(inputs)})
    rows = np.arange(12, dtype=np.float32).reshape(4, 3)
    batches = [({"x": rows[:2], "x_mask": np.ones(2, np.float32)}, np.array([0, 1])),
               ({"x": rows[2:], "x_mask": np.ones(2, np.float32)}, np.array([1, 0]))]
    cache_dir, lines = str(tmp_path), []

    def run(pipeline_batches):
        return compute_features(extractor, _ListPipeline(pipeline_batches), 2, cache_dir,
                                log=lines.append)

    arrays, targets = run(batches)
    expected = extractor.predict({"x": rows}, verbose=0)["x_features"]
    np.testing.assert_allclose(arrays["x_features"], expected, atol=1e-6)
    assert targets.tolist() == [0, 1, 1, 0] and arrays["x_mask"].shape == (4,)
    again, _ = run(batches)
    np.testing.assert_array_equal(again["x_features"], arrays["x_features"])
    assert [line.split()[0] for line in lines] == ["saved", "loaded"]
    assert len(os.listdir(cache_dir)) == 1

    changed_example = [({"x": rows[:2] + 1, "x_mask": np.ones(2, np.float32)}, np.array([0, 1])),
                       batches[1]]
    run(changed_example)
    kernel = extractor.get_layer("d").kernel
    kernel.assign(kernel.numpy() + 1.0)
    changed_weights, _ = run(batches)
    assert [line.split()[0] for line in lines] == ["saved", "loaded", "saved", "saved"]
    assert len(os.listdir(cache_dir)) == 3
    np.testing.assert_allclose(changed_weights["x_features"],
                               arrays["x_features"] + rows.sum(axis=1, keepdims=True), atol=1e-5)


def test_feature_cache_dir_needs_cached_features(tiny_preset, tiny_manifest, tmp_path):
    values = tiny.tiny_config(tiny_preset, tiny_manifest, str(tmp_path),
                              feature_cache_dir=str(tmp_path / "features"))
    with pytest.raises(ConfigError, match="set that to true"):
        config_from_dict(values).validate()
