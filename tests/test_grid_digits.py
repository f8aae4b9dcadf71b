"""Tests for the bundled grounding data set (tfmm.data.grid_digits)."""
import collections
import json
import os

import numpy as np
import pytest

from tfmm.data import av_digits, grid_digits

# One row per recording: 1,440 train, 120 validation, 300 test grids (a few seconds to write).
SMALL = {"train": 1, "validation": 1, "test": 1}


def _read_rows(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f]


def _decode_png(path):
    from PIL import Image

    with Image.open(path) as image:
        return np.asarray(image)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    out = tmp_path_factory.mktemp("grid_digits")
    info = grid_digits.build_grid_digits(out, seed=0, examples_per_recording=SMALL)
    rows = {split: _read_rows(info[f"{split}_manifest"])
            for split in ("train", "validation", "test")}
    return out, info, rows


def test_answers_follow_from_the_grid(built):
    """Every label is recomputed from the row's grid and spoken digit, independently."""
    _, _, rows = built
    for row in rows["train"] + rows["test"]:
        grid, spoken, kind = row["grid_digits"], row["spoken_digit"], row["question_type"]
        shown = [cell for cell, digit in enumerate(grid) if digit == spoken]
        if kind == "digit_at":
            corner = ("top-left", "top-right", "bottom-left", "bottom-right").index(row["corner"])
            expected = str(grid[corner])
            assert row["corner"] in row["text"]
        elif kind == "present":
            expected = "yes" if shown else "no"
        elif kind == "where":
            assert len(shown) <= 1, row  # asked only where the answer is unique
            expected = grid_digits.CORNERS[shown[0]] if shown else "nowhere"
        else:
            expected = str(len(shown))
        assert row["label"] == expected, row
        assert row["label"] in grid_digits.ANSWER_CLASSES
        assert row["text"] in [template.format(corner=row["corner"])
                               for template in grid_digits.QUESTION_TEMPLATES[kind]]


def test_pictures_hold_the_listed_scans(built):
    """A grid PNG is 64x64, each corner the listed scan scaled like tf.image.resize would."""
    import tensorflow as tf
    from sklearn.datasets import load_digits

    out, _, rows = built
    digits = load_digits()
    for row in rows["test"][:3] + rows["train"][:3]:
        picture = _decode_png(os.path.join(out, row["image"]))
        assert picture.shape == (64, 64) and picture.dtype == np.uint8
        for cell, scan in enumerate(row["grid_scans"]):
            assert digits.target[scan] == row["grid_digits"][cell]
            top, left = 32 * (cell // 2), 32 * (cell % 2)
            scan_255 = np.rint(digits.images[scan] * 255 / 16)[..., None].astype(np.float32)
            resized = tf.image.resize(scan_255, (32, 32), method="bilinear").numpy()[..., 0]
            np.testing.assert_allclose(picture[top:top + 32, left:left + 32], resized, atol=0.51)
        assert os.path.isfile(os.path.join(out, row["audio"]))
        assert int(os.path.basename(row["audio"])[0]) == row["spoken_digit"]


def test_answers_balanced_within_each_type(built):
    _, info, rows = built
    test = rows["test"]
    assert info["num_test"] == len(test) == 300 and info["num_train"] == 1440
    types = collections.Counter(row["question_type"] for row in test)
    assert sorted(types.values()) == [75] * 4
    answers = {kind: collections.Counter(row["label"] for row in test
                                         if row["question_type"] == kind) for kind in types}
    assert sorted(answers["present"]) == ["no", "yes"]
    assert set(answers["where"]) == set(grid_digits.CORNERS) | {"nowhere"}
    assert sorted(answers["count"]) == ["0", "1", "2"]
    assert set(answers["digit_at"]) == {str(d) for d in range(10)}
    for counts in answers.values():  # cycled through the answers: counts differ by at most 1
        assert max(counts.values()) - min(counts.values()) <= 1, counts
    corners = collections.Counter(row["corner"] for row in test
                                  if row["question_type"] == "digit_at")
    assert max(corners.values()) - min(corners.values()) <= 1


def test_splits_disjoint_like_the_quickstart(built):
    _, _, rows = built
    recording_index = lambda row: int(row["audio"].rsplit("_", 1)[1][:-4])  # noqa: E731
    assert all(recording_index(row) <= 4 for row in rows["test"])
    assert all(recording_index(row) in (5, 6) for row in rows["validation"])
    assert all(recording_index(row) >= 7 for row in rows["train"])
    scans = {split: {scan for row in split_rows for scan in row["grid_scans"]}
             for split, split_rows in rows.items()}
    assert not scans["train"] & scans["test"] and not scans["validation"] & scans["test"]
    assert not scans["train"] & scans["validation"]
    # The quickstart's scan split: its image encoder never saw a grid's test scan.
    _, labels = av_digits._load_scans()
    assert scans["test"] <= set(av_digits.image_split(labels)["test"].tolist())


def test_deterministic_and_seed_dependent(built):
    out, info, rows = built
    assert grid_digits.draw_rows(0, SMALL) == rows
    other = grid_digits.draw_rows(1, SMALL)
    assert other["test"] != rows["test"]
    assert {row["audio"] for row in other["test"]} == {row["audio"] for row in rows["test"]}
    with open(info["test_manifest"], "rb") as handle:
        written = handle.read()
    with pytest.raises(grid_digits.DataSeedError,
                       match=r"the Grid-digits data set there was written with data\.seed=0"):
        grid_digits.build_grid_digits(out, seed=1, examples_per_recording=SMALL)
    with open(info["test_manifest"], "rb") as handle:
        assert handle.read() == written  # kept as it was


def test_where_question_has_no_answer_for_a_repeated_digit():
    assert grid_digits.answer_for("where", [3, 5, 5, 1], 1) == "bottom-right"
    assert grid_digits.answer_for("where", [3, 5, 5, 1], 7) == "nowhere"
    with pytest.raises(ValueError, match="no unique answer"):
        grid_digits.answer_for("where", [3, 5, 5, 1], 5)
    assert grid_digits.answer_for("count", [3, 5, 5, 1], 5) == "2"


def test_unknown_builder_names_the_registered_ones(tmp_path):
    """`data.builder = "grid_digits"` writes the set; an unknown builder names the known ones."""
    from tfmm.config import ConfigError, config_from_dict
    from tfmm.recipes.manifest import prepare_data

    def config(builder):
        return config_from_dict({"data": {"builder": builder,
                                          "train_manifest": str(tmp_path / "train.jsonl"),
                                          "test_manifest": str(tmp_path / "test.jsonl")}})

    with pytest.raises(ConfigError, match=r"one of \['av_digits', 'grid_digits', 'video_digits'\]"
                                          r"\. Received: 'grids'"):
        prepare_data(config("grids"), log=lambda line: None)
    assert not os.path.exists(tmp_path / "test.jsonl")
