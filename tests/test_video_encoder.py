"""The video encoder: InceptionV3 per frame at 75x75 (and no smaller), temporal fusion that gives
padding frames zero weight, config and saving round trips, and a text + video model trained on
the cached per-frame features of a frozen video encoder."""

import dataclasses
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

import tfmm  # noqa: F401  (registers the layers for load_model)
from helpers import tiny
from helpers.tiny_media import write_gif
from tfmm.config import ConfigError, config_from_dict
from tfmm.models.frame_batching import BlankPaddingFrames, MergeFrames, SplitFrames
from tfmm.models.temporal_fusion import temporal_fusion
from tfmm.models.video_encoder import (InceptionInputNormalization, VideoEncoderError,
                                       build_video_encoder)
from tfmm.video_encoder_config import VideoEncoderConfig

FRAMES, SIZE, WIDTH = 3, 75, 16
FRAME_MASK = np.array([[1, 1, 0], [1, 0, 0]], np.float32)  # clip 0: 2 real frames, clip 1: 1


@pytest.fixture(scope="module")
def encoder():
    """An attention-pooling video encoder at 75x75, 3 frames, weights none (trainable)."""
    keras.utils.set_random_seed(0)
    return build_video_encoder(FRAMES, SIZE, WIDTH, temporal="attention", temporal_heads=2)


def clips(seed=0):
    return np.random.default_rng(seed).uniform(0, 255, (2, FRAMES, SIZE, SIZE, 3)).astype(
        np.float32)


def with_new_padding(videos, seed=1):
    """The clips with every padding frame (FRAME_MASK 0) replaced by other pixels."""
    changed = videos.copy()
    changed[FRAME_MASK == 0] = clips(seed)[FRAME_MASK == 0]
    return changed


def test_inception_builds_at_75x75_and_smaller_frames_are_rejected(encoder):
    inception = encoder.get_layer("video_features").get_layer("inception_v3")
    assert tuple(inception.input.shape) == (None, SIZE, SIZE, 3)
    assert tuple(inception.output.shape) == (None, 2048)
    assert tuple(encoder.get_layer("video_features").output.shape) == (None, FRAMES, 2048)
    assert set(encoder.input) == {"video", "video_frame_mask"}
    output = encoder({"video": clips(), "video_frame_mask": FRAME_MASK})
    assert tuple(output.shape) == (2, WIDTH)
    with pytest.raises(VideoEncoderError, match=r"at least 75x75 .*Received: 74"):
        build_video_encoder(FRAMES, 74, WIDTH)


def test_padding_frames_never_change_the_encoder_output(encoder):
    """In inference and in training mode: a trainable InceptionV3 computes BatchNorm batch
    statistics over all frames, so padding frames are blanked before it."""
    videos = clips()
    for training in (False, True):
        outputs = [encoder({"video": frames, "video_frame_mask": FRAME_MASK},
                           training=training).numpy()
                   for frames in (videos, with_new_padding(videos))]
        np.testing.assert_allclose(outputs[0], outputs[1], atol=1e-5)
    changed_real = videos.copy()
    changed_real[0, 0] = 255.0 - changed_real[0, 0]
    changed = encoder({"video": changed_real, "video_frame_mask": FRAME_MASK}).numpy()
    assert not np.allclose(changed[0], outputs[0][0], atol=1e-4)  # a real frame counts


def test_output_tokens_are_frames_with_time_positions_and_the_frame_mask():
    """For token-level fusion: one token per frame; the same frame at two times differs."""
    keras.utils.set_random_seed(1)
    encoder = build_video_encoder(2, SIZE, 8, output_tokens=True)
    frame = clips()[:1, :1]
    mask = np.array([[1, 1]], np.float32)
    output = encoder({"video": np.concatenate([frame, frame], axis=1), "video_frame_mask": mask})
    assert set(output) == {"tokens", "token_mask"}
    assert tuple(output["tokens"].shape) == (1, 2, 8)
    np.testing.assert_array_equal(output["token_mask"], mask)
    assert not np.allclose(output["tokens"][0, 0], output["tokens"][0, 1], atol=1e-4)


def fusion_model(temporal, dropout=0.0):
    frames = keras.Input((FRAMES, 8), name="frames")
    frame_mask = keras.Input((FRAMES,), name="frame_mask")
    pooled = temporal_fusion(frames, frame_mask, temporal, num_heads=2, num_layers=2,
                             dropout=dropout)
    return keras.Model([frames, frame_mask], pooled)


def test_mean_pooling_is_the_masked_mean_of_the_real_frames():
    frames = np.random.default_rng(0).normal(size=(2, FRAMES, 8)).astype(np.float32)
    pooled = fusion_model("mean")([frames, FRAME_MASK]).numpy()
    np.testing.assert_allclose(pooled[0], frames[0, :2].mean(axis=0), rtol=1e-5)
    np.testing.assert_allclose(pooled[1], frames[1, 0], rtol=1e-5)


@pytest.mark.parametrize("temporal", ["attention", "transformer"])
def test_padding_frames_get_zero_attention_weight(temporal):
    keras.utils.set_random_seed(3)
    model = fusion_model(temporal, dropout=0.1)
    frames = np.random.default_rng(0).normal(size=(2, FRAMES, 8)).astype(np.float32)
    if temporal == "attention":
        pooling = model.get_layer("video_temporal_attention")
        with_time = keras.Model(model.inputs, model.get_layer("video_with_time").output)
        _, scores = pooling(with_time([frames, FRAME_MASK]), FRAME_MASK,
                            return_attention_scores=True)
        weights = {"pooling": scores}
    else:
        fusion = model.get_layer("video_temporal_transformer")
        _, weights = fusion(frames, FRAME_MASK, return_attention_scores=True)
        assert len(weights) == 3  # two transformer layers and the pooling
    for name, scores in weights.items():
        scores = np.asarray(scores)  # [B, heads, queries, T]
        padding = np.broadcast_to(FRAME_MASK[:, None, None, :] == 0, scores.shape)
        assert np.all(scores[padding] == 0.0), name
        np.testing.assert_allclose(scores.sum(-1), 1.0, rtol=1e-5, err_msg=name)
        assert np.all(scores[~padding] > 0.0), name
    changed = frames.copy()
    changed[FRAME_MASK == 0] = 100.0
    np.testing.assert_allclose(model([frames, FRAME_MASK]), model([changed, FRAME_MASK]),
                               atol=1e-5)


def test_temporal_fusion_compiles_with_xla():
    frames = np.random.default_rng(0).normal(size=(2, FRAMES, 8)).astype(np.float32)
    for temporal in ("mean", "attention", "transformer"):
        model = fusion_model(temporal)
        compiled = tf.function(lambda inputs: model(inputs, training=False), jit_compile=True)
        np.testing.assert_allclose(compiled([frames, FRAME_MASK]), model([frames, FRAME_MASK]),
                                   atol=1e-5, err_msg=temporal)


@pytest.mark.slow
def test_whole_encoder_trains_under_xla(encoder):
    """One XLA-compiled training step through InceptionV3 and the temporal fusion (~30 s of
    compilation on a 2-core CPU)."""
    optimizer = keras.optimizers.Adam(1e-3)
    inputs = {"video": tf.constant(clips()), "video_frame_mask": tf.constant(FRAME_MASK)}

    @tf.function(jit_compile=True)
    def step():
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.square(encoder(inputs, training=True)))
        gradients = tape.gradient(loss, encoder.trainable_variables)
        optimizer.apply_gradients(zip(gradients, encoder.trainable_variables))
        return loss

    assert np.isfinite(step().numpy()) and np.isfinite(step().numpy())


def test_saved_encoder_loads_after_import_tfmm(encoder, tmp_path):
    inputs = {"video": clips(), "video_frame_mask": FRAME_MASK}
    encoder.save(tmp_path / "video_encoder.keras")
    loaded = keras.saving.load_model(tmp_path / "video_encoder.keras")
    np.testing.assert_allclose(loaded(inputs), encoder(inputs), atol=1e-5)


def test_layer_and_config_round_trips():
    for layer in (MergeFrames(name="m"), SplitFrames(4, name="s"), BlankPaddingFrames(name="b"),
                  InceptionInputNormalization(name="n")):
        config = layer.get_config()
        assert type(layer).from_config(config).get_config() == config
    with pytest.raises(ValueError, match="num_frames"):
        SplitFrames(0)
    values = {"model": {"video_encoder": {"temporal": "transformer", "freeze": True}},
              "data": {"modalities": ["video"], "train_manifest": "train.jsonl"}}
    config = config_from_dict(values).validate()
    assert config.model.video_encoder == VideoEncoderConfig(temporal="transformer", freeze=True)
    assert config_from_dict(config.to_dict()).model.video_encoder == config.model.video_encoder
    for bad, message in (({"temporal": "max"}, "temporal` must be one of"),
                         ({"heads": 2}, r"unknown keys \['heads'\]"),
                         ({"temporal_layers": 0}, "an integer >= 1")):
        with pytest.raises(ConfigError, match=message):
            config_from_dict({"model": {"video_encoder": bad}})


def write_video_manifest(folder, rows):
    """Rows whose label ("high"/"low") the clip's brightness tells; every third clip has 2 of
    the 3 frames (padding)."""
    manifest = []
    for index in range(rows):
        high = index % 2 == 0
        count = 2 if index % 3 == 0 else 3
        frames = np.stack([np.full((8, 8, 3), (200 if high else 40) + 5 * step, np.uint8)
                           for step in range(count)])
        write_gif(os.path.join(folder, "clips", f"{index}.gif"), frames)
        manifest.append({"id": f"row{index}", "text": "which digit is it ?",
                         "video": f"clips/{index}.gif", "label": "high" if high else "low"})
    return tiny.write_jsonl(os.path.join(folder, "train.jsonl"), manifest)


def video_config(tiny_preset, tmp_path, rows, **training):
    """A validated text + video config (frozen attention video encoder, cached features) over a
    manifest of `rows` GIF clips."""
    manifest = write_video_manifest(str(tmp_path / "data"), rows)
    values = tiny.tiny_config(
        tiny_preset, manifest, str(tmp_path / "run"), modalities=("text", "video"),
        data={"video_frames": FRAMES, "video_size": SIZE},
        model={"video_encoder": {"freeze": True, "temporal": "attention", "temporal_heads": 2},
               "dropout": 0.1},
        cache_frozen_features=True, **training)
    return config_from_dict(values).validate()


def test_cached_video_features_train_the_top_of_a_text_and_video_model(tiny_preset, tmp_path):
    """The per-frame InceptionV3 features are cached; the top model still reads the frame mask,
    gives the full model's outputs, and training it trains the full model's video_temporal."""
    from tfmm.data.dataset import ExamplePipeline
    from tfmm.data.manifest import read_manifest_for_config
    from tfmm.models.multimodal_model import build_multimodal_model
    from tfmm.preprocessing.multimodal_preprocessor import MultimodalPreprocessor
    from tfmm.training.feature_cache import cache_frozen_features

    config = video_config(tiny_preset, tmp_path, rows=8)
    pipeline = ExamplePipeline(
        read_manifest_for_config(config.data.train_manifest, config.data),
        MultimodalPreprocessor.from_data_config(config.data, config.model.text_preset),
        "multiclass")
    keras.utils.set_random_seed(0)
    model = build_multimodal_model(config, 2)
    top, cached, _ = cache_frozen_features(model, config, pipeline, log=lambda line: None)
    assert {"video_features", "video_frame_mask", "video_mask", "token_ids"} <= set(top.input)
    assert "video" not in top.input
    arrays, targets = cached.arrays()
    assert arrays["video_features"].shape == (8, FRAMES, 2048)
    np.testing.assert_array_equal(arrays["video_frame_mask"][:4],
                                  [[1, 1, 0], [1, 1, 1], [1, 1, 1], [1, 1, 0]])

    raw, _ = next(iter(pipeline.batches(8)))
    np.testing.assert_allclose(top(arrays, training=False)["logits"],
                               model(raw, training=False)["logits"], atol=1e-4)

    temporal = model.encoders["video"].get_layer("video_temporal")
    frozen = model.encoders["video"].get_layer("video_features")
    before = [weight.numpy() for weight in temporal.weights + frozen.weights]
    def inference_loss():
        return float(tf.reduce_mean(keras.losses.sparse_categorical_crossentropy(
            targets, top(arrays, training=False)["logits"], from_logits=True)))

    optimizer = keras.optimizers.Adam(3e-3)
    start_loss = inference_loss()
    for _ in range(5):  # dropout 0.1 in the head and fusion: training mode
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(keras.losses.sparse_categorical_crossentropy(
                targets, top(arrays, training=True)["logits"], from_logits=True))
        gradients = tape.gradient(loss, top.trainable_variables)
        optimizer.apply_gradients(zip(gradients, top.trainable_variables))
    assert inference_loss() < start_loss
    after = [weight.numpy() for weight in temporal.weights + frozen.weights]
    moved = [not np.allclose(old, new) for old, new in zip(before, after)]
    assert all(moved[:len(temporal.weights)]) and not any(moved[len(temporal.weights):])


@pytest.mark.slow
def test_text_and_video_run_trains_saves_and_transfers_its_video_encoder(tiny_preset, tmp_path):
    """run_training with cached frozen video features and XLA on (~3 minutes on the loaded 2-core
    CPU); the saved model.keras loads after `import tfmm` and its video encoder transfers."""
    from tfmm.models.encoder_transfer import load_encoder_weights
    from tfmm.models.multimodal_model import build_multimodal_model
    from tfmm.training.runner import run_training

    config = video_config(tiny_preset, tmp_path, rows=16, epochs=2)
    assert config.training.jit_compile == "auto"
    keras.utils.set_random_seed(config.training.seed)  # as run_training builds its model
    fresh = build_multimodal_model(config, 2)
    initial = [weight.numpy() for weight in fresh.encoders["video"].weights]
    lines = []
    result = run_training(config, log=lines.append)
    assert any("cached the frozen video encoder features of 16 examples" in line
               for line in lines), lines
    assert all(np.isfinite(result["history"]["loss"]))
    video = result["model"].encoders["video"]
    changed = {weight.path for weight, start in zip(video.weights, initial)
               if not np.allclose(start, weight.numpy())}
    assert changed and all(path.startswith(("video_projection/", "video_temporal_"))
                           for path in changed), changed  # InceptionV3 stayed fixed

    assert load_encoder_weights(fresh, [result["run_dir"]], log=lambda line: None) == [
        "text", "video"]
    inputs = {"video": with_new_padding(clips()), "video_frame_mask": FRAME_MASK}
    np.testing.assert_allclose(fresh.encoders["video"](inputs), video(inputs), atol=1e-5)

    # A model with another temporal fusion (mean) starts from the run's InceptionV3 only.
    mean_config = video_config(tiny_preset, tmp_path, rows=16, epochs=2)
    mean_config.model.video_encoder = dataclasses.replace(mean_config.model.video_encoder,
                                                          temporal="mean")
    mean_model = build_multimodal_model(mean_config, 2)
    lines = []
    assert load_encoder_weights(mean_model, [result["run_dir"]], log=lines.append) == [
        "text", "video"]
    assert "video encoder's InceptionV3 (its temporal part differs: not loaded)" in lines[1]
    features = [model.encoders["video"].get_layer("video_features") for model in
                (mean_model, result["model"])]
    np.testing.assert_allclose(features[0](inputs["video"]), features[1](inputs["video"]),
                               atol=1e-5)
