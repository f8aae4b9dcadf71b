"""A token-level (cross_attention) model end to end: train.py, the saved model, the raw-input
export, cached frozen token features, encoder transfer from a pooled model."""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from helpers.tiny import read_jsonl, tiny_config, write_config, write_manifest
from tfmm.config import config_from_dict
from tfmm.models.encoder_transfer import load_encoder_weights
from tfmm.models.multimodal_model import build_multimodal_model
from tfmm.preprocessing.multimodal_preprocessor import MultimodalPreprocessor
from tfmm.training.feature_cache import build_feature_models

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def token_run(tmp_path_factory, tiny_preset):
    """train.py on the tiny text+audio data (audio missing in every fourth row) with
    cross_attention, dropout and modality dropout on, XLA on; exported."""
    root = tmp_path_factory.mktemp("token_run")
    manifest = write_manifest(str(root / "data"), num_rows=16, missing_audio_every=4)
    config = tiny_config(
        tiny_preset, manifest, str(root / "run"), modalities=("text", "audio"),
        data={"test_manifest": manifest, "optional_modalities": ["audio"]},
        model={"fusion": "cross_attention", "dropout": 0.1, "modality_dropout": 0.2},
        epochs=3, export=True, jit_compile="true")
    path = write_config(root / "config.json", config)
    output = subprocess.run([sys.executable, "train.py", str(path)], capture_output=True,
                            text=True, cwd=REPO_ROOT, timeout=600)
    assert output.returncode == 0, output.stderr[-3000:]
    return config_from_dict(config), manifest


def test_cross_attention_trains_through_train_py(token_run):
    config, _ = token_run
    run_dir = config.training.run_dir
    history = json.load(open(os.path.join(run_dir, "history.json")))
    assert history[-1]["loss"] < history[0]["loss"]
    model = keras.saving.load_model(os.path.join(run_dir, "model.keras"))
    assert type(model.fusion).__name__ == "CrossAttentionFusion"
    assert isinstance(model.encoders["text"].output, dict)  # token encoders
    assert set(model.encoders["audio"].output) == {"tokens", "token_mask"}


def test_token_model_export_matches_keras_model_on_raw_inputs(token_run):
    config, manifest = token_run
    rows = read_jsonl(manifest)[:4]
    folder = os.path.dirname(manifest)
    inputs = {"text": tf.constant([row["text"] for row in rows]),
              "audio": tf.constant([open(os.path.join(folder, row["audio"]), "rb").read()
                                    if row.get("audio") else b"" for row in rows])}
    assert inputs["audio"].numpy()[3] == b""  # one example without audio
    served = tf.saved_model.load(os.path.join(config.training.run_dir, "export", "1")
                                 ).signatures["serving_default"](**inputs)
    model = keras.saving.load_model(os.path.join(config.training.run_dir, "model.keras"))
    preprocessor = MultimodalPreprocessor.from_data_config(config.data, config.model.text_preset)
    expected = tf.nn.softmax(model(preprocessor(inputs))["logits"]).numpy()
    np.testing.assert_allclose(served["probabilities"].numpy(), expected, atol=1e-4)


def token_inputs(batch=3, length=8, audio_length=800):
    random = np.random.default_rng(0)
    return {"token_ids": random.integers(5, 40, (batch, length)).astype("int32"),
            "segment_ids": np.zeros((batch, length), "int32"),
            "padding_mask": (np.arange(length)[None] < np.array([[8], [5], [3]])).astype("int32"),
            "audio": random.normal(size=(batch, audio_length)).astype("float32"),
            "text_mask": np.ones(batch, "float32"), "audio_mask": np.array([1, 0, 1], "float32")}


@pytest.mark.parametrize("options", [None, {"cross_attention_pooling": "attention",
                                             "cross_attention_pooled_skip": True}])
def test_cached_token_features_give_the_full_models_outputs(options, tiny_preset, tmp_path):
    """With frozen encoders, the top model on cached [B, T, F] features (before the projection)
    and the token masks computes what the full model computes from raw inputs (one example
    without audio); the model reloads from model.keras with the same outputs."""
    config = config_from_dict(tiny_config(
        tiny_preset, "unused.jsonl", str(tmp_path / "run"), modalities=("text", "audio"),
        model={"fusion": "cross_attention", "freeze_text_encoder": True,
               "freeze_audio_encoder": True, "dropout": 0.1, "fusion_options": options},
        cache_frozen_features=True)).validate()
    model = build_multimodal_model(config, 2)
    extractor, top = build_feature_models(model, ("text", "audio"))
    features = token_inputs()
    cached = extractor({name: features[name] for name in extractor.input})
    assert cached["text_features"].shape == (3, 8, 8)  # BERT's sequence output, hidden 8
    assert cached["audio_features"].shape[:2] == (3, 3)  # time frames, not pooled
    np.testing.assert_array_equal(cached["text_token_mask"], features["padding_mask"])
    top_inputs = {**{name: value.numpy() for name, value in cached.items()},
                  "text_mask": features["text_mask"], "audio_mask": features["audio_mask"]}
    np.testing.assert_allclose(top(top_inputs)["logits"], model(features)["logits"], atol=1e-5)
    model.save(str(tmp_path / "model.keras"))
    reloaded = keras.saving.load_model(str(tmp_path / "model.keras"))
    np.testing.assert_allclose(reloaded(features)["logits"], model(features)["logits"], atol=1e-6)


def test_pooled_encoders_start_a_token_model(tiny_preset, tmp_path):
    """init_encoders_from a pooled (attention fusion) model: the feature parts and projection
    kernels are copied into the token encoders."""
    def config_of(fusion):
        return config_from_dict(tiny_config(tiny_preset, "unused.jsonl", str(tmp_path / fusion),
                                            modalities=("text", "audio"),
                                            model={"fusion": fusion})).validate()

    pooled = build_multimodal_model(config_of("attention"), 2)
    pooled.save(str(tmp_path / "pooled.keras"))
    tokens = build_multimodal_model(config_of("cross_attention"), 2)
    loaded = load_encoder_weights(tokens, [str(tmp_path / "pooled.keras")], log=lambda _: None)
    assert loaded == ["text", "audio"]
    for modality in ("text", "audio"):
        np.testing.assert_array_equal(
            tokens.encoders[modality].get_layer(f"{modality}_projection").dense.kernel.numpy(),
            pooled.encoders[modality].get_layer(f"{modality}_projection").kernel.numpy())
    audio_weights = zip(tokens.encoders["audio"].get_layer("audio_features").weights,
                        pooled.encoders["audio"].get_layer("audio_features").weights)
    for token_weight, pooled_weight in audio_weights:
        np.testing.assert_array_equal(token_weight.numpy(), pooled_weight.numpy())


def test_padding_of_the_text_input_gets_zero_attention_weight_in_the_model(tiny_preset, tmp_path):
    """The encoders' token masks (BERT's padding mask) and the modality masks reach the fusion's
    attention: explain's token-level weights are 0 on them."""
    from tfmm.explain.fusion_attention import token_attention_weights, token_positions

    config = config_from_dict(tiny_config(
        tiny_preset, "unused.jsonl", str(tmp_path / "run"), modalities=("text", "audio"),
        model={"fusion": "cross_attention", "dropout": 0.1})).validate()
    model = build_multimodal_model(config, 2)
    features = token_inputs()
    weights = token_attention_weights(model, features)["fusion_transformer_0"].numpy()
    positions = token_positions(model)
    assert weights.shape == (3, 2, 12, 12) and len(positions) == 12  # fusion + 8 text + 3 audio
    key_mask = np.ones((3, 12))
    for example, text_length in enumerate((8, 5, 3)):
        key_mask[example, 1 + text_length:9] = 0  # padding
    key_mask[1, 9:] = 0  # example 1 has no audio
    assert np.all(weights[np.broadcast_to(key_mask[:, None, None, :], weights.shape) == 0] == 0)
    np.testing.assert_allclose(weights.sum(-1), 1.0, atol=1e-5)
    assert positions[0] == ("fusion", 0) and positions[9] == ("audio", 0)


def test_summary_tokens_are_named_and_masked_in_the_model(tiny_preset, tmp_path):
    """With `cross_attention_summary_tokens`, each modality's summary token precedes its tokens
    in `token_positions`, and an absent modality's summary gets zero attention weight."""
    from tfmm.explain.fusion_attention import token_attention_weights, token_positions

    config = config_from_dict(tiny_config(
        tiny_preset, "unused.jsonl", str(tmp_path / "run"), modalities=("text", "audio"),
        model={"fusion": "cross_attention", "dropout": 0.1,
               "fusion_options": {"cross_attention_summary_tokens": True}})).validate()
    model = build_multimodal_model(config, 2)
    features = token_inputs()
    weights = token_attention_weights(model, features)["fusion_transformer_0"].numpy()
    positions = token_positions(model)
    assert weights.shape == (3, 2, 14, 14) and len(positions) == 14  # fusion + 1+8 + 1+3
    assert positions[1] == ("text", "summary") and positions[10] == ("audio", "summary")
    np.testing.assert_array_equal(weights[1, :, :, 10:], 0)  # example 1 has no audio
    assert np.all(weights[[0, 2], :, :, 10] > 0)


@pytest.mark.parametrize("fusion", ["tensor", "low_rank", "gated", "late"])
def test_pooled_fusion_models_round_trip_through_model_keras(fusion, tiny_preset, tmp_path):
    config = config_from_dict(tiny_config(
        tiny_preset, "unused.jsonl", str(tmp_path / "run"), modalities=("text", "audio"),
        model={"fusion": fusion, "fusion_options": {"rank": 3, "tensor_dim": 4}})).validate()
    model = build_multimodal_model(config, 2)
    features = token_inputs()
    model.save(str(tmp_path / "model.keras"))
    loaded = keras.saving.load_model(str(tmp_path / "model.keras"))
    assert loaded.fusion.get_config() == model.fusion.get_config()
    assert loaded.head.get_config() == model.head.get_config()
    np.testing.assert_allclose(loaded(features)["logits"], model(features)["logits"], atol=1e-6)
