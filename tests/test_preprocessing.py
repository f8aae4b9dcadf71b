"""Decoding, resampling and the shared MultimodalPreprocessor (scalar and batch)."""

import numpy as np
import pytest
import tensorflow as tf

from helpers.tiny import png_bytes, wav_bytes, with_wav_chunk, write_manifest
from tfmm.preprocessing.decoding import (decode_audio, decode_audio_batch, decode_image,
                                         resample_waveform)
from tfmm.preprocessing.multimodal_preprocessor import MultimodalPreprocessor


@pytest.fixture
def preset_dir(tiny_preset):
    """The session's tiny BERT preset (tests/conftest.py)."""
    return tiny_preset


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


@pytest.mark.parametrize("layouts", [
    ("canonical", "canonical", "missing"),            # the whole-batch path
    ("canonical", "16 kHz", "missing"),                # resampled file by file
    ("canonical", "stereo"),
    ("canonical", "list chunk"),
    ("canonical", "long"),                             # cropped
])
def test_decode_audio_batch_equals_decoding_each_file(layouts):
    tone = np.sin(np.arange(1200) / 7) * 0.5
    files = {
        "canonical": wav_bytes(tone[:300]),
        "long": wav_bytes(tone),
        "missing": b"",
        "16 kHz": wav_bytes(tone[:600], sample_rate=16000),
        "stereo": wav_bytes(np.stack([tone[:300], -tone[:300] * 0.5], 1), channels=2),
        "list chunk": with_wav_chunk(wav_bytes(tone[:250]),
                                     b"LIST" + (4).to_bytes(4, "little") + b"INFO"),
    }
    batch = [files[name] for name in layouts]
    decoded = decode_audio_batch(tf.constant(batch), 8000, 400).numpy()
    assert decoded.shape == (len(batch), 400)
    for row, data in zip(decoded, batch):
        expected = decode_audio(tf.constant(data), 8000, 400).numpy() if data else np.zeros(400)
        np.testing.assert_array_equal(row, expected)
    assert np.abs(decoded[0]).max() > 0.4  # real samples, not zero-filled


def test_decode_audio_batch_reports_a_damaged_file():
    truncated = wav_bytes(np.zeros(300))[:-100]  # the data chunk claims more than the file has
    with pytest.raises(tf.errors.InvalidArgumentError):
        decode_audio_batch(tf.constant([wav_bytes(np.zeros(300)), truncated]), 8000, 400)
    with pytest.raises(tf.errors.InvalidArgumentError, match="16-bit"):
        decode_audio_batch(tf.constant([wav_bytes(np.zeros(300), sample_width=1)]), 8000, 400)
    with pytest.raises(tf.errors.InvalidArgumentError):
        decode_audio_batch(tf.constant([b"RIFF not a wav file at all, but long enough" * 2]),
                           8000, 400)


def test_preprocessor_batch_equals_single_and_masks_missing(preset_dir):
    preprocessor = MultimodalPreprocessor(text_preset=preset_dir, text_sequence_length=8,
                                          image_size=32, audio_length=400)
    image = png_bytes(np.full((8, 8), 200, np.uint8))
    audio = wav_bytes(np.sin(np.arange(300) / 5) * 0.3)
    batch = preprocessor({"text": tf.constant(["which digit is written ?", " \t"]),
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
                                          text_sequence_length=8, audio_length=400,
                                          optional_modalities=("audio",))
    again = MultimodalPreprocessor.from_config(preprocessor.get_config())
    assert again.get_config() == preprocessor.get_config()
    assert again.optional_modalities == ("audio",)
    with pytest.raises(ValueError, match=r"missing \['audio'\]"):
        preprocessor({"text": tf.constant(["a"])})


def test_texts_cut_to_the_sequence_length_are_counted_once(preset_dir, tmp_path):
    from tfmm.data.dataset import ExamplePipeline
    from tfmm.data.manifest import read_manifest

    # "which color is red ?" / "which color is blue ?": 5 tokens, 7 with [CLS] and [SEP];
    # "the sound is high" / "the sound is low": 4 tokens, 6 with them.
    path = write_manifest(str(tmp_path), num_rows=8, modalities=("text",))
    manifest = read_manifest(path, modalities=("text",))
    for length, expected in ((6, 4), (7, 0)):
        preprocessor = MultimodalPreprocessor(("text",), text_preset=preset_dir,
                                              text_sequence_length=length)
        lines = []
        pipeline = ExamplePipeline(manifest, preprocessor, "multiclass", log=lines.append)
        assert pipeline.num_cut_texts == expected
        assert lines == ([f"{path}: 4 of 8 texts are longer than data.text_sequence_length=6 "
                          "tokens ([CLS] and [SEP] included) and are cut"] if expected else [])
