"""`python -m tfmm.pack`: a manifest to TFRecord shards and a JSON index (issue 19, part 1)."""

import hashlib
import json
import os

import pytest

from helpers import tiny


def _pack(manifest, prefix, **options):
    from tfmm.data.pack import pack_manifest

    return pack_manifest(manifest, prefix, options.pop("shards", 3), log=lambda line: None,
                         **options)


def _files(folder):
    return {name: open(os.path.join(folder, name), "rb").read()
            for name in sorted(os.listdir(folder))}


def test_packing_twice_gives_identical_shards(tiny_manifest, tmp_path):
    _pack(tiny_manifest, str(tmp_path / "first" / "train"), processes=1)
    _pack(tiny_manifest, str(tmp_path / "second" / "train"), processes=1)
    first, second = _files(tmp_path / "first"), _files(tmp_path / "second")
    assert sorted(first) == ["train-00000-of-00003.tfrecord", "train-00001-of-00003.tfrecord",
                             "train-00002-of-00003.tfrecord", "train.index.json"]
    assert first == second


@pytest.mark.slow  # starts a process server that imports TensorFlow (~15-50 s here)
def test_parallel_packing_writes_the_same_shards_as_serial(tiny_manifest, tmp_path):
    _pack(tiny_manifest, str(tmp_path / "serial" / "train"), processes=1)
    _pack(tiny_manifest, str(tmp_path / "parallel" / "train"), processes=2)
    assert _files(tmp_path / "serial") == _files(tmp_path / "parallel")


def test_index_and_records_hold_the_rows_as_they_are(tiny_manifest, tmp_path):
    import tensorflow as tf
    from tfmm.data.record_format import parse_example

    index = _pack(tiny_manifest, str(tmp_path / "train"), processes=1)
    with open(tmp_path / "train.index.json") as handle:
        assert json.load(handle) == index
    assert index["format"] == "tfmm-records" and index["num_examples"] == 32
    assert [shard["examples"] for shard in index["shards"]] == [11, 11, 10]
    assert index["labels"] == ["high", "low"] and index["skipped"] == 0
    assert index["source_manifest_sha256"] == hashlib.sha256(
        open(tiny_manifest, "rb").read()).hexdigest()
    assert set(index["schema"]) == {"id", "line", "text", "image", "audio", "label", "target",
                                    "extra"}
    assert index["audio_sample_rates"] == [8000]
    rows = tiny.read_jsonl(tiny_manifest)
    folder = os.path.dirname(tiny_manifest)
    records = list(tf.data.TFRecordDataset(str(tmp_path / "train-00001-of-00003.tfrecord")))
    first = parse_example(records[0])  # round robin: shard 1 starts with row 1
    assert first["id"].numpy() == b"row1" and int(first["line"]) == 2
    assert first["text"].numpy().decode() == rows[1]["text"]
    assert first["label"].numpy().tolist() == [b"low"]
    for field in ("image", "audio"):
        with open(os.path.join(folder, rows[1][field]), "rb") as handle:
            assert first[field].numpy() == handle.read()  # the file's bytes, not re-encoded


def test_an_invalid_row_stops_with_file_and_line(tiny_manifest, tmp_path, capsys):
    from tfmm.data.pack import main

    rows = tiny.read_jsonl(tiny_manifest)[:6]
    folder = os.path.dirname(tiny_manifest)
    for row in rows:
        for field in ("image", "audio"):
            row[field] = os.path.join(folder, row[field])
    rows[2]["image"] = "nowhere.png"
    rows[4]["label"] = "medium"
    manifest = tiny.write_jsonl(tmp_path / "bad.jsonl", rows)
    prefix = str(tmp_path / "out" / "train")
    assert main([manifest, prefix, "--shards", "2", "--processes", "1",
                 "--labels", "high,low"]) == 2
    error = capsys.readouterr().err.strip()
    assert error == f"error: {manifest}:3: image file not found: nowhere.png (resolved: " \
                    f"{tmp_path / 'nowhere.png'})"
    assert not os.path.exists(tmp_path / "out")
    assert main([manifest, prefix, "--shards", "2", "--processes", "1", "--labels", "high,low",
                 "--skip-invalid"]) == 0
    with open(prefix + ".index.json") as handle:
        index = json.load(handle)
    assert index["num_examples"] == 4 and index["skipped"] == 2
    assert index["skipped_reasons"] == {"missing file": 1, "unknown label": 1}


def test_video_is_refused_not_dropped(tiny_manifest, tmp_path, capsys):
    """Shards hold no video: packing a video manifest stops with one line (it used to write
    shards without the clips and list video in the index)."""
    from tfmm.data.pack import main

    prefix = str(tmp_path / "out" / "train")
    assert main([tiny_manifest, prefix, "--shards", "1", "--modalities", "text,video"]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("error: --modalities: shards hold text, image, audio; ['video']")
    assert not os.path.exists(tmp_path / "out")


def test_shards_of_another_pack_or_without_index_are_refused(tiny_manifest, tmp_path):
    from tfmm.data.record_format import RecordsError, shards_of_pattern

    _pack(tiny_manifest, str(tmp_path / "train"), shards=2, processes=1)
    assert [count for _, count, _ in shards_of_pattern(str(tmp_path / "train-*"))] == [16, 16]
    os.remove(tmp_path / "train.index.json")
    with pytest.raises(RecordsError, match="train.index.json: records index not found"):
        shards_of_pattern(str(tmp_path / "train-*.tfrecord"))
    with pytest.raises(RecordsError, match="no TFRecord shards match"):
        shards_of_pattern(str(tmp_path / "test-*.tfrecord"))
