"""The exported serving signature, reloaded with tf.saved_model.load: bad inputs fail with a
message naming the input and the row, required modalities are required, and the multilabel
`labels` output names every class at or above the threshold."""

import numpy as np
import pytest
import tensorflow as tf

from helpers.tiny import png_bytes, png_header, tiny_config, wav_bytes, with_wav_chunk
from tfmm.config import config_from_dict
from tfmm.export.serving_model import export_serving_model
from tfmm.models.multimodal_model import build_multimodal_model
from tfmm.preprocessing.multimodal_preprocessor import MultimodalPreprocessor

LABELS = ("ant", "bee", "cat")
HEAD_BIAS = np.array([3.0, -3.0, 0.5], np.float32)  # probabilities 0.95, 0.05, 0.62


@pytest.fixture(scope="module")
def served(tmp_path_factory, tiny_preset):
    """A multilabel text+image+audio model (image optional) exported and reloaded."""
    root = tmp_path_factory.mktemp("serving")
    config = config_from_dict(tiny_config(
        tiny_preset, "unused.jsonl", str(root / "run"), modalities=("text", "image", "audio"),
        data={"task": "multilabel", "labels": list(LABELS), "optional_modalities": ["image"]}))
    model = build_multimodal_model(config, len(LABELS))
    head_output = [layer for layer in model._flatten_layers() if layer.name == "head_output"]
    kernel, _ = head_output[0].get_weights()
    head_output[0].set_weights([np.zeros_like(kernel), HEAD_BIAS])  # known probabilities
    preprocessor = MultimodalPreprocessor.from_data_config(config.data, tiny_preset)
    preprocessor(valid_inputs(2))
    export_dir = str(root / "export" / "1")
    export_serving_model(model, preprocessor, "multilabel", LABELS, export_dir)
    return tf.saved_model.load(export_dir).signatures["serving_default"]


def valid_inputs(batch):
    image = png_bytes(np.full((8, 8, 3), 100, np.uint8))
    audio = wav_bytes(0.1 * np.sin(np.arange(800) / 5.0))
    return {"text": tf.constant(["which color is red ?"] * batch),
            "image": tf.constant([image] * batch), "audio": tf.constant([audio] * batch)}


def with_row(inputs, name, row, value):
    values = list(inputs[name].numpy())
    values[row] = value
    return dict(inputs, **{name: tf.constant(values)})


def serving_error(signature, inputs) -> str:
    with pytest.raises(tf.errors.InvalidArgumentError) as raised:
        signature(**inputs)
    return raised.value.message


def test_multilabel_labels_name_every_class_at_or_above_the_threshold(served):
    outputs = served(**valid_inputs(3))
    np.testing.assert_allclose(outputs["probabilities"].numpy(),
                               np.tile(1 / (1 + np.exp(-HEAD_BIAS)), (3, 1)), atol=1e-5)
    assert outputs["labels"].shape == (3, 3)
    assert outputs["labels"].numpy().tolist() == [[b"ant", b"", b"cat"]] * 3
    assert outputs["label"].numpy().tolist() == [b"ant"] * 3


def test_random_bytes_as_audio_name_the_input_and_row(served):
    random_bytes = np.random.default_rng(0).integers(0, 256, 600, dtype=np.uint8).tobytes()
    message = serving_error(served, with_row(valid_inputs(4), "audio", 3, random_bytes))
    assert "audio[3]: not a RIFF/WAV file" in message
    message = serving_error(served, with_row(valid_inputs(4), "audio", 1, b"ascii garbage" * 9))
    assert "audio[1]: not a RIFF/WAV file" in message and "Header mismatch" not in message


def test_wav_that_is_not_16_bit_pcm_names_its_fields(served):
    eight_bit = wav_bytes(np.zeros(80), sample_width=1)
    message = serving_error(served, with_row(valid_inputs(2), "audio", 1, eight_bit))
    assert ("audio[1]: not a 16-bit PCM WAV file (format tag 1, 1 channel(s), 8000 Hz, "
            "8 bits per sample)") in message
    zero_rate = bytearray(wav_bytes(np.zeros(80)))
    zero_rate[24:28] = bytes(4)
    message = serving_error(served, with_row(valid_inputs(2), "audio", 0, bytes(zero_rate)))
    assert "audio[0]: not a 16-bit PCM WAV file (format tag 1, 1 channel(s), 0 Hz" in message


def test_required_modalities_are_required(served):
    message = serving_error(served, with_row(valid_inputs(3), "text", 2, b"  "))
    assert "text[2]: empty, but this model requires text" in message
    message = serving_error(served, with_row(valid_inputs(3), "audio", 0, b""))
    assert "audio[0]: empty, but this model requires audio" in message
    outputs = served(**with_row(valid_inputs(3), "image", 1, b""))  # image is optional
    assert outputs["probabilities"].shape == (3, 3)


def test_bad_image_and_text_name_the_input_and_row(served):
    message = serving_error(served, with_row(valid_inputs(2), "image", 1, b"GARBAGE" * 10))
    assert "image[1]: not a JPEG/PNG/GIF/BMP/WebP image" in message
    message = serving_error(served, with_row(valid_inputs(2), "text", 0, b"\xa6\xff red"))
    assert "text[0]: not valid UTF-8" in message


def test_inputs_of_different_lengths(served):
    inputs = valid_inputs(2)
    inputs["audio"] = inputs["audio"][:1]
    message = serving_error(served, inputs)
    assert "inputs audio and image must have one entry per row; received 1 and 2" in message


def test_wav_with_a_chunk_before_fmt_is_served(served):
    """tf.audio.decode_wav reads such files (and the manifest reader accepts them)."""
    wav = with_wav_chunk(wav_bytes([0.0, 0.03, -0.03, 0.0]),
                         b"JUNK" + (4).to_bytes(4, "little") + bytes(4), before=b"fmt ")
    outputs = served(**with_row(valid_inputs(2), "audio", 1, wav))
    assert outputs["labels"].shape == (2, 3)


def forged_jpeg(width, height):
    """A real JPEG whose frame header is rewritten to declare width x height."""
    content = bytearray(tf.io.encode_jpeg(np.zeros((3, 5, 3), np.uint8)).numpy())
    position = 2
    while content[position + 1] != 0xC0:
        position += 2 + int.from_bytes(content[position + 2:position + 4], "big")
    content[position + 5:position + 9] = height.to_bytes(2, "big") + width.to_bytes(2, "big")
    return bytes(content)


@pytest.mark.parametrize("image", [
    png_header(60000, 60000) + bytes(40),
    forged_jpeg(60000, 60000),
], ids=["png", "jpeg"])
def test_images_over_the_pixel_limit_are_refused_from_their_header(served, image):
    message = serving_error(served, with_row(valid_inputs(2), "image", 1, image))
    assert ("image[1]: its header declares 3600000000 pixels, more than the limit of 50000000 "
            "(tfmm.data.media_checks.MAX_IMAGE_PIXELS)") in message
