"""Reading `tfmm.pack` shards (`data.*_records`): the same model inputs as the manifest path,
decode failures named or counted, a whole run from shards (issue 19, part 2)."""

import json
import os

import numpy as np
import pytest

from helpers import tiny


def _pack(manifest, prefix, shards=3, **options):
    from tfmm.data.pack import pack_manifest

    return pack_manifest(manifest, prefix, shards, processes=1, log=lambda line: None, **options)


def _data_config(preset, manifest, tmp_path, task="multiclass", **data):
    from tfmm.config import config_from_dict

    config = tiny.tiny_config(preset, manifest, str(tmp_path / "run"), data=data,
                              modalities=("text", "image", "audio"))
    config["data"]["task"] = task
    if task != "multiclass":
        config["data"]["labels"] = [] if task == "regression" else list(tiny.LABELS)
    return config_from_dict(config).validate().data


def _pipelines(preset, manifest, pattern, data_config):
    from tfmm.data.dataset import ExamplePipeline
    from tfmm.data.manifest import read_manifest_for_config
    from tfmm.data.record_source import read_records_for_config
    from tfmm.data.records import RecordPipeline
    from tfmm.preprocessing.multimodal_preprocessor import MultimodalPreprocessor

    preprocessor = MultimodalPreprocessor.from_data_config(data_config, preset)
    source = read_records_for_config(pattern, data_config)
    return (ExamplePipeline(read_manifest_for_config(manifest, data_config), preprocessor,
                            data_config.task, cache=False),
            RecordPipeline(source, preprocessor, data_config.task), source)


@pytest.mark.parametrize("task", ["multiclass", pytest.param("multilabel", marks=pytest.mark.slow),
                                  pytest.param("regression", marks=pytest.mark.slow)])
def test_model_inputs_from_shards_match_the_manifest(task, tiny_preset, tmp_path, monkeypatch):
    """Every row, every feature and target: the shards give what the manifest path gives, in the
    order `RecordSource.rows` lists. Decode batches of 4 records and 2 shards read at once, so
    each of the 3 shards spans two batches and the shards take turns: a reading order of the
    rows that drifted from the pipeline's would fail."""
    import tfmm.data.dataset
    import tfmm.data.record_source

    monkeypatch.setattr(tfmm.data.dataset, "DECODE_BATCH_SIZE", 4)
    monkeypatch.setattr(tfmm.data.record_source, "CYCLE_LENGTH", 2)
    manifest = tiny.write_manifest(str(tmp_path / "data"), num_rows=20, task=task,
                                   missing_audio_every=(5 if task == "multiclass" else 0),
                                   varied_texts=True)
    optional = ["audio"] if task == "multiclass" else []
    _pack(manifest, str(tmp_path / "records" / "train"), task=task,
          optional_modalities=optional, labels=() if task == "regression" else tiny.LABELS)
    data_config = _data_config(tiny_preset, manifest, tmp_path, task,
                               optional_modalities=optional)
    from_manifest, from_records, source = _pipelines(
        tiny_preset, manifest, str(tmp_path / "records" / "train-*.tfrecord"), data_config)
    features, targets = next(iter(from_manifest.batches(64)))
    record_features, record_targets = next(iter(from_records.batches(64)))
    order = [int(row.id[3:]) for row in source.rows]  # the records' reading order
    assert sorted(order) == list(range(20))
    assert sorted(features) == sorted(record_features)
    for name in features:
        np.testing.assert_allclose(np.asarray(features[name])[order], record_features[name],
                                   rtol=1e-6, atol=1e-6, err_msg=name)
    np.testing.assert_array_equal(np.asarray(targets)[order], record_targets)
    assert from_records.num_examples == 20 and from_records.steps_per_epoch(8, True) == 2


def _rewrite_shard(path, replace):
    """Rewrites a shard with record i replaced by replace(i, record bytes) (None: kept)."""
    import tensorflow as tf

    records = [record.numpy() for record in tf.data.TFRecordDataset(path)]
    with tf.io.TFRecordWriter(path) as writer:
        for index, record in enumerate(records):
            writer.write(replace(index, record) or record)


def test_a_record_that_does_not_decode_is_named_or_skipped_and_counted(tiny_preset, tiny_manifest,
                                                                      tmp_path, capfd):
    import tensorflow as tf
    from tfmm.data.record_format import parse_example
    from tfmm.data.records import undecodable_record_message

    _pack(tiny_manifest, str(tmp_path / "train"))
    shard = str(tmp_path / "train-00001-of-00003.tfrecord")

    def corrupt_image(index, record):
        if index != 2:
            return None
        example = tf.train.Example.FromString(record)
        example.features.feature["image"].bytes_list.value[0] = b"\x89PNG not an image"
        return example.SerializeToString()

    _rewrite_shard(shard, corrupt_image)
    assert parse_example(list(tf.data.TFRecordDataset(shard))[2])["id"].numpy() == b"row7"
    pattern = str(tmp_path / "train-*.tfrecord")
    data_config = _data_config(tiny_preset, tiny_manifest, tmp_path)
    _, pipeline, _ = _pipelines(tiny_preset, tiny_manifest, pattern, data_config)
    with pytest.raises(tf.errors.InvalidArgumentError,
                       match=r"(?s)does not parse or decode.*train-00001-of-00003\.tfrecord.*"
                             r"record index \(from 0\):\] \[2\]") as raised:
        for _ in pipeline.batches(8, shuffle=True, seed=3, epoch=1):
            pass
    # train.py prints this one line instead of the traceback.
    assert undecodable_record_message(raised.value) == (
        f"{shard}: record 2 (counted from 0) does not parse or decode (corrupt bytes, a missing "
        "feature, or a label outside the run's labels); set data.skip_invalid=true to skip such "
        "records")
    assert undecodable_record_message(ValueError("another error")) is None
    data_config.skip_invalid = True
    _, pipeline, _ = _pipelines(tiny_preset, tiny_manifest, pattern, data_config)
    capfd.readouterr()
    seen = sum(int(targets.shape[0]) for _, targets in pipeline.batches(8))
    assert seen == 31
    assert (f'records: skipped 1 record(s) that do not parse or decode: shard "{shard}" records '
            "2 to 2") in capfd.readouterr().err


def test_the_rows_of_shards_are_read_without_their_media(tiny_preset, tiny_manifest, tmp_path):
    """`RecordSource.rows` (ids, labels, lines for class weights and reports) parses no media: a
    record whose image feature is gone still gives its row, while decoding it fails."""
    import tensorflow as tf

    _pack(tiny_manifest, str(tmp_path / "train"), shards=2)
    shard = str(tmp_path / "train-00000-of-00002.tfrecord")

    def drop_image(index, record):
        if index != 3:
            return None
        example = tf.train.Example.FromString(record)
        del example.features.feature["image"]
        return example.SerializeToString()

    _rewrite_shard(shard, drop_image)
    data_config = _data_config(tiny_preset, tiny_manifest, tmp_path)
    _, pipeline, source = _pipelines(tiny_preset, tiny_manifest, str(tmp_path / "train-*"),
                                     data_config)
    rows = source.rows
    assert sorted(int(row.id[3:]) for row in rows) == list(range(32))
    assert rows[3].id == "row6" and rows[3].line == 7 and rows[3].label in tiny.LABELS
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"(?s)\(from 0\):\] \[3\]"):
        list(pipeline.batches(8))


def test_a_truncated_shard_stops_naming_its_first_lost_record(tiny_preset, tiny_manifest,
                                                              tmp_path):
    import tensorflow as tf

    _pack(tiny_manifest, str(tmp_path / "train"), shards=2)
    shard = str(tmp_path / "train-00000-of-00002.tfrecord")
    with open(shard, "rb") as handle:
        content = handle.read()
    with open(shard, "wb") as handle:
        handle.write(content[:-50])  # the last of its 16 records is cut
    data_config = _data_config(tiny_preset, tiny_manifest, tmp_path)
    _, pipeline, _ = _pipelines(tiny_preset, tiny_manifest, str(tmp_path / "train-*"),
                                data_config)
    with pytest.raises(tf.errors.InvalidArgumentError,
                       match=r"(?s)train-00000-of-00002\.tfrecord.*\(from 0\):\] \[15\]"):
        list(pipeline.batches(8))


def test_records_that_do_not_fit_the_config_are_refused(tiny_preset, tiny_manifest, tmp_path):
    from tfmm.data.record_format import RecordsError
    from tfmm.data.record_source import read_records_for_config

    _pack(tiny_manifest, str(tmp_path / "train"), modalities=("text", "audio"))
    pattern = str(tmp_path / "train-*.tfrecord")
    with pytest.raises(RecordsError, match=r"hold the modalities \['text', 'audio'\], not "
                                           r"\['image'\]"):
        read_records_for_config(pattern, _data_config(tiny_preset, tiny_manifest, tmp_path))
    with pytest.raises(RecordsError, match=r"labels \['high', 'low'\] that are not among"):
        read_records_for_config(pattern, _data_config(
            tiny_preset, tiny_manifest, tmp_path, modalities=["text"], labels=["a", "b"]))


def test_a_run_trains_and_reports_from_shards(tiny_config, tiny_manifest, tmp_path):
    """train.py's run from `data.train_records` / `test_records` with `data.cache = none`; the
    test report scores the same examples as the manifest's."""
    from tfmm.config import load_config
    from tfmm.training.runner import run_training

    _pack(tiny_manifest, str(tmp_path / "records" / "train"), shards=4)
    pattern = str(tmp_path / "records" / "train-*.tfrecord")
    # XLA off: its compilation of the step (the same step as from a manifest) is most of a
    # tiny run's time here; what is tested is the data path.
    config_path, run_dir = tiny_config(
        "records", modalities=("text", "audio"), epochs=2, jit_compile="false",
        data={"train_manifest": "", "train_records": pattern, "test_records": pattern,
              "report_group_field": "", "cache": "none"}, model={"dropout": 0.1})
    lines = []
    result = run_training(load_config(config_path), log=lines.append)
    assert any("4 shards, 32 examples packed from train.jsonl" in line for line in lines)
    with open(os.path.join(run_dir, "history.json")) as handle:
        history = json.load(handle)
    assert len(history) == 2 and all(np.isfinite(entry["loss"]) for entry in history)
    assert result["report"]["num_examples"] == 32 and result["report"]["manifest"] == pattern

    # evaluate.py scores the finished run from the shards with the manifest's report.
    import evaluate

    out = str(tmp_path / "reports")
    assert evaluate.main([run_dir, "--data", pattern, "--out", out]) == 0
    with open(os.path.join(out, "train_report.json")) as handle:  # named after the pack
        from_shards = json.load(handle)
    assert evaluate.main([run_dir, "--data", tiny_manifest, "--out", out, "--name", "rows"]) == 0
    with open(os.path.join(out, "rows_report.json")) as handle:
        from_manifest = json.load(handle)
    assert from_shards["manifest"] == pattern and from_shards["num_examples"] == 32
    for key in ("accuracy", "macro_f1", "num_examples"):
        assert from_shards[key] == pytest.approx(from_manifest[key], abs=1e-6), key
