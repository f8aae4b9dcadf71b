"""Encoders, fusion layers, heads and the assembled model: shapes, masks, config round trips."""

import numpy as np
import pytest
import tensorflow as tf
import keras

from helpers.tiny import tiny_config
from tfmm.config import config_from_dict
from tfmm.models.fusion.attention_fusion import AttentionFusion
from tfmm.models.fusion.attention_pooling import AttentionPooling
from tfmm.models.fusion.concat_fusion import ConcatFusion
from tfmm.models.fusion.modality_dropout import ModalityDropout
from tfmm.models.heads.task_head import TaskHead
from tfmm.models.log_mel_spectrogram import LogMelSpectrogram
from tfmm.models.multimodal_model import MultimodalModel, build_multimodal_model
from tfmm.models.pooling import MaskedMeanPooling
from tfmm.models.random_shift import RandomShift


@pytest.fixture
def preset_dir(tiny_preset):
    """The session's tiny BERT preset (tests/conftest.py)."""
    return tiny_preset


def assert_config_round_trip(layer):
    again = layer.__class__.from_config(layer.get_config())
    assert again.get_config() == layer.get_config()


@pytest.mark.parametrize("layer", [
    LogMelSpectrogram(8000, 64, 32, 16), RandomShift(0.2, seed=1), ConcatFusion(),
    AttentionFusion(num_heads=2, num_layers=2, dropout=0.0), AttentionPooling(2),
    ModalityDropout(0.3, seed=2), TaskHead("multilabel", 3, hidden_dim=8), MaskedMeanPooling()])
def test_layer_config_round_trip(layer):
    assert_config_round_trip(layer)


def test_log_mel_is_computed_per_example():
    layer = LogMelSpectrogram(8000, 64, 32, 16)
    loud = np.sin(np.arange(400) / 3.0).astype(np.float32)
    quiet = 0.01 * np.sin(np.arange(400) / 7.0).astype(np.float32)
    together = layer(np.stack([loud, quiet])).numpy()
    alone = layer(quiet[None]).numpy()
    assert together.shape == (2, 1 + (400 - 64) // 32, 16, 1)
    assert layer.compute_output_shape((None, 400)) == (None, together.shape[1], 16, 1)
    np.testing.assert_allclose(together[1], alone[0], rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="lower_frequency < upper_frequency"):
        LogMelSpectrogram(8000, 64, 32, 16, upper_frequency=6000)


def test_random_shift_moves_pixels_in_training_only():
    images = np.zeros((4, 10, 10, 1), np.float32)
    images[:, 5, 5, 0] = 1.0
    layer = RandomShift(0.3, seed=3)
    np.testing.assert_array_equal(layer(images, training=False), images)
    shifted = layer(images, training=True).numpy()
    assert np.allclose(shifted.sum(axis=(1, 2, 3)), 1.0)
    positions = [tuple(np.argwhere(example[..., 0])[0]) for example in shifted]
    assert all(abs(row - 5) <= 3 and abs(column - 5) <= 3 for row, column in positions)
    compiled = tf.function(lambda x: layer(x, training=True), jit_compile=True)
    assert compiled(images).shape == images.shape


def test_concat_fusion_replaces_missing_modality():
    layer = ConcatFusion()
    embeddings = np.random.default_rng(0).normal(size=(2, 3, 4)).astype(np.float32)
    masks = np.array([[1, 1, 1], [1, 0, 1]], np.float32)
    fused = layer(embeddings, masks).numpy()
    assert fused.shape == (2, 12)
    np.testing.assert_allclose(fused[0], embeddings[0].reshape(-1), rtol=1e-6)
    np.testing.assert_allclose(fused[1, 4:8], layer.absent_embeddings.numpy()[1])
    changed = embeddings.copy()
    changed[1, 1] = 1000.0
    np.testing.assert_allclose(layer(changed, masks).numpy(), fused, rtol=1e-6)


def test_attention_fusion_ignores_masked_modality():
    layer = AttentionFusion(num_heads=2, num_layers=2, dropout=0.0)
    embeddings = np.random.default_rng(1).normal(size=(2, 3, 8)).astype(np.float32)
    masks = np.array([[1, 0, 1], [0, 1, 0]], np.float32)
    fused = layer(embeddings, masks).numpy()
    assert fused.shape == (2, 8)
    changed = embeddings.copy()
    changed[0, 1] = 50.0
    changed[1, 0] = -50.0
    changed[1, 2] = 9.0
    np.testing.assert_allclose(layer(changed, masks).numpy(), fused, rtol=1e-5, atol=1e-5)
    _, scores = layer.pooling(embeddings, masks, return_attention_scores=True)
    assert np.allclose(scores.numpy()[0, :, 0, 1], 0.0)


def test_modality_dropout_never_drops_everything():
    layer = ModalityDropout(0.9, seed=4)
    masks = np.ones((512, 3), np.float32)
    masks[::2, 1] = 0.0
    np.testing.assert_array_equal(layer(masks, training=False), masks)
    dropped = layer(masks, training=True).numpy()
    assert np.all(dropped.sum(axis=1) >= 1)
    assert np.all(dropped <= masks)
    assert 0 < dropped.mean() < masks.mean()
    with pytest.raises(ValueError, match=r"`rate` must be in \[0, 1\)"):
        ModalityDropout(1.0)


def test_task_head_rejects_unknown_task():
    with pytest.raises(ValueError, match="task must be one of"):
        TaskHead("ranking", 2)


def make_inputs(config, batch_size=2):
    data = config.data
    random = np.random.default_rng(0)
    inputs = {}
    for modality in data.modalities:
        inputs[modality + "_mask"] = np.ones((batch_size,), np.float32)
    if "text" in data.modalities:
        inputs["token_ids"] = random.integers(5, 19, (batch_size, data.text_sequence_length)).astype(np.int32)
        inputs["segment_ids"] = np.zeros((batch_size, data.text_sequence_length), np.int32)
        inputs["padding_mask"] = np.ones((batch_size, data.text_sequence_length), np.int32)
    if "image" in data.modalities:
        inputs["image"] = random.uniform(0, 255, (batch_size, 32, 32, 3)).astype(np.float32)
    if "audio" in data.modalities:
        inputs["audio"] = random.normal(0, 0.1, (batch_size, data.audio_length)).astype(np.float32)
    return inputs


@pytest.mark.parametrize("modalities,fusion,task,outputs", [
    (("text",), "attention", "multiclass", 3),
    (("text", "audio"), "concat", "multilabel", 4),
    (("text", "image", "audio"), "attention", "regression", 2),
])
def test_model_for_any_subset(preset_dir, tmp_path, modalities, fusion, task, outputs):
    config = config_from_dict(tiny_config(preset_dir, "m.jsonl", str(tmp_path),
                                               modalities=modalities,
                                               data={"task": task, "num_targets": outputs},
                                               model={"fusion": fusion}))
    model = build_multimodal_model(config, outputs)
    inputs = make_inputs(config)
    result = model(inputs)
    key = "predictions" if task == "regression" else "logits"
    assert result[key].shape == (2, outputs) and result[key].dtype == tf.float32
    path = str(tmp_path / "model.keras")
    model.save(path)
    reloaded = keras.saving.load_model(path)
    np.testing.assert_allclose(reloaded(inputs)[key], result[key], rtol=1e-5, atol=1e-5)
    assert isinstance(type(model).from_config(model.get_config()), MultimodalModel)


def test_missing_modality_input_does_not_change_output(preset_dir, tmp_path):
    config = config_from_dict(tiny_config(preset_dir, "m.jsonl", str(tmp_path),
                                               modalities=("text", "audio")))
    model = build_multimodal_model(config, 2)
    inputs = make_inputs(config)
    inputs["audio_mask"] = np.array([1.0, 0.0], np.float32)
    before = model(inputs)["logits"].numpy()
    inputs["audio"] = inputs["audio"] * 100.0 + 3.0
    after = model(inputs)["logits"].numpy()
    np.testing.assert_allclose(after[1], before[1], rtol=1e-5, atol=1e-5)
    assert not np.allclose(after[0], before[0])


def test_frozen_encoders_have_no_trainable_weights(preset_dir, tmp_path):
    config = config_from_dict(tiny_config(
        preset_dir, "m.jsonl", str(tmp_path), modalities=("text", "audio"),
        model={"freeze_text_encoder": True, "freeze_audio_encoder": True}))
    model = build_multimodal_model(config, 2)
    paths = [variable.path for variable in model.trainable_variables]
    assert not any("bert_backbone" in path or "audio_conv" in path or "audio_batchnorm" in path
                   for path in paths), paths
    assert any("text_projection" in path for path in paths)
    assert any("audio_projection" in path for path in paths)


def test_fine_tuned_text_encoder_leaves_the_unused_pooler_fixed(preset_dir, tmp_path):
    config = config_from_dict(tiny_config(preset_dir, "m.jsonl", str(tmp_path),
                                          modalities=("text",),
                                          model={"freeze_text_encoder": False}))
    model = build_multimodal_model(config, 2)
    paths = [variable.path for variable in model.trainable_variables]
    assert any("token_embedding" in path for path in paths)  # the backbone is fine-tuned
    assert not any("pooled_dense" in path for path in paths), paths  # mean pooling reads no pooler
    assert any("pooled_dense" in variable.path for variable in model.non_trainable_variables)


def test_encoders_start_from_an_earlier_run(preset_dir, tmp_path):
    from tfmm.models.encoder_transfer import EncoderTransferError, load_encoder_weights

    audio_only = config_from_dict(tiny_config(preset_dir, "m.jsonl", str(tmp_path),
                                                   modalities=("audio",)))
    source = build_multimodal_model(audio_only, 10)
    source_dir = tmp_path / "audio_run"
    source_dir.mkdir()
    source.save(str(source_dir / "model.keras"))
    fused = config_from_dict(tiny_config(preset_dir, "m.jsonl", str(tmp_path),
                                              modalities=("text", "audio")))
    model = build_multimodal_model(fused, 3)
    assert load_encoder_weights(model, [str(source_dir)], log=lambda line: None) == ["audio"]
    for mine, theirs in zip(model.encoders["audio"].weights, source.encoders["audio"].weights):
        np.testing.assert_array_equal(mine.numpy(), theirs.numpy())
    with pytest.raises(EncoderTransferError, match="not found"):
        load_encoder_weights(model, [str(tmp_path / "nothing")])
    wider = config_from_dict(tiny_config(preset_dir, "m.jsonl", str(tmp_path),
                                              modalities=("audio",), model={"projection_dim": 32}))
    with pytest.raises(EncoderTransferError, match="does not fit"):
        load_encoder_weights(build_multimodal_model(wider, 3), [str(source_dir)])
