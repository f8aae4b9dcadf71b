"""`data.text_length_buckets`: batches of texts cut to a few lengths, same outputs, off by default."""

import numpy as np
import pytest

from helpers import tiny

# About 110 s in all (a bucketed run and a model per bucket): run with `pytest -m slow`, so the
# default suite keeps CI under its time limit.
pytestmark = pytest.mark.slow


def _write_varied_manifest(directory):
    """40 text-only rows of 1 to 12 words (3 to 14 tokens with [CLS] and [SEP])."""
    return tiny.write_manifest(directory, num_rows=40, modalities=("text",), varied_texts=True)


@pytest.fixture
def bucketed(tiny_preset, tmp_path):
    from tfmm.config import DataConfig
    from tfmm.data.dataset import ExamplePipeline
    from tfmm.data.manifest import read_manifest_for_config
    from tfmm.preprocessing.multimodal_preprocessor import MultimodalPreprocessor

    data = DataConfig(train_manifest=_write_varied_manifest(str(tmp_path)), modalities=("text",),
                      labels=tiny.LABELS, text_sequence_length=16, text_length_buckets=(4, 8),
                      batch_size=4)
    manifest = read_manifest_for_config(data.train_manifest, data)
    preprocessor = MultimodalPreprocessor.from_data_config(data, tiny_preset)
    plain = ExamplePipeline(manifest, preprocessor, "multiclass", cache=True)
    cut = ExamplePipeline(manifest, preprocessor, "multiclass", cache=True,
                          text_length_buckets=data.text_length_buckets)
    return data, plain, cut


def test_training_batches_are_grouped_by_length_bucket(bucketed):
    data, plain, cut = bucketed
    lengths = cut.text_lengths
    assert cut.bucket_boundaries == (4, 8, 16)
    expected = sum(int(np.sum((lengths > low) & (lengths <= high))) // 4
                   for low, high in ((0, 4), (4, 8), (8, 16)))
    assert cut.steps_per_epoch(4, drop_remainder=True) == expected
    assert plain.steps_per_epoch(4, drop_remainder=True) == 10
    for epoch in (0, 1):
        batches = list(cut.batches(4, shuffle=True, seed=1, epoch=epoch, drop_remainder=True))
        assert len(batches) == expected
        for features, targets in batches:
            length = features["token_ids"].shape[1]
            real = features["padding_mask"].numpy().sum(axis=1)
            assert length in (4, 8, 16) and targets.shape[0] == 4
            assert real.max() <= length
            previous = max([0] + [bound for bound in (4, 8, 16) if bound < length])
            assert real.min() > previous  # one bucket per batch
    # Resuming skips the batches already done and replays the rest in the same order.
    full = list(cut.batches(4, shuffle=True, seed=1, epoch=1, drop_remainder=True))
    resumed = list(cut.batches(4, shuffle=True, seed=1, epoch=1, drop_remainder=True,
                               skip_batches=2))
    for (left, _), (right, _) in zip(full[2:], resumed):
        np.testing.assert_array_equal(left["token_ids"], right["token_ids"])


def test_evaluation_batches_keep_order_and_drop_only_padding(bucketed):
    _, plain, cut = bucketed
    for (full, full_targets), (short, short_targets) in zip(plain.batches(4), cut.batches(4)):
        length = short["token_ids"].shape[1]
        np.testing.assert_array_equal(full_targets, short_targets)
        for name in ("token_ids", "segment_ids", "padding_mask"):
            np.testing.assert_array_equal(full[name][:, :length], short[name])
        assert full["padding_mask"].numpy()[:, length:].sum() == 0
        smaller = [bound for bound in (4, 8) if bound < length]
        assert not smaller or full["padding_mask"].numpy().sum(axis=1).max() > smaller[-1]


def test_model_outputs_do_not_depend_on_the_bucket(bucketed, tiny_preset):
    import tensorflow as tf

    from tfmm.config import Config
    from tfmm.models.multimodal_model import build_multimodal_model

    data, plain, cut = bucketed
    config = Config(data=data)
    config.model.text_preset = tiny_preset
    config.model.freeze_text_encoder = False
    config.model.projection_dim = 8
    config.model.fusion_num_heads = 2
    config.model.head_hidden_dim = 8
    model = build_multimodal_model(config, 2)
    for (full, _), (short, _) in zip(plain.batches(4), cut.batches(4)):
        assert short["token_ids"].shape[1] < 16 or full["padding_mask"].numpy().sum(1).max() > 8
        np.testing.assert_allclose(model(full)["logits"], model(short)["logits"], atol=1e-5)
    # The default keeps the static length in the model and in every batch.
    config.data.text_length_buckets = ()
    static = build_multimodal_model(config, 2)
    assert static.input["token_ids"].shape[1] == 16
    spec = plain.batches(4, drop_remainder=True).element_spec[0]["token_ids"]
    assert spec.shape == tf.TensorShape([4, 16])


def test_bucketed_run_trains(tiny_preset, tmp_path):
    from tfmm.config import config_from_dict
    from tfmm.training.runner import run_training

    config = tiny.tiny_config(tiny_preset, _write_varied_manifest(str(tmp_path / "data")),
                              str(tmp_path / "run"), modalities=("text",), epochs=2)
    config["data"].update(text_sequence_length=16, text_length_buckets=[4, 8], batch_size=4)
    result = run_training(config_from_dict(config).validate(), log=lambda line: None)
    assert len(result["history"]["loss"]) == 2
    assert all(np.isfinite(result["history"]["loss"]))


def test_bucket_config_is_checked():
    from tfmm.config import ConfigError, config_from_dict

    with pytest.raises(ConfigError, match="text_length_buckets"):
        config_from_dict({"data": {"train_manifest": "x.jsonl", "text_sequence_length": 16,
                                   "text_length_buckets": [8, 32]}}).validate()
    with pytest.raises(ConfigError, match="text_length_buckets"):
        config_from_dict({"data": {"train_manifest": "x.jsonl", "modalities": ["audio"],
                                   "text_length_buckets": [8]}}).validate()


def test_bucket_lengths_are_the_packed_lengths(tiny_preset, bucketed):
    """The lengths counted before packing (shared with the cut-text note), capped at the
    sequence length, are what the packer's padding mask holds."""
    import tensorflow as tf

    from tfmm.preprocessing.multimodal_preprocessor import MultimodalPreprocessor

    data, _, cut = bucketed
    preprocessor = MultimodalPreprocessor.from_data_config(data, tiny_preset)
    texts = [row.text or "" for row in cut.manifest.rows]
    packed = preprocessor.text_preprocessor(tf.constant(texts))
    mask_lengths = tf.reduce_sum(tf.cast(packed["padding_mask"], tf.int32), axis=1).numpy()
    np.testing.assert_array_equal(cut.text_lengths, mask_lengths)
    # A cut text fills the whole sequence (a text of exactly that length fills it uncut).
    assert cut.num_cut_texts <= int(np.sum(mask_lengths == data.text_sequence_length))
