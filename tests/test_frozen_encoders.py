"""A frozen encoder (`model.freeze_*_encoder`) runs in inference mode in every path: no dropout,
no augmentation, BatchNorm on moving statistics, also when the model is called with
training=True (tfmm/models/encoder_features.py)."""

import keras
import keras_hub
import numpy as np
import pytest

from tfmm.models.audio_encoder import build_audio_encoder
from tfmm.models.image_encoder import build_image_encoder
from tfmm.models.text_encoder import TEXT_INPUTS, build_text_encoder


def _text_encoder(freeze):
    keras.utils.set_random_seed(3)
    backbone = keras_hub.models.BertBackbone(
        vocabulary_size=30, num_layers=2, num_heads=2, hidden_dim=8, intermediate_dim=16,
        max_sequence_length=16, dropout=0.3)
    inputs = {"token_ids": np.arange(24, dtype="int32").reshape(3, 8) % 30,
              "segment_ids": np.zeros((3, 8), "int32"),
              "padding_mask": np.ones((3, 8), "int32")}
    return build_text_encoder(backbone, 8, 4, freeze=freeze), inputs


def _image_encoder(freeze):
    keras.utils.set_random_seed(3)
    images = np.random.RandomState(0).uniform(0, 255, (4, 32, 32, 3)).astype("float32")
    return build_image_encoder(32, 4, freeze=freeze, augmentation=0.2, seed=5), images


def _audio_encoder(freeze):
    keras.utils.set_random_seed(3)
    waveforms = np.random.RandomState(0).normal(size=(4, 800)).astype("float32")
    return build_audio_encoder(800, 8000, 4, frame_length=128, frame_step=64, num_mel_bins=16,
                               conv_filters=(4, 8), dropout=0.5, freeze=freeze), waveforms


BUILDERS = {"text": _text_encoder, "image": _image_encoder, "audio": _audio_encoder}


@pytest.mark.parametrize("modality", ["text", "image", "audio"])
def test_frozen_encoder_is_deterministic_in_training_and_equals_inference(modality):
    encoder, inputs = BUILDERS[modality](freeze=True)
    first = np.asarray(encoder(inputs, training=True))
    second = np.asarray(encoder(inputs, training=True))
    np.testing.assert_array_equal(first, second)  # no dropout mask, no random shift
    # BatchNorm on moving statistics (not the batch's), dropout off: the inference output.
    np.testing.assert_allclose(first, np.asarray(encoder(inputs, training=False)), atol=1e-5)
    # Only the projection learns.
    assert {weight.path.split("/")[0] for weight in encoder.trainable_weights} == \
        {f"{modality}_projection"}


@pytest.mark.parametrize("modality", ["text", "image", "audio"])
def test_trainable_encoder_still_draws_its_noise(modality):
    """The check above can fail: unfrozen, the same calls differ (dropout / augmentation)."""
    encoder, inputs = BUILDERS[modality](freeze=False)
    first = np.asarray(encoder(inputs, training=True))
    second = np.asarray(encoder(inputs, training=True))
    assert np.abs(first - second).max() > 1e-4


def test_a_frozen_encoder_stays_frozen_in_a_saved_model(tmp_path):
    encoder, waveforms = _audio_encoder(freeze=True)
    audio = keras.Input((800,), name="audio")
    model = keras.Model(audio, encoder(audio))
    model.save(tmp_path / "model.keras")
    reloaded = keras.saving.load_model(tmp_path / "model.keras")
    np.testing.assert_array_equal(np.asarray(reloaded(waveforms, training=True)),
                                  np.asarray(reloaded(waveforms, training=True)))
    np.testing.assert_allclose(np.asarray(reloaded(waveforms, training=False)),
                               np.asarray(model(waveforms, training=False)), atol=1e-6)


def test_frozen_multimodal_model_encoders_ignore_training(tiny_preset, tiny_manifest, tmp_path):
    """Through the whole model: frozen encoders' outputs do not change between training calls,
    while the fusion and head (model.dropout > 0) still draw masks."""
    from helpers import tiny
    from tfmm.config import config_from_dict
    from tfmm.models.multimodal_model import build_multimodal_model

    values = tiny.tiny_config(tiny_preset, tiny_manifest, str(tmp_path),
                              model={"freeze_text_encoder": True, "freeze_audio_encoder": True,
                                     "dropout": 0.3})
    model = build_multimodal_model(config_from_dict(values).validate(), 2)
    inputs = {"token_ids": np.full((4, 8), 5, "int32"), "segment_ids": np.zeros((4, 8), "int32"),
              "padding_mask": np.ones((4, 8), "int32"),
              "audio": np.random.RandomState(1).normal(size=(4, 800)).astype("float32"),
              "text_mask": np.ones(4, "float32"), "audio_mask": np.ones(4, "float32")}
    for name in ("text_encoder", "audio_encoder"):
        encoder = model.get_layer(name)
        encoder_inputs = ({key: inputs[key] for key in TEXT_INPUTS} if name == "text_encoder"
                          else inputs["audio"])
        np.testing.assert_array_equal(np.asarray(encoder(encoder_inputs, training=True)),
                                      np.asarray(encoder(encoder_inputs, training=True)))
    logits = [np.asarray(model(inputs, training=True)["logits"]) for _ in range(2)]
    assert np.abs(logits[0] - logits[1]).max() > 1e-5


@pytest.mark.parametrize("freeze", [True, False])
def test_span_model_with_a_frozen_backbone_draws_no_dropout(freeze):
    """The QA recipe's path for `model.freeze_text_encoder`: the frozen BERT runs in inference mode."""
    from tfmm.models.span_model import build_span_model

    keras.utils.set_random_seed(4)
    backbone = keras_hub.models.BertBackbone(
        vocabulary_size=30, num_layers=2, num_heads=2, hidden_dim=8, intermediate_dim=16,
        max_sequence_length=16, dropout=0.3)
    model = build_span_model(backbone, 8, freeze_backbone=freeze)
    inputs = {"token_ids": np.arange(24, dtype="int32").reshape(3, 8) % 30,
              "segment_ids": np.zeros((3, 8), "int32"), "padding_mask": np.ones((3, 8), "int32")}
    first, second = (np.asarray(model(inputs, training=True)["start_logits"]) for _ in range(2))
    if freeze:
        np.testing.assert_array_equal(first, second)
        assert {weight.path.split("/")[0] for weight in model.trainable_weights} == {"span_logits"}
    else:
        assert np.abs(first - second).max() > 1e-5
