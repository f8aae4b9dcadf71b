"""scripts/fsdd_speaker_questions.py writes balanced, split-disjoint, valid manifests from FSDD
recordings (real ones: copied out of the bundled subset), the same bytes for the same seed."""

import collections
import json
import os
import zipfile

import pytest
from helpers import tiny


FSDD_ZIP = os.path.join(tiny.REPO_ROOT, "tfmm", "data", "assets", "fsdd_subset.zip")
DIGITS_KEPT = ("0", "3", "7")
INDEXES_KEPT = (0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13)  # 5 test, 5 validation, 4 train


def _script():
    return tiny.load_script("fsdd_speaker_questions")


@pytest.fixture(scope="module")
def recordings(tmp_path_factory):
    """Real FSDD recordings of every speaker: digits 0, 3, 7, indexes 0-13 (252 WAV files)."""
    folder = tmp_path_factory.mktemp("fsdd")
    with zipfile.ZipFile(FSDD_ZIP) as archive:
        names = []
        for name in archive.namelist():
            if not name.endswith(".wav"):
                continue
            digit, _, index = os.path.basename(name)[:-len(".wav")].split("_")
            if digit in DIGITS_KEPT and int(index) in INDEXES_KEPT:
                names.append(name)
        archive.extractall(folder, members=names)
    return str(folder / "recordings")


def _read(path):
    with open(path) as handle:
        return [json.loads(line) for line in handle]


def test_manifests_are_balanced_disjoint_and_valid(recordings, tmp_path):
    from tfmm.data.manifest import read_manifest

    script = _script()
    out = str(tmp_path / "questions")
    counts = script.write_manifests(recordings, out, seed=3)
    recordings_per_split = {"test": 6 * 3 * 5, "validation": 6 * 3 * 5, "train": 6 * 3 * 4}
    assert counts == {split: 4 * n for split, n in recordings_per_split.items()}

    audio_by_split = {}
    for split in script.SPLITS:
        rows = _read(os.path.join(out, f"{split}.jsonl"))
        audio_by_split[split] = {row["audio"] for row in rows}
        indexes = {int(os.path.basename(path)[:-len(".wav")].split("_")[2])
                   for path in audio_by_split[split]}
        assert indexes == {"test": set(range(5)), "validation": set(range(5, 10)),
                           "train": set(range(10, 14))}[split]
        # Every recording once with every question type.
        by_type = collections.Counter(row["question_type"] for row in rows)
        assert by_type == {kind: recordings_per_split[split] for kind in script.QUESTION_TYPES}
        for row in rows:
            digit, speaker, _ = os.path.basename(row["audio"])[:-len(".wav")].split("_")
            assert (row["speaker"], row["digit"]) == (speaker, digit)
            if row["question_type"] == "speaker":
                assert row["label"] == speaker
                assert row["question_detail"] == "speaker"
            elif row["question_type"] == "digit":
                assert row["label"] == digit
                assert row["question_detail"] == "digit"
            elif row["question_type"] == "is_speaker":
                named = next(name for name in script.SPEAKERS if name in row["text"])
                assert row["label"] == ("yes" if named == speaker else "no"), row
                assert row["question_detail"] == f"is_speaker:{row['label']}"
            else:
                named = next(name for name in script.SPEAKERS if name in row["text"])
                word = row["text"].rstrip("?").split()[-1]
                right_digit = script.DIGIT_WORDS.index(word) == int(digit)
                said = named == speaker and right_digit
                assert row["label"] == ("yes" if said else "no"), row
                # A "no" gets one part wrong, never both, and says which.
                assert row["question_detail"] == {
                    (True, True): "said_digit:yes", (False, True): "said_digit:no_wrong_speaker",
                    (True, False): "said_digit:no_wrong_digit"}[(named == speaker, right_digit)]
        # A said_digit "no" is as often a wrong speaker as a wrong digit (one apart).
        details = collections.Counter(row["question_detail"] for row in rows)
        assert abs(details["said_digit:no_wrong_speaker"]
                   - details["said_digit:no_wrong_digit"]) <= 1, details
        # Yes/no balanced per speaker (odd counts differ by one).
        for kind in ("is_speaker", "said_digit"):
            for speaker in script.SPEAKERS:
                answers = collections.Counter(row["label"] for row in rows
                                              if row["question_type"] == kind
                                              and row["speaker"] == speaker)
                assert set(answers) == {"yes", "no"}
                assert abs(answers["yes"] - answers["no"]) <= 1, (split, kind, speaker, answers)
        # tfmm's own reader accepts every row with the recipe's labels.
        manifest = read_manifest(os.path.join(out, f"{split}.jsonl"),
                                 modalities=("text", "audio"), labels=script.LABELS)
        assert len(manifest.rows) == counts[split] and not manifest.skipped
        audio = read_manifest(os.path.join(out, f"audio_{split}.jsonl"), modalities=("audio",),
                              labels=script.AUDIO_LABELS)
        assert len(audio.rows) == recordings_per_split[split]
    assert not audio_by_split["train"] & audio_by_split["validation"]
    assert not audio_by_split["train"] & audio_by_split["test"]
    assert not audio_by_split["validation"] & audio_by_split["test"]


def test_same_seed_same_bytes_other_seed_other_questions(recordings, tmp_path):
    script = _script()
    for name, seed in (("a", 0), ("b", 0), ("c", 1)):
        script.write_manifests(recordings, str(tmp_path / name), seed=seed)
    for split in ("train", "validation", "test"):
        first, again, other = ((tmp_path / name / f"{split}.jsonl").read_bytes()
                               for name in "abc")
        assert first == again
        assert first != other


def test_max_train_index_subsamples_only_training(recordings, tmp_path):
    counts = _script().write_manifests(recordings, str(tmp_path / "q"), max_train_index=11)
    assert counts == {"train": 4 * 6 * 3 * 2, "validation": 4 * 6 * 3 * 5, "test": 4 * 6 * 3 * 5}
