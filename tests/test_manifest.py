"""Tests for tfmm.data.manifest: parsing, validation messages, skipping and label order."""

import os
import re

import numpy as np
import pytest
import tensorflow as tf
from helpers.tiny import png_header, write_jsonl, write_png, write_wav

from tfmm.config import DataConfig
from tfmm.data import manifest_rows
from tfmm.data import media_checks
from tfmm.data.manifest import ManifestError, read_manifest, read_manifest_for_config
from tfmm.errors import UserError


@pytest.fixture
def media(tmp_path):
    """A folder with one PNG and one 8 kHz WAV; returns the folder."""
    write_png(str(tmp_path / "images" / "a.png"))
    write_wav(str(tmp_path / "audio" / "a.wav"))
    return tmp_path


def row(**fields):
    values = {"text": "which digit?", "image": "images/a.png", "audio": "audio/a.wav",
              "label": "7"}
    values.update(fields)
    return {key: value for key, value in values.items() if value != "<drop>"}


def expect_error(path, line, message, **kwargs):
    """Asserts read_manifest raises ManifestError starting with "path:line: message"."""
    with pytest.raises(ManifestError, match="^" + re.escape(f"{path}:{line}: ") + message):
        read_manifest(path, **kwargs)


def test_valid_rows_resolve_paths_against_the_manifest_folder(media):
    path = write_jsonl(media / "m.jsonl", [row(id="ex1"), "", row(label=3)])
    manifest = read_manifest(path)
    first, second = manifest.rows
    assert (first.line, first.id, first.text, first.label) == (1, "ex1", "which digit?", "7")
    assert first.image == os.path.join(str(media), "images/a.png")
    assert first.audio == os.path.join(str(media), "audio/a.wav")
    assert first.audio_sample_rate == 8000 and first.target is None
    assert (second.line, second.id, second.label) == (3, "3", "3")
    assert manifest.labels == ("3", "7")
    assert manifest.summary() == f"{path}: 2 rows read, 2 valid"


def test_absolute_paths_are_kept(media, tmp_path_factory):
    other = tmp_path_factory.mktemp("elsewhere")
    image = str(other / "b.png")
    write_png(image)
    path = write_jsonl(media / "m.jsonl", [row(image=image)])
    assert read_manifest(path).rows[0].image == image


def test_labels_inferred_numerically_when_all_integers(media):
    path = write_jsonl(media / "m.jsonl", [row(label=label) for label in ("10", 2, "7", "2")])
    assert read_manifest(path).labels == ("2", "7", "10")


def test_labels_inferred_lexicographically_otherwise(media):
    path = write_jsonl(media / "m.jsonl", [row(label=label) for label in ("b", "10", "a", "2")])
    assert read_manifest(path).labels == ("10", "2", "a", "b")


def test_given_labels_keep_their_order(media):
    path = write_jsonl(media / "m.jsonl", [row(label="cat")])
    assert read_manifest(path, labels=("dog", "cat")).labels == ("dog", "cat")


def test_invalid_json(media):
    path = write_jsonl(media / "m.jsonl", [row(), '{"text": "a",,}'])
    expect_error(path, 2, "not valid JSON: ")


def test_not_a_json_object(media):
    path = write_jsonl(media / "m.jsonl", ["[1, 2]"])
    expect_error(path, 1, "expected a JSON object; received list")


def test_missing_required_field(media):
    path = write_jsonl(media / "m.jsonl", [row(), row(), row(audio="<drop>")])
    expect_error(path, 3, re.escape('missing required field "audio"'))


def test_missing_label(media):
    path = write_jsonl(media / "m.jsonl", [row(label=None)])
    expect_error(path, 1, re.escape('missing required field "label"'))


def test_text_wrong_type(media):
    path = write_jsonl(media / "m.jsonl", [row(text=5)])
    expect_error(path, 1, re.escape('field "text" must be a string; received int 5'))


def test_label_wrong_type(media):
    path = write_jsonl(media / "m.jsonl", [row(label=7.5)])
    expect_error(path, 1, re.escape('field "label" must be a string or an integer; '
                                    "received float 7.5"))


def test_target_not_a_number(media):
    path = write_jsonl(media / "m.jsonl", [row(target="high")])
    expect_error(path, 1, re.escape('field "target" must be a finite number'), task="regression")


def test_target_wrong_count(media):
    path = write_jsonl(media / "m.jsonl", [row(target=[1.0, 2.0])])
    expect_error(path, 1, re.escape('field "target" must hold 3 number(s); received 2'),
                 task="regression", num_targets=3)


def test_missing_image_file(media):
    path = write_jsonl(media / "m.jsonl", [row(image="images/99.png")])
    expect_error(path, 1, re.escape("image file not found: images/99.png (resolved: "))


def test_undecodable_image(media):
    (media / "images" / "bad.png").write_bytes(b"not an image")
    path = write_jsonl(media / "m.jsonl", [row(image="images/bad.png")])
    expect_error(path, 1, re.escape("image file is not a decodable JPEG/PNG/GIF/BMP image: "
                                    "images/bad.png"))


def test_audio_not_a_wav(media):
    (media / "audio" / "bad.wav").write_bytes(b"ID3 not a wav file at all")
    path = write_jsonl(media / "m.jsonl", [row(audio="audio/bad.wav")])
    expect_error(path, 1, re.escape("audio file is not a readable PCM WAV file"))


def test_audio_not_16_bit(media):
    write_wav(str(media / "audio" / "byte.wav"), sample_width=1)
    path = write_jsonl(media / "m.jsonl", [row(audio="audio/byte.wav")])
    expect_error(path, 1, re.escape("audio file must be 16-bit PCM WAV; received 8-bit PCM: "
                                    "audio/byte.wav"))


def test_audio_without_samples(media):
    write_wav(str(media / "audio" / "empty.wav"), frames=0)
    path = write_jsonl(media / "m.jsonl", [row(audio="audio/empty.wav")])
    expect_error(path, 1, re.escape("audio file has no samples: audio/empty.wav"))


def test_stereo_audio_is_accepted(media):
    write_wav(str(media / "audio" / "stereo.wav"), channels=2)
    path = write_jsonl(media / "m.jsonl", [row(audio="audio/stereo.wav")])
    assert read_manifest(path).rows[0].audio_sample_rate == 8000


def test_other_sample_rate_accepted_when_resampling(media):
    write_wav(str(media / "audio" / "fast.wav"), sample_rate=16000)
    path = write_jsonl(media / "m.jsonl", [row(audio="audio/fast.wav")])
    assert read_manifest(path, resample_audio=True).rows[0].audio_sample_rate == 16000


def test_other_sample_rate_rejected_without_resampling(media):
    write_wav(str(media / "audio" / "fast.wav"), sample_rate=16000)
    path = write_jsonl(media / "m.jsonl", [row(audio="audio/fast.wav")])
    expect_error(path, 1, re.escape("audio sample rate is 16000 Hz, expected 8000 Hz (set "
                                    "data.resample_audio=true to resample)"),
                 resample_audio=False)


def test_unknown_label(media):
    path = write_jsonl(media / "m.jsonl", [row(), row(label="eleven")])
    known = tuple(str(number) for number in range(30))
    expect_error(path, 2, re.escape('unknown label "eleven"; known labels: [') +
                 r".*\.\.\. \(10 more\)\]$", labels=known)


def test_skip_invalid_counts_reasons(media):
    rows = [row(), row(image="images/99.png"), row(audio="audio/99.wav"), row(label="x"),
            "not json", row(label="0")]
    path = write_jsonl(media / "m.jsonl", rows)
    manifest = read_manifest(path, labels=("0", "7"), skip_invalid=True)
    assert [valid.line for valid in manifest.rows] == [1, 6]
    assert [line for line, _ in manifest.skipped] == [2, 3, 4, 5]
    assert manifest.skipped[0][1].startswith("image file not found: images/99.png")
    assert manifest.summary() == (f"{path}: 6 rows read, 2 valid, 4 skipped (2 missing file, "
                                  "1 unknown label, 1 invalid JSON)")


def test_skip_invalid_without_valid_rows_raises(media):
    path = write_jsonl(media / "m.jsonl", [row(image="images/99.png")])
    with pytest.raises(ManifestError, match="^" + re.escape(f"{path}: no valid rows; 1 skipped")):
        read_manifest(path, skip_invalid=True)


def test_manifest_file_not_found(tmp_path):
    path = str(tmp_path / "absent.jsonl")
    with pytest.raises(ManifestError, match="^" + re.escape(f"{path}: manifest file not found")):
        read_manifest(path)


def test_empty_manifest(tmp_path):
    path = write_jsonl(tmp_path / "m.jsonl", ["", "   "])
    with pytest.raises(ManifestError, match="^" + re.escape(f"{path}: manifest is empty")):
        read_manifest(path)


def test_optional_modality_may_be_absent_or_null(media):
    path = write_jsonl(media / "m.jsonl", [row(audio="<drop>"), row(audio=None), row()])
    manifest = read_manifest(path, optional_modalities=("audio",))
    assert [valid.audio is None for valid in manifest.rows] == [True, True, False]
    assert manifest.rows[0].audio_sample_rate is None


def test_row_needs_at_least_one_modality(media):
    path = write_jsonl(media / "m.jsonl", [row(text=None, image=None, audio=None)])
    expect_error(path, 1, re.escape("row has none of the configured modalities"),
                 optional_modalities=("text", "image", "audio"))


def test_unconfigured_modalities_are_ignored(media):
    path = write_jsonl(media / "m.jsonl", [row(image="images/99.png", audio=5)])
    manifest = read_manifest(path, modalities=("text",))
    assert (manifest.rows[0].image, manifest.rows[0].audio) == (None, None)


def test_multilabel_parsing_and_label_union(media):
    path = write_jsonl(media / "m.jsonl",
                       [row(label=["dog", "cat"]), row(label=[]), row(label=["ant"])])
    manifest = read_manifest(path, task="multilabel")
    assert [valid.label for valid in manifest.rows] == [("dog", "cat"), (), ("ant",)]
    assert manifest.labels == ("ant", "cat", "dog")


def test_multilabel_needs_a_list(media):
    path = write_jsonl(media / "m.jsonl", [row(label="dog")])
    expect_error(path, 1, re.escape('field "label" must be a list of strings'), task="multilabel")


def test_regression_parsing(media):
    path = write_jsonl(media / "m.jsonl", [row(target=1), row(target=[2.5])])
    manifest = read_manifest(path, task="regression")
    assert [valid.target for valid in manifest.rows] == [(1.0,), (2.5,)]
    assert [valid.label for valid in manifest.rows] == [None, None]
    assert manifest.labels == ()


def test_image_decoded_once_per_path(media, monkeypatch):
    calls = []
    original = manifest_rows.check_image
    monkeypatch.setattr(manifest_rows, "check_image",
                        lambda *args: calls.append(args) or original(*args))
    path = write_jsonl(media / "m.jsonl", [row() for _ in range(5)])
    assert len(read_manifest(path).rows) == 5
    assert len(calls) == 1


def test_read_manifest_for_config(media):
    path = write_jsonl(media / "m.jsonl", [row(audio="<drop>", label="7")])
    config = DataConfig(modalities=("text", "audio"), optional_modalities=("audio",),
                        labels=("1",))
    manifest = read_manifest_for_config(path, config, labels=("7", "8"))
    assert manifest.labels == ("7", "8")
    assert manifest.rows[0].audio is None and manifest.rows[0].image is None
    with pytest.raises(ManifestError, match=re.escape('unknown label "7"')):
        read_manifest_for_config(path, config)


def test_empty_text_of_a_required_text_modality_is_an_error(media):
    path = write_jsonl(media / "m.jsonl", [row(), row(text=""), row(text="   ")])
    expect_error(path, 2, re.escape('field "text" is empty, but text is a required modality '
                                    "(list it in data.optional_modalities"))
    manifest = read_manifest(path, skip_invalid=True)
    assert [line for line, _ in manifest.skipped] == [2, 3]
    assert manifest.summary().endswith("2 skipped (2 empty value)")


def test_empty_text_of_an_optional_text_modality_is_absent(media):
    path = write_jsonl(media / "m.jsonl", [row(text=""), row(text="  "), row()])
    manifest = read_manifest(path, optional_modalities=("text",))
    assert [valid.text for valid in manifest.rows] == [None, None, "which digit?"]


def test_empty_media_path_of_a_required_modality_is_an_error(media):
    path = write_jsonl(media / "m.jsonl", [row(audio="")])
    expect_error(path, 1, re.escape('field "audio" is empty, but audio is a required modality'))


def test_wav_header_with_sample_rate_zero(media):
    write_wav(str(media / "audio" / "zero.wav"))
    wav_path = media / "audio" / "zero.wav"
    content = bytearray(wav_path.read_bytes())
    content[24:28] = (0).to_bytes(4, "little")  # the fmt chunk's sample rate
    wav_path.write_bytes(bytes(content))
    path = write_jsonl(media / "m.jsonl", [row(audio="audio/zero.wav")])
    expect_error(path, 1, re.escape("audio file's header declares a sample rate of 0 Hz: "
                                    "audio/zero.wav"))


def test_duplicate_ids(media):
    path = write_jsonl(media / "m.jsonl", [row(id="a"), row(id="b"),
                                           row(id="a", image="images/99.png"), row(id="a"),
                                           row(), row()])
    expect_error(path, 3, "image file not found")
    manifest = read_manifest(path, skip_invalid=True)
    assert manifest.skipped[1] == (4, 'duplicate id "a" (first on line 1)')
    assert [valid.id for valid in manifest.rows] == ["a", "b", "5", "6"]
    path = write_jsonl(media / "numbers.jsonl", [row(id=7), row(id="7")])
    expect_error(path, 2, re.escape('duplicate id "7" (first on line 1)'))


def test_empty_label(media):
    path = write_jsonl(media / "m.jsonl", [row(label="")])
    expect_error(path, 1, re.escape('field "label" must not be an empty string; received \'\''))
    path = write_jsonl(media / "multi.jsonl", [row(label=["dog", " "])])
    expect_error(path, 1, re.escape('items of "label" must not be an empty string'),
                 task="multilabel")


@pytest.mark.parametrize("num_targets", [0, -1])
def test_num_targets_below_one(media, num_targets):
    path = write_jsonl(media / "m.jsonl", [row(target=1.0)])
    for task in ("regression", "multiclass"):
        with pytest.raises(ManifestError, match="^" + re.escape(
                "data.num_targets must be an integer >= 1 (numbers per regression target); "
                f"received {num_targets}")):
            read_manifest(path, task=task, num_targets=num_targets)
    config = DataConfig(task="regression", num_targets=num_targets)
    with pytest.raises(UserError):
        read_manifest_for_config(path, config)


def test_image_over_the_pixel_limit_is_rejected_from_its_header(media, monkeypatch):
    write_png(str(media / "images" / "big.png"), size=20)
    path = write_jsonl(media / "m.jsonl", [row(image="images/big.png")])
    assert len(read_manifest(path).rows) == 1
    monkeypatch.setattr(media_checks, "MAX_IMAGE_PIXELS", 399)
    decoded = []
    monkeypatch.setattr(tf.io, "decode_image", lambda *args, **kwargs: decoded.append(args))
    expect_error(path, 1, re.escape("image header declares 20x20 pixels (400), more than the "
                                    "limit of 399 (tfmm.data.media_checks.MAX_IMAGE_PIXELS): "
                                    "images/big.png"))
    assert not decoded


def jpeg_header(width, height):
    """SOI, an APP0 segment, then a baseline SOF0 frame header (no image data)."""
    app0 = b"\xff\xe0" + (16).to_bytes(2, "big") + b"JFIF\x00" + bytes(9)
    frame = (b"\xff\xc0" + (17).to_bytes(2, "big") + b"\x08" + height.to_bytes(2, "big")
             + width.to_bytes(2, "big") + b"\x03" + bytes(9))
    return b"\xff\xd8" + app0 + frame


def bmp_header(width, height):
    return (b"BM" + bytes(12) + (40).to_bytes(4, "little") + width.to_bytes(4, "little")
            + height.to_bytes(4, "little", signed=True) + bytes(24))


@pytest.mark.parametrize("name, header", [
    ("bomb.png", png_header(60000, 60000)),
    ("bomb.gif", b"GIF89a" + (60000).to_bytes(2, "little") + (60000).to_bytes(2, "little")),
    ("bomb.jpg", jpeg_header(60000, 60000)),
    ("bomb.bmp", bmp_header(60000, -60000)),
    ("bomb.webp", b"RIFF" + bytes(4) + b"WEBPVP8X" + bytes(8) + (59999).to_bytes(3, "little")
     + (59999).to_bytes(3, "little")),
], ids=["png", "gif", "jpeg", "bmp", "webp"])
def test_decompression_bomb_headers_are_rejected_without_decoding(media, name, header):
    (media / "images" / name).write_bytes(header + bytes(64))
    path = write_jsonl(media / "m.jsonl", [row(image=f"images/{name}")])
    expect_error(path, 1, re.escape("image header declares 60000x60000 pixels (3600000000), "
                                    "more than the limit of 50000000"))


def test_image_size_from_real_headers():
    pixels = np.zeros((3, 5, 3), np.uint8)
    assert media_checks.image_size_from_header(tf.io.encode_png(pixels).numpy()) == (5, 3)
    assert media_checks.image_size_from_header(tf.io.encode_jpeg(pixels).numpy()) == (5, 3)
    assert media_checks.image_size_from_header(b"not an image") is None
