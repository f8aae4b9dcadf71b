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
    out, info, train, test = built
    validation = _read_rows(info["validation_manifest"])
    train_imgs = set(os.listdir(os.path.join(out, "images", "train")))
    validation_imgs = set(os.listdir(os.path.join(out, "images", "validation")))
    test_imgs = set(os.listdir(os.path.join(out, "images", "test")))
    assert not train_imgs & test_imgs and not validation_imgs & (train_imgs | test_imgs)
    assert len(train_imgs) + len(validation_imgs) + len(test_imgs) == 1797
    assert abs(len(test_imgs) - 0.2 * 1797) < 10
    assert abs(len(validation_imgs) - 0.08 * 0.8 * 1797) < 10
    for split, rows in (("train", train), ("validation", validation), ("test", test)):
        assert all(r["image"].startswith(f"images/{split}/") for r in rows)
    index = lambda r: int(r["audio"].rsplit("_", 1)[1][:-4])  # noqa: E731
    assert all(index(r) <= 4 for r in test)
    assert all(index(r) in (5, 6) for r in validation)
    assert all(index(r) >= 7 for r in train)
    assert len({r["audio"] for r in test}) == 300
    assert len({r["audio"] for r in validation}) == 120 and len(validation) == 240
    # The encoders' own manifests hold the validation scans and recordings out as well.
    for kind in ("image", "audio"):
        seen = {split: {r[kind] for r in _read_rows(info[f"{kind}_digits_{split}_manifest"])}
                for split in ("train", "validation", "test")}
        assert not seen["validation"] & seen["train"] and not seen["validation"] & seen["test"]
        assert seen["validation"] and not seen["train"] & seen["test"]


def test_test_split_is_the_one_results_were_reported_on(built):
    """The manifests the quickstart is scored on, byte for byte (seed 0): adding the
    validation split (or any later change) must not move a test question."""
    import hashlib

    _, info, _, _ = built
    expected = {
        "test_manifest": "12f71e57a80529ccbf5f5350d9ab3c047d33c5f1fc0cc9e50eed29657cc53547",
        "image_digits_test_manifest":
            "cbd8d95394b2971a8bdc6089168e657494b9a15d45121b4505cf8adc539e05a0",
        "audio_digits_test_manifest":
            "f6ce4341046a8b4da2b4e9924fd464952ed9fb2574c642902bc93b32a9412aa9",
    }
    for key, digest in expected.items():
        with open(info[key], "rb") as handle:
            assert hashlib.sha256(handle.read()).hexdigest() == digest, key


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
    # Another seed over the same folder: stopped with one message, the written set kept as is.
    before = {name: open(tmp_path / "a" / name, "rb").read()
              for name in ("train.jsonl", "validation.jsonl", "test.jsonl")}
    with pytest.raises(av_digits.DataSeedError, match=r"test\.jsonl: .* written with "
                       r"data\.seed=0, not data\.seed=1; it is kept"):
        av_digits.build_av_digits(tmp_path / "a", seed=1)
    assert before == {name: open(tmp_path / "a" / name, "rb").read() for name in before}
    other = av_digits.build_av_digits(tmp_path / "b", seed=1)
    assert _read_rows(other["test_manifest"]) != test
    three = av_digits.build_av_digits(tmp_path / "b", seed=1, train_examples_per_recording=3)
    assert three["num_train"] == 3 * len(train) // 4 and three["num_test"] == 600
    rewritten = av_digits.build_av_digits(tmp_path / "b", seed=0, overwrite=True)
    assert _read_rows(rewritten["test_manifest"]) == test


def test_a_run_seed_never_touches_written_data(built, tmp_path):
    """training.seed is the run's; the data set is drawn with data.seed (prepare_data)."""
    from tfmm.config import config_from_dict
    from tfmm.recipes.manifest import prepare_data

    out = tmp_path / "av"
    def config(**sections):
        values = {"data": {"builder": "av_digits", "train_manifest": str(out / "train.jsonl"),
                           "test_manifest": str(out / "test.jsonl")}}
        for section, fields in sections.items():
            values.setdefault(section, {}).update(fields)
        return config_from_dict(values)

    prepare_data(config(training={"seed": 0}), log=lambda line: None)
    written = open(out / "test.jsonl", "rb").read()
    with open(built[1]["test_manifest"], "rb") as handle:
        assert written == handle.read()
    prepare_data(config(training={"seed": 3}), log=lambda line: None)
    assert open(out / "test.jsonl", "rb").read() == written
    with pytest.raises(av_digits.DataSeedError):
        prepare_data(config(data={"seed": 3}), log=lambda line: None)
    assert open(out / "test.jsonl", "rb").read() == written


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
