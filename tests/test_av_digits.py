"""Tests for the bundled AV-digits QA quickstart data (tfmm.data.av_digits)."""
import collections
import json
import os
import struct
import zipfile
import zlib

import numpy as np
import pytest

from tfmm.data import av_digits

QTYPES = ("written", "spoken", "sum", "spoken_larger")


def _read_rows(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f]


def _decode_png_gray8(data: bytes) -> np.ndarray:
    """Minimal reader for the 8-bit grayscale, filter-0 PNGs the builder writes."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat = 8, b""
    w = h = None
    while pos < len(data):
        (n,) = struct.unpack(">I", data[pos:pos + 4])
        kind, payload = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + n]
        assert zlib.crc32(kind + payload) == struct.unpack(">I", data[pos + 8 + n:pos + 12 + n])[0]
        if kind == b"IHDR":
            w, h, depth, color = struct.unpack(">IIBB", payload[:10])
            assert (depth, color) == (8, 0)
        elif kind == b"IDAT":
            idat += payload
        pos += 12 + n
    raw = zlib.decompress(idat)
    rows = [raw[r * (w + 1):(r + 1) * (w + 1)] for r in range(h)]
    assert all(row[0] == 0 for row in rows)
    return np.array([list(row[1:]) for row in rows], dtype=np.uint8)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    out = tmp_path_factory.mktemp("av_digits")
    info = av_digits.build_av_digits(out, seed=0)
    return out, info, _read_rows(info["train_manifest"]), _read_rows(info["test_manifest"])


def test_asset_present_small_and_credited():
    zpath = os.fspath(av_digits.fsdd_asset_path())
    assert os.path.isfile(zpath)
    assert os.path.getsize(zpath) < 10_000_000  # 10 MB
    lic = os.path.join(os.path.dirname(zpath), "FSDD_LICENSE.md")
    assert os.path.isfile(lic)
    text = open(lic, encoding="utf-8").read()
    assert "Jakobovski/free-spoken-digit-dataset" in text and "CC BY-SA 4.0" in text
    with zipfile.ZipFile(zpath) as zf:
        names = [n for n in zf.namelist() if n.endswith(".wav")]
        assert all(zf.getinfo(n).compress_type == zipfile.ZIP_LZMA for n in names)
    idx = [int(n.rsplit("_", 1)[1][:-4]) for n in names]
    assert sum(i <= 4 for i in idx) == 300  # every FSDD test recording
    assert sum(i >= 5 for i in idx) > 0


def test_counts_and_manifests_parse(built):
    out, info, train, test = built
    assert info["num_train"] == len(train) and info["num_test"] == len(test)
    assert len(test) == 600  # 300 test recordings x 2
    assert len(train) % 2 == 0 and len(train) > len(test)
    fields = {"id", "text", "image", "audio", "label", "question_type",
              "written_digit", "spoken_digit", "speaker"}
    for row in train + test:
        assert set(row) == fields
        assert row["label"] in av_digits.ANSWER_CLASSES
        assert row["text"] in av_digits.QUESTION_TEMPLATES[row["question_type"]]
    assert len({r["id"] for r in train + test}) == len(train) + len(test)
    assert os.path.isfile(os.path.join(out, "README.md"))
    readme = open(os.path.join(out, "README.md"), encoding="utf-8").read()
    assert "CC BY-SA 4.0" in readme and "Alpaydin" in readme


def test_referenced_files_exist_and_match_metadata(built):
    out, _, train, test = built
    from sklearn.datasets import load_digits

    digits = load_digits()
    for row in train + test:
        assert not os.path.isabs(row["image"]) and not os.path.isabs(row["audio"])
        assert os.path.isfile(os.path.join(out, row["image"])), row["image"]
        assert os.path.isfile(os.path.join(out, row["audio"])), row["audio"]
        scan = int(row["image"].rsplit("_", 1)[1][:-4])
        assert digits.target[scan] == row["written_digit"]
        digit, speaker, _ = os.path.basename(row["audio"])[:-4].split("_")
        assert int(digit) == row["spoken_digit"] and speaker == row["speaker"]
    # An image decodes to the scaled scan, and a WAV is a mono 16-bit 8 kHz RIFF file.
    row = test[0]
    img = _decode_png_gray8(open(os.path.join(out, row["image"]), "rb").read())
    scan = int(row["image"].rsplit("_", 1)[1][:-4])
    np.testing.assert_array_equal(img, np.rint(digits.images[scan] * 255 / 16).astype(np.uint8))
    head = open(os.path.join(out, row["audio"]), "rb").read(44)
    assert head[:4] == b"RIFF" and head[8:12] == b"WAVE"


def test_splits_disjoint(built):
    out, _, train, test = built
    train_imgs = set(os.listdir(os.path.join(out, "images", "train")))
    test_imgs = set(os.listdir(os.path.join(out, "images", "test")))
    assert not train_imgs & test_imgs
    assert len(train_imgs) + len(test_imgs) == 1797
    assert abs(len(test_imgs) - 0.2 * 1797) < 10
    assert all(r["image"].startswith("images/train/") for r in train)
    assert all(r["image"].startswith("images/test/") for r in test)
    index = lambda r: int(r["audio"].rsplit("_", 1)[1][:-4])  # noqa: E731
    assert all(index(r) <= 4 for r in test)
    assert all(index(r) >= 5 for r in train)
    assert len({r["audio"] for r in test}) == 300


def test_labels_correct(built):
    _, _, train, test = built
    for r in train + test:
        w, s, q = r["written_digit"], r["spoken_digit"], r["question_type"]
        expected = {"written": str(w), "spoken": str(s), "sum": str(w + s),
                    "spoken_larger": "yes" if s > w else "no"}[q]
        assert r["label"] == expected, r


def test_balanced(built):
    _, _, train, test = built
    for rows in (train, test):
        counts = collections.Counter(r["question_type"] for r in rows)
        assert set(counts) == set(QTYPES)
        assert max(counts.values()) - min(counts.values()) <= 1
        yes_no = collections.Counter(r["label"] for r in rows if r["question_type"] == "spoken_larger")
        total = yes_no["yes"] + yes_no["no"]
        assert abs(yes_no["yes"] - total / 2) <= 0.05 * total
        # ties exist and answer "no"
        ties = [r for r in rows if r["question_type"] == "spoken_larger"
                and r["written_digit"] == r["spoken_digit"]]
        assert ties and all(r["label"] == "no" for r in ties)
        # every written and spoken digit shows up, and sums cover most of 0..18
        assert {r["written_digit"] for r in rows} == set(range(10))
        assert {r["spoken_digit"] for r in rows} == set(range(10))
        assert len({r["label"] for r in rows if r["question_type"] == "sum"}) >= 15


def test_deterministic_and_seed_dependent(built, tmp_path):
    _, info, train, test = built
    again = av_digits.build_av_digits(tmp_path / "a", seed=0)
    assert _read_rows(again["train_manifest"]) == train
    assert _read_rows(again["test_manifest"]) == test
    with open(again["test_manifest"], "rb") as f1, open(info["test_manifest"], "rb") as f2:
        assert f1.read() == f2.read()
    other = av_digits.build_av_digits(tmp_path / "a", seed=1)  # same dir: manifests rewritten
    assert _read_rows(other["test_manifest"]) != test
    three = av_digits.build_av_digits(tmp_path / "a", seed=1, train_examples_per_recording=3)
    assert three["num_train"] == 3 * len(train) // 2 and three["num_test"] == 600


def test_default_data_dir(monkeypatch):
    monkeypatch.delenv("TFMM_DATA_DIR", raising=False)
    assert av_digits.default_data_dir() == os.path.join("data", "generated", "av_digits")
    monkeypatch.setenv("TFMM_DATA_DIR", "/somewhere/else")
    assert av_digits.default_data_dir() == "/somewhere/else"


def test_answer_for():
    assert av_digits.answer_for("sum", 9, 9) == "18"
    assert av_digits.answer_for("spoken_larger", 3, 3) == "no"
    assert av_digits.answer_for("spoken_larger", 2, 3) == "yes"
    with pytest.raises(ValueError):
        av_digits.answer_for("colour", 1, 2)
