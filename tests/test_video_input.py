"""The video modality's input side: a GIF, a frame folder and a frame list give the same tensors
through the manifest pipeline; frame sampling and padding masks; grayscale frames; bad videos
name file:line; the serving signature's video input (GIF bytes)."""

import os

import numpy as np
import pytest
import tensorflow as tf

from helpers.tiny import write_jsonl
from helpers.tiny_media import gif_bytes, png_bytes, write_gif, write_png, write_wav
from tfmm.config import Config, ConfigError, DataConfig
from tfmm.data.dataset import ExamplePipeline
from tfmm.data.manifest import ManifestError, read_manifest
from tfmm.export.input_checks import serving_input_checks
from tfmm.preprocessing.multimodal_preprocessor import MultimodalPreprocessor
from tfmm.preprocessing.video_decoding import decode_video_frames, sample_frame_indices
from tfmm.video_config import check_video_config

SIZE = 75  # InceptionV3's smallest input


def coloured_frames(count, height=20, width=24, seed=0):
    """`count` distinct RGB frames drawn from a 16-colour palette (a GIF holds them losslessly)."""
    random = np.random.default_rng(seed)
    palette = random.integers(0, 256, (16, 3), dtype=np.uint8)
    return np.stack([palette[random.integers(0, 16, (height, width))] for _ in range(count)])


def solid_frames(count):
    """Frame i is a 6x6 grey square of level 10 * (i + 1): its pixels tell its index."""
    return np.stack([np.full((6, 6, 3), 10 * (index + 1), np.uint8) for index in range(count)])


def preprocessor(frames=8, sampling="uniform", optional=(), modalities=("video",)):
    return MultimodalPreprocessor(modalities, video_frames=frames, video_size=SIZE,
                                  video_sampling=sampling, optional_modalities=optional,
                                  audio_length=80)


def pipeline_examples(manifest_path, frames=8, optional=(), modalities=("video",)):
    manifest = read_manifest(manifest_path, modalities=modalities, optional_modalities=optional)
    pipeline = ExamplePipeline(manifest, preprocessor(frames, optional=optional,
                                                      modalities=modalities), "multiclass")
    return [features for features, _ in pipeline.examples.as_numpy_iterator()]


def write_frame_folder(folder, frames):
    """frame_1.png ... frame_N.png (frame_10 sorts before frame_2 as text, not as numbers)."""
    for index, frame in enumerate(frames, start=1):
        write_png(os.path.join(folder, f"frame_{index}.png"), frame)
    return folder


def test_gif_frame_folder_and_frame_list_give_identical_tensors(tmp_path):
    frames = coloured_frames(12)  # 12 frames: numeric order differs from text order
    write_gif(tmp_path / "clip.gif", frames)
    write_frame_folder(tmp_path / "clip_frames", frames)
    frame_list = [f"clip_frames/frame_{index}.png" for index in range(1, 13)]
    manifest = write_jsonl(tmp_path / "m.jsonl", [
        {"video": "clip.gif", "label": "a"}, {"video": "clip_frames", "label": "a"},
        {"video": frame_list, "label": "b"}])
    gif, folder, listed = pipeline_examples(manifest, frames=5)
    assert gif["video"].shape == (5, SIZE, SIZE, 3) and gif["video"].dtype == np.float32
    np.testing.assert_array_equal(gif["video"], folder["video"])
    np.testing.assert_array_equal(gif["video"], listed["video"])
    np.testing.assert_array_equal(gif["video_frame_mask"], np.ones(5))
    assert gif["video_mask"] == folder["video_mask"] == listed["video_mask"] == 1.0
    # The frames are the clip's frames 0, 3, 6, 8, 11, resized as still images are.
    expected = tf.image.resize(frames[[0, 3, 6, 8, 11]].astype(np.float32), (SIZE, SIZE),
                               antialias=True).numpy()
    np.testing.assert_allclose(gif["video"], np.clip(expected, 0, 255), atol=1e-3)
    # Serving takes GIF bytes: the same preprocessor call gives the pipeline's tensors.
    served = preprocessor(5)({"video": tf.constant([gif_bytes(frames), b""])})
    np.testing.assert_array_equal(served["video"][0], gif["video"])
    np.testing.assert_array_equal(served["video_mask"], [1.0, 0.0])


@pytest.mark.parametrize("count, frames, sampling, indices, mask", [
    (12, 4, "uniform", [0, 4, 7, 11], [1, 1, 1, 1]),
    (9, 3, "uniform", [0, 4, 8], [1, 1, 1]),
    (12, 4, "first", [0, 1, 2, 3], [1, 1, 1, 1]),
    (9, 1, "uniform", [4], [1]),
    (3, 5, "uniform", [0, 1, 2, 0, 0], [1, 1, 1, 0, 0]),
    (3, 5, "first", [0, 1, 2, 0, 0], [1, 1, 1, 0, 0]),
])
def test_sampling_picks_the_documented_frames(count, frames, sampling, indices, mask):
    picked, frame_mask = sample_frame_indices(tf.constant(count), frames, sampling)
    np.testing.assert_array_equal(picked, indices)
    np.testing.assert_array_equal(frame_mask, mask)
    # Decoded from a GIF, each real slot shows its frame's level and padding is black.
    video, decoded_mask = decode_video_frames(tf.constant(gif_bytes(solid_frames(count))),
                                              frames, SIZE, sampling)
    levels = video.numpy()[:, SIZE // 2, SIZE // 2, 0]
    np.testing.assert_allclose(levels, 10.0 * (np.array(indices) + 1) * np.array(mask),
                               atol=1e-3)
    np.testing.assert_array_equal(decoded_mask, mask)


def test_short_clip_is_padded_with_mask_zero_never_repeated(tmp_path):
    write_frame_folder(tmp_path / "short", solid_frames(3))
    manifest = write_jsonl(tmp_path / "m.jsonl", [{"video": "short", "label": "a"}])
    example, = pipeline_examples(manifest, frames=6)
    np.testing.assert_array_equal(example["video_frame_mask"], [1, 1, 1, 0, 0, 0])
    assert np.all(example["video"][3:] == 0.0)
    np.testing.assert_allclose(example["video"][:3, 0, 0, 0], [10, 20, 30], atol=1e-3)


def test_grayscale_frames_become_three_equal_channels(tmp_path):
    grey = coloured_frames(4)[..., 0]  # [4, H, W]
    rgb = np.repeat(grey[..., None], 3, axis=-1)
    from_grey_gif, _ = decode_video_frames(tf.constant(gif_bytes(grey)), 4, SIZE, "uniform")
    from_grey_pngs, _ = decode_video_frames(tf.constant([png_bytes(f) for f in grey]), 4, SIZE,
                                            "uniform")
    from_rgb_gif, _ = decode_video_frames(tf.constant(gif_bytes(rgb)), 4, SIZE, "uniform")
    assert from_grey_gif.shape == (4, SIZE, SIZE, 3)
    np.testing.assert_array_equal(from_grey_gif, from_rgb_gif)
    np.testing.assert_array_equal(from_grey_gif, from_grey_pngs)
    np.testing.assert_array_equal(from_grey_gif[..., 0], from_grey_gif[..., 2])


def test_absent_video_is_masked_when_optional(tmp_path):
    write_gif(tmp_path / "clip.gif", coloured_frames(2))
    write_wav(tmp_path / "a.wav")
    manifest = write_jsonl(tmp_path / "m.jsonl", [
        {"audio": "a.wav", "video": "clip.gif", "label": "a"},
        {"audio": "a.wav", "video": "", "label": "a"}, {"audio": "a.wav", "label": "b"}])
    present, empty, absent = pipeline_examples(manifest, frames=2, optional=("video",),
                                               modalities=("audio", "video"))
    assert present["video_mask"] == 1.0 and empty["video_mask"] == absent["video_mask"] == 0.0
    for example in (empty, absent):
        assert not example["video"].any() and not example["video_frame_mask"].any()
    with pytest.raises(ManifestError, match=r"m\.jsonl:2: .*required modality"):
        read_manifest(manifest, modalities=("audio", "video"))


def bad_video_rows(tmp_path):
    write_gif(tmp_path / "good.gif", coloured_frames(2))
    (tmp_path / "broken.gif").write_bytes(b"GIF89a" + b"\x00" * 20)
    (tmp_path / "clip.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 20)
    os.makedirs(tmp_path / "empty_folder")
    (tmp_path / "empty_folder" / "notes.txt").write_text("no frames here")
    write_png(tmp_path / "mixed" / "1.png", coloured_frames(1, 20, 24)[0])
    write_png(tmp_path / "mixed" / "2.png", coloured_frames(1, 21, 24)[0])
    (tmp_path / "bad_frame.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    return [({"video": "good.gif"}, None),
            ({"video": "broken.gif"}, r"not a decodable GIF: broken\.gif"),
            ({"video": "clip.mp4"}, r"not an animated GIF .*README \"Video\".*: clip\.mp4"),
            ({"video": "empty_folder"}, r"folder holds no frame images.*: empty_folder"),
            ({"video": "mixed"}, r"different sizes: mixed/1\.png is 24x20, mixed/2\.png is 24x21"),
            ({"video": "missing.gif"}, r"video file not found: missing\.gif"),
            ({"video": []}, r"empty list"),
            ({"video": ["mixed/1.png", 3]}, r"items of \"video\" must be"),
            ({"video": ["mixed/1.png", "bad_frame.png"]}, r"not a decodable .*: bad_frame\.png")]


def test_bad_videos_name_file_and_line(tmp_path):
    cases = bad_video_rows(tmp_path)
    path = write_jsonl(tmp_path / "m.jsonl", [dict(row, label="a") for row, _ in cases])
    for line, (_, expected) in enumerate(cases, start=1):
        if expected is None:
            continue
        # The bad row comes after `line - 1` good ones.
        single = write_jsonl(tmp_path / f"only{line}.jsonl", [
            dict(cases[0][0], label="a")] * (line - 1) + [dict(cases[line - 1][0], label="a")])
        with pytest.raises(ManifestError) as raised:
            read_manifest(single, modalities=("video",))
        message = str(raised.value)
        assert "\n" not in message
        assert message.startswith(f"{single}:{line}: "), message
        assert raised.match(expected), message
    manifest = read_manifest(path, modalities=("video",), skip_invalid=True)
    assert [row.line for row in manifest.rows] == [1] and len(manifest.skipped) == len(cases) - 1


def test_serving_rejects_video_bytes_that_are_not_a_gif():
    gif = gif_bytes(coloured_frames(2))
    inputs = {"video": tf.constant([gif, png_bytes(coloured_frames(1)[0]), b""])}

    def check(inputs, required=()):
        with tf.control_dependencies(serving_input_checks(inputs, required)):
            return tf.identity(inputs["video"])

    with pytest.raises(tf.errors.InvalidArgumentError, match=r"video\[1\]: not a GIF file"):
        tf.function(check)(inputs)
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"video\[2\]: empty, but this "
                                                             r"model requires video"):
        tf.function(check)({"video": tf.constant([gif, gif, b""])}, ["video"])
    tf.function(check)({"video": tf.constant([gif, b""])})  # a GIF and an optional "" pass


def test_config_checks_video_size_and_sampling():
    config = Config(data=DataConfig(modalities=("video",), video_size=74))
    with pytest.raises(ConfigError, match=r"`data.video_size` must be >= 75.*Received: 74"):
        check_video_config(config)
    config.data.video_size, config.data.video_sampling = 75, "random"
    with pytest.raises(ConfigError, match=r"`data.video_sampling` must be one of "
                                          r"\['uniform', 'first'\]"):
        check_video_config(config)
    config.data.video_sampling, config.data.video_frames = "first", 0
    with pytest.raises(ConfigError, match=r"`data.video_frames` must be > 0"):
        check_video_config(config)


@pytest.mark.slow  # InceptionV3 export: about 100 s on the loaded 2-core CPU
def test_export_from_gif_bytes_equals_the_model_on_frame_folder_features(tmp_path):
    """The exported signature fed GIF bytes gives the probabilities the model gives on the
    features the training pipeline makes from frame folders of the same frames; a short clip
    (padding frames) included; bytes that are not a GIF fail naming the row."""
    from tfmm.config import config_from_dict
    from tfmm.export.serving_model import export_serving_model
    from tfmm.models.multimodal_model import build_multimodal_model

    config = config_from_dict({
        "data": {"train_manifest": "m.jsonl", "modalities": ["video"], "labels": ["a", "b"],
                 "video_frames": 3, "video_size": SIZE},
        "model": {"projection_dim": 16, "fusion_num_heads": 2, "head_hidden_dim": 8,
                  "dropout": 0.1, "video_encoder": {"temporal": "attention",
                                                    "temporal_heads": 2}},
        "training": {"run_dir": str(tmp_path / "run")}})
    clips = [coloured_frames(5, seed=1), coloured_frames(2, seed=2)]  # the second is short
    for index, frames in enumerate(clips):
        write_frame_folder(tmp_path / f"clip{index}", frames)
    manifest = write_jsonl(tmp_path / "m.jsonl", [{"video": f"clip{index}", "label": "a"}
                                                  for index in range(len(clips))])
    model = build_multimodal_model(config, 2)
    video_preprocessor = MultimodalPreprocessor.from_data_config(config.data, "unused")
    pipeline = ExamplePipeline(read_manifest(manifest, modalities=("video",)),
                               video_preprocessor, "multiclass")
    features, _ = next(iter(pipeline.batches(2)))
    np.testing.assert_array_equal(features["video_frame_mask"], [[1, 1, 1], [1, 1, 0]])
    expected = model(features, training=False)["logits"]
    export_dir = str(tmp_path / "export" / "1")
    export_serving_model(model, video_preprocessor, "multiclass", ("a", "b"), export_dir)
    serve = tf.saved_model.load(export_dir).signatures["serving_default"]
    served = serve(video=tf.constant([gif_bytes(frames) for frames in clips]))
    np.testing.assert_allclose(served["probabilities"], tf.nn.softmax(expected), atol=1e-5)
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"video\[1\]: not a GIF file"):
        serve(video=tf.constant([gif_bytes(clips[0]), png_bytes(clips[1][0])]))
