"""The shared fixtures of tests/helpers are what they claim: real decoders read the PNGs and WAVs
back, the manifest variants hold the labels they document, both config formats load alike."""

import json
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from helpers import tiny, tiny_media, tiny_squad

from tfmm.config import load_config, load_stages
from tfmm.data import media_checks
from tfmm.data.manifest import read_manifest
from tfmm.data.squad import parse_squad_json


@pytest.mark.parametrize("shape", [(5, 3), (5, 3, 1), (5, 3, 3)])
def test_png_bytes_decode_to_the_pixels(shape):
    pixels = np.arange(np.prod(shape), dtype=np.uint8).reshape(shape) * 5
    decoded = tf.io.decode_png(tiny.png_bytes(pixels)).numpy()
    np.testing.assert_array_equal(decoded.reshape(pixels.shape), pixels)
    assert media_checks.image_size_from_header(tiny.png_bytes(pixels)) == (3, 5)
    assert media_checks.image_size_from_header(tiny.png_header(70000, 9)) == (70000, 9)


@pytest.mark.parametrize("sample_rate, channels", [(8000, 1), (16000, 2)])
def test_wav_bytes_decode_to_the_samples(sample_rate, channels):
    samples = np.linspace(-0.5, 0.5, 40 * channels).reshape(40, channels)
    for data in (tiny.wav_bytes(samples, sample_rate, channels),
                 tiny.with_wav_chunk(tiny.wav_bytes(samples, sample_rate, channels),
                                     b"LIST" + (4).to_bytes(4, "little") + b"INFO"),
                 tiny.with_wav_chunk(tiny.wav_bytes(samples, sample_rate, channels),
                                     b"JUNK" + (2).to_bytes(4, "little") + bytes(2),
                                     before=b"fmt ")):
        audio, rate = tf.audio.decode_wav(data)
        assert int(rate) == sample_rate
        np.testing.assert_allclose(audio.numpy(), samples, atol=1e-4)


def test_written_media_pass_the_manifest_checks(tmp_path):
    tiny.write_png(tmp_path / "images" / "a.png", size=6)
    tiny.write_wav(tmp_path / "audio" / "a.wav", frames=0)
    tiny.write_wav(tmp_path / "audio" / "b.wav", sample_rate=16000, channels=2)
    rows = [{"text": "a", "image": "images/a.png", "audio": f"audio/{name}.wav", "label": "x"}
            for name in ("a", "b")]
    path = tiny.write_jsonl(tmp_path / "m.jsonl", rows + ["not json"])
    manifest = read_manifest(path, skip_invalid=True, resample_audio=True)
    assert [row.line for row in manifest.rows] == [2]
    assert manifest.rows[0].audio_sample_rate == 16000
    assert "audio file has no samples" in manifest.skipped[0][1]
    assert tiny.read_jsonl(tiny.write_jsonl(tmp_path / "rows.jsonl", rows)) == rows


@pytest.mark.parametrize("task", ["multiclass", "multilabel", "regression"])
def test_manifest_labels_alternate_and_every_file_exists(tmp_path, task):
    path = tiny.write_manifest(str(tmp_path), num_rows=8, task=task, missing_audio_every=4)
    manifest = read_manifest(path, task=task, optional_modalities=("audio",))
    assert len(manifest.rows) == 8
    assert [row.audio is None for row in manifest.rows] == [False, False, False, True] * 2
    if task == "regression":
        assert [row.target for row in manifest.rows] == [(1.0,), (-1.0,)] * 4
    elif task == "multilabel":
        assert [row.label for row in manifest.rows] == [
            ("high",), ("low",), ("high",), ("high", "low")] * 2
    else:
        assert [row.label for row in manifest.rows] == ["high", "low"] * 4


def test_varied_texts_have_one_to_twelve_words(tmp_path):
    path = tiny.write_manifest(str(tmp_path), num_rows=24, modalities=("text",),
                               varied_texts=True)
    rows = tiny.read_jsonl(path)
    assert [len(row["text"].split()) for row in rows] == [1 + index % 12 for index in range(24)]
    assert set(" ".join(row["text"] for row in rows).split()) <= set(tiny.MANIFEST_WORDS)
    assert set(rows[0]) == {"id", "text", "label"}


def test_python_and_json_configs_load_alike(tmp_path):
    values = tiny.tiny_config("preset", "m.jsonl", "run", model={"dropout": 0.1}, epochs=3)
    from_python = load_config(tiny.write_config(tmp_path / "c.py", values))
    assert from_python == load_config(tiny.write_config(tmp_path / "c.json", values))
    assert from_python.model.dropout == 0.1 and from_python.training.epochs == 3
    stages = load_stages(tiny.write_config(tmp_path / "s.py", [dict(values, name="one"),
                                                                dict(values, name="two")]))
    assert [name for name, _ in stages] == ["one", "two"]
    with open(tmp_path / "c.json") as handle:
        assert json.load(handle)["model"]["dropout"] == 0.1


@pytest.mark.parametrize("make", [tiny_squad.tiny_squad, tiny_squad.unicode_squad])
def test_squad_fixtures_parse_and_come_fresh(tmp_path, make):
    version_one = parse_squad_json(make())
    version_two = parse_squad_json(make("v2.0"))
    assert len(version_two) == len(version_one) + 1
    assert [example.is_impossible for example in version_two].count(True) == 1
    for example in version_one:
        for text, start in example.answers:
            assert example.context[start:start + len(text)] == text
    changed = make()
    changed["data"].clear()
    assert make()["data"]
    with open(tiny_squad.write_squad_file(tmp_path / "s.json", make()), encoding="utf-8") as file:
        assert json.load(file) == make()
    with pytest.raises(ValueError, match="version"):
        make("2.0")


def test_helpers_import_without_tensorflow():
    code = ("import sys; sys.path.insert(0, 'tests'); "
            "from helpers import tiny, tiny_media, tiny_squad; "
            "print(sorted(name for name in ('tensorflow', 'keras') if name in sys.modules))")
    output = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            cwd=tiny.REPO_ROOT, timeout=60)
    assert output.returncode == 0, output.stderr[-2000:]
    assert output.stdout.strip() == "[]"
    assert tiny.png_bytes is tiny_media.png_bytes
