"""Tests for the bundled Video-digits QA data (tfmm.data.video_digits): a temporal task."""
import collections
import json
import os

import numpy as np
import pytest
from PIL import Image, ImageSequence

from tfmm.data import av_digits, video_digits

FRAMES_PER_CLIP = video_digits.DIGITS_PER_CLIP * video_digits.FRAMES_PER_DIGIT


def _read_rows(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f]


def _pil_frames(path) -> np.ndarray:
    """The GIF's frames as Pillow composes them, (T, H, W) uint8."""
    with Image.open(path) as gif:
        return np.stack([np.asarray(frame.convert("L")) for frame in ImageSequence.Iterator(gif)])


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    out = tmp_path_factory.mktemp("video_digits")
    info = video_digits.build_video_digits(out, train_examples_per_recording=1, seed=0)
    rows = {split: _read_rows(info[f"{split}_manifest"])
            for split in ("train", "validation", "test")}
    return out, info, rows


def test_answers_follow_the_order_in_time(built):
    _, _, rows = built
    _, labels = av_digits._load_scans()
    for row in rows["train"] + rows["validation"] + rows["test"]:
        digits, spoken, qtype = row["digits"], row["spoken_digit"], row["question_type"]
        assert len(set(digits)) == video_digits.DIGITS_PER_CLIP  # distinct: order is unambiguous
        assert [int(labels[i]) for i in row["scans"]] == digits  # the clip shows those scans
        assert row["text"] in video_digits.QUESTION_TEMPLATES[qtype]
        assert row["label"] in video_digits.ANSWER_CLASSES
        assert int(row["audio"].split("/")[-1].split("_")[0]) == spoken
        expected = {"first": str(digits[0]), "last": str(digits[-1])}
        if qtype in ("after_spoken", "spoken_before_last"):
            position = digits.index(spoken)  # the spoken digit is in the clip
            expected["after_spoken"] = str(digits[position + 1]) if position < 2 else None
            expected["spoken_before_last"] = "yes" if position < 2 else "no"
        assert row["label"] == expected[qtype], row


def test_question_types_and_answers_are_balanced(built):
    _, info, rows = built
    test = rows["test"]
    assert info["num_test"] == len(test) == 600  # 300 FSDD test recordings x 2
    assert collections.Counter(r["question_type"] for r in test) == {
        qtype: 150 for qtype in video_digits.QUESTION_TYPES}
    for qtype in ("first", "last"):
        assert collections.Counter(r["label"] for r in test if r["question_type"] == qtype) == {
            str(d): 15 for d in range(10)}
    assert collections.Counter(r["label"] for r in test
                               if r["question_type"] == "spoken_before_last") == {"yes": 75, "no": 75}
    after = collections.Counter(r["label"] for r in test if r["question_type"] == "after_spoken")
    assert set(after) == {str(d) for d in range(10)} and max(after.values()) < 0.2 * 150
    # where the spoken digit sits says nothing about the first/last answer
    positions = collections.Counter(r["digits"].index(r["spoken_digit"]) for r in test
                                    if r["question_type"] == "after_spoken")
    assert set(positions) == {0, 1} and min(positions.values()) > 50


def test_splits_are_disjoint(built):
    _, _, rows = built
    scans = {split: {i for r in split_rows for i in r["scans"]} for split, split_rows in rows.items()}
    audio = {split: {r["audio"] for r in split_rows} for split, split_rows in rows.items()}
    for a, b in (("train", "test"), ("train", "validation"), ("validation", "test")):
        assert not scans[a] & scans[b] and not audio[a] & audio[b]
    assert all(int(path[:-4].rsplit("_", 1)[1]) <= 4 for path in audio["test"])  # FSDD's test split
    assert all(int(path[:-4].rsplit("_", 1)[1]) in (5, 6) for path in audio["validation"])


def test_rows_and_pixels_are_deterministic(built):
    out, _, rows = built
    images, labels = av_digits._load_scans()
    recordings = [r for r in av_digits._read_fsdd_zip()[1] if r["split"] == "test"]
    test_scans = av_digits.image_split(labels)["test"]

    def test_rows(seed):
        return video_digits._make_rows("test", recordings, test_scans, labels, 2, seed)[0]

    assert test_rows(0) == rows["test"]
    assert test_rows(1) != rows["test"]  # data.seed draws other rows
    row = rows["test"][7]
    frames = video_digits.render_clip(images[row["scans"]], np.random.default_rng([0, 1, 0, 7]))
    with open(os.path.join(out, row["video"]), "rb") as f:
        assert f.read() == video_digits._gif_bytes(frames)


def test_gifs_decode_to_the_rendered_frames(built):
    import tensorflow as tf

    out, _, rows = built
    images, _ = av_digits._load_scans()
    row = rows["train"][3]
    path = os.path.join(out, row["video"])
    decoded = tf.io.decode_gif(tf.io.read_file(path)).numpy()  # (T, H, W, 3), the graph's decoder
    size = video_digits.VIDEO_SIZE
    assert decoded.shape == (FRAMES_PER_CLIP, size, size, 3)
    assert (decoded == decoded[..., :1]).all()  # gray
    expected = np.stack(video_digits.render_clip(images[row["scans"]],
                                                 np.random.default_rng([0, 0, 0, 3])))
    np.testing.assert_array_equal(decoded[..., 0], expected)  # lossless, every frame kept
    np.testing.assert_array_equal(_pil_frames(path), expected)
    # each digit's frames show the same scan, moved and faded; different digits differ
    for k in range(0, FRAMES_PER_CLIP, video_digits.FRAMES_PER_DIGIT):
        first, second = expected[k].astype(int), expected[k + 1].astype(int)
        assert first.max() > 0 and second.max() > 0 and not np.array_equal(first, second)
        assert abs(first.sum() - second.sum()) > 0.1 * max(first.sum(), second.sum())  # faded


def test_frame_manifests_hold_single_scans(built):
    out, info, rows = built
    for split in ("train", "validation", "test"):
        frame_rows = _read_rows(info[f"frames_{split}_manifest"])
        clip_scans = {i for r in rows[split] for i in r["scans"]}
        frame_scans = {int(r["id"].rsplit("-", 1)[1]) for r in frame_rows}
        assert clip_scans <= frame_scans
    _, labels = av_digits._load_scans()
    row = _read_rows(info["frames_test_manifest"])[0]
    assert row["label"] == str(int(labels[int(row["id"].rsplit("-", 1)[1])]))
    assert _pil_frames(os.path.join(out, row["video"])).shape == (
        video_digits.FRAMES_PER_DIGIT, video_digits.VIDEO_SIZE, video_digits.VIDEO_SIZE)
    readme = open(os.path.join(out, "README.md"), encoding="utf-8").read()
    assert "CC BY-SA 4.0" in readme and "Alpaydin" in readme


def test_a_folder_written_with_another_seed_is_kept(built):
    out, _, _ = built
    before = open(os.path.join(out, "test.jsonl"), "rb").read()
    with pytest.raises(av_digits.DataSeedError, match="Video-digits data set there was written "
                                                       "with data.seed=0, not data.seed=1"):
        video_digits.build_video_digits(out, train_examples_per_recording=1, seed=1)
    assert open(os.path.join(out, "test.jsonl"), "rb").read() == before


def test_recipe_samples_one_frame_of_each_digit_and_ablates_only_the_temporal_fusion():
    from helpers import tiny
    from tfmm.config import load_stages
    from tfmm.preprocessing.video_decoding import sample_frame_indices

    stages = dict(load_stages(os.path.join(tiny.REPO_ROOT, "configs", "video_digits.py")))
    assert list(stages) == ["frame_encoder", "audio_encoder", "fused", "fused_mean"]
    frames = stages["frame_encoder"]
    assert frames.data.builder == "video_digits" and frames.data.video_frames == 1
    assert frames.data.train_manifest.endswith("frames_train.jsonl")
    fused, mean = stages["fused"], stages["fused_mean"]
    assert fused.model.video_encoder.temporal == "attention"
    assert mean.model.video_encoder.temporal == "mean"
    assert fused.model.video_encoder.freeze and fused.training.cache_frozen_features
    assert fused.model.init_encoders_from == (frames.training.run_dir,
                                              stages["audio_encoder"].training.run_dir)
    assert fused.data == mean.data and fused.data.modalities == ("text", "video", "audio")
    # the sampled frames show each digit once, in time order
    indices, mask = sample_frame_indices(FRAMES_PER_CLIP, fused.data.video_frames,
                                         fused.data.video_sampling)
    digit_of_frame = [int(i) // video_digits.FRAMES_PER_DIGIT for i in indices.numpy()]
    assert digit_of_frame == list(range(video_digits.DIGITS_PER_CLIP)) and mask.numpy().all()
    # the frame stage's one frame of a single-scan clip is a real frame
    _, mask = sample_frame_indices(video_digits.FRAMES_PER_DIGIT, 1, frames.data.video_sampling)
    assert mask.numpy().tolist() == [1.0]


def test_rows_drawn_otherwise_get_their_own_clips(built):
    """Another row count rewrites the manifests; no row may point at a GIF of another row's scans."""
    out, _, rows = built
    info = video_digits.build_video_digits(out, train_examples_per_recording=2, seed=0)
    train = _read_rows(info["train_manifest"])
    assert len(train) == 2 * len(rows["train"]) and _read_rows(info["test_manifest"]) == rows["test"]
    images, _ = av_digits._load_scans()
    changed = [k for k, row in enumerate(train[:len(rows["train"])])
               if row["scans"] != rows["train"][k]["scans"]]
    assert changed  # the same row numbers show other scans now
    for k in changed[:5]:
        expected = video_digits.render_clip(images[train[k]["scans"]],
                                            np.random.default_rng([0, 0, 0, k]))
        np.testing.assert_array_equal(_pil_frames(os.path.join(out, train[k]["video"])),
                                      np.stack(expected))
