"""Decoding, resampling and the shared MultimodalPreprocessor (scalar and batch)."""

import numpy as np
import pytest
import tensorflow as tf

from helpers.tiny import png_bytes, wav_bytes, write_bert_preset
from tfmm.preprocessing.decoding import decode_audio, decode_image, resample_waveform
from tfmm.preprocessing.multimodal_preprocessor import MultimodalPreprocessor


@pytest.fixture(scope="module")
def preset_dir(tmp_path_factory):
    return write_bert_preset(str(tmp_path_factory.mktemp("tiny_bert")))


def test_decode_image_gray_to_rgb_and_resize():
    pixels = np.arange(64, dtype=np.uint8).reshape(8, 8) * 3
    image = decode_image(tf.constant(png_bytes(pixels)), 32).numpy()
    assert image.shape == (32, 32, 3)
    assert np.allclose(image[..., 0], image[..., 2])
    assert 0.0 <= image.min() and image.max() <= 255.0
    same_size = decode_image(tf.constant(png_bytes(pixels)), 8).numpy()
    np.testing.assert_allclose(same_size[..., 0], pixels, atol=1e-3)


def test_decode_audio_crops_pads_and_mixes_channels():
    samples = np.linspace(-0.5, 0.5, 100)
    short = decode_audio(tf.constant(wav_bytes(samples)), 8000, 160).numpy()
    assert short.shape == (160,)
    np.testing.assert_allclose(short[:100], samples, atol=1e-4)
    assert np.all(short[100:] == 0)
    cropped = decode_audio(tf.constant(wav_bytes(samples)), 8000, 40).numpy()
    np.testing.assert_allclose(cropped, samples[:40], atol=1e-4)
    stereo = np.stack([samples, -samples], axis=1)
    mixed = decode_audio(tf.constant(wav_bytes(stereo, channels=2)), 8000, 100).numpy()
    np.testing.assert_allclose(mixed, 0.0, atol=1e-4)


def test_resampling_is_linear_interpolation():
    waveform = tf.constant(np.arange(8, dtype=np.float32))
    same = resample_waveform(waveform, tf.constant(8000), 8000).numpy()
    np.testing.assert_allclose(same, np.arange(8))
    down = resample_waveform(waveform, tf.constant(16000), 8000).numpy()
    np.testing.assert_allclose(down, [0, 2, 4, 6])
    up = resample_waveform(waveform, tf.constant(4000), 8000).numpy()
    assert up.shape == (16,)
    np.testing.assert_allclose(up[:15], np.arange(15) / 2)
    tone = np.sin(2 * np.pi * 440 * np.arange(1600) / 16000)
    decoded = decode_audio(tf.constant(wav_bytes(tone, sample_rate=16000)), 8000, 800).numpy()
    np.testing.assert_allclose(decoded, tone[::2][:800], atol=1e-3)


def test_other_sample_rate_is_rejected_when_resampling_is_off():
    data = tf.constant(wav_bytes(np.zeros(100), sample_rate=16000))
    with pytest.raises(tf.errors.InvalidArgumentError, match="configured 8000 Hz"):
        decode_audio(data, 8000, 100, resample=False)


def test_preprocessor_batch_equals_single_and_masks_missing(preset_dir):
    preprocessor = MultimodalPreprocessor(text_preset=preset_dir, text_sequence_length=8,
                                          image_size=32, audio_length=400)
    image = png_bytes(np.full((8, 8), 200, np.uint8))
    audio = wav_bytes(np.sin(np.arange(300) / 5) * 0.3)
    batch = preprocessor({"text": tf.constant(["which digit is written ?", ""]),
                          "image": tf.constant([image, b""]),
                          "audio": tf.constant([b"", audio])})
    assert batch["token_ids"].shape == (2, 8) and batch["token_ids"].dtype == tf.int32
    assert batch["image"].shape == (2, 32, 32, 3)
    assert batch["audio"].shape == (2, 400)
    np.testing.assert_array_equal(batch["text_mask"], [1, 0])
    np.testing.assert_array_equal(batch["image_mask"], [1, 0])
    np.testing.assert_array_equal(batch["audio_mask"], [0, 1])
    single = preprocessor({"text": tf.constant("which digit is written ?"),
                           "image": tf.constant(image), "audio": tf.constant(audio)})
    np.testing.assert_array_equal(single["token_ids"], batch["token_ids"][0])
    np.testing.assert_allclose(single["image"], batch["image"][0])
    np.testing.assert_allclose(single["audio"], batch["audio"][1])


def test_preprocessor_config_round_trip_and_missing_input(preset_dir):
    preprocessor = MultimodalPreprocessor(("text", "audio"), text_preset=preset_dir,
                                          text_sequence_length=8, audio_length=400)
    again = MultimodalPreprocessor.from_config(preprocessor.get_config())
    assert again.get_config() == preprocessor.get_config()
    with pytest.raises(ValueError, match=r"missing \['audio'\]"):
        preprocessor({"text": tf.constant(["a"])})
