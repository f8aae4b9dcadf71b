"""AV-digits QA: tfmm's offline quickstart data set (text + image + audio, all real data).

Each example pairs

- an **image**: a real 8x8 scan of a handwritten digit from scikit-learn's ``load_digits()``
  (the UCI ML hand-written digits data, 1,797 scans), written as a grayscale PNG;
- an **audio** clip: a real recording of a spoken digit from the Free Spoken Digit Dataset
  (FSDD, CC BY-SA 4.0), taken from the subset packaged in ``tfmm/data/assets/fsdd_subset.zip``;
- a **question** (text) about them, from :data:`QUESTION_TEMPLATES`;

and the answer, one of the class names in :data:`ANSWER_CLASSES` ("0".."18", "yes", "no").

Question types:

- ``written``: the written digit (answer "0".."9");
- ``spoken``: the spoken digit (answer "0".."9");
- ``sum``: written + spoken (answer "0".."18");
- ``spoken_larger``: is the spoken digit larger than the written one? ("yes"/"no"; equal -> "no").

Splits: audio follows FSDD's convention (index 0-4 of each speaker and digit is test, the rest
train); the image scans are split 80/20, stratified by digit, with a fixed seed, so train and
test scans are disjoint and the same whatever ``seed`` the rows are drawn with. The validation
split is held out of the training side only (FSDD index 5-6, and 8% of the training scans, fixed
seed), so the test split is the same as before the validation split existed.

:func:`build_av_digits` writes the files and two JSON-lines manifests; see its docstring.
The audio and the manifests derived from FSDD are under CC BY-SA 4.0 (see the README it writes
and ``tfmm/data/assets/FSDD_LICENSE.md``).
"""
from __future__ import annotations

import importlib.resources
import io
import json
import os
import re
import struct
import zipfile
import zlib

import numpy as np

from tfmm.atomic_write import jsonl_bytes, write_bytes
from tfmm.data.av_digits_readme import readme_text
from tfmm.errors import UserError

__all__ = [
    "ANSWER_CLASSES",
    "QUESTION_TEMPLATES",
    "QUESTION_TYPES",
    "build_av_digits",
    "default_data_dir",
    "fsdd_asset_path",
    "answer_for",
]

QUESTION_TEMPLATES: dict[str, list[str]] = {
    "written": [
        "which digit is written?",
        "what number is drawn in the picture?",
        "what digit does the image show?",
        "read the handwritten digit.",
    ],
    "spoken": [
        "which digit is spoken?",
        "what number do you hear?",
        "what digit does the speaker say?",
        "listen: which number is said?",
    ],
    "sum": [
        "what is the written digit plus the spoken digit?",
        "add the spoken digit to the written digit.",
        "what do the digit in the picture and the digit you hear add up to?",
        "sum of the handwritten and the spoken number?",
    ],
    "spoken_larger": [
        "is the spoken digit larger than the written one?",
        "is the number you hear bigger than the number in the picture?",
        "does the speaker say a greater digit than the one drawn?",
        "spoken digit greater than the handwritten digit?",
    ],
}
QUESTION_TYPES: tuple[str, ...] = tuple(QUESTION_TEMPLATES)
# Every possible answer, in a fixed order (use as the label vocabulary).
ANSWER_CLASSES: tuple[str, ...] = tuple(str(i) for i in range(19)) + ("yes", "no")

ENV_DATA_DIR = "TFMM_DATA_DIR"
DEFAULT_DATA_DIR = os.path.join("data", "generated", "av_digits")
FSDD_TEST_MAX_INDEX = 4  # FSDD: recordings with index 0-4 are the test split
IMAGE_TEST_FRACTION = 0.2
IMAGE_SPLIT_SEED = 20240601  # fixed: the image split does not depend on `seed`
VALIDATION_RECORDING_INDICES = (5, 6)  # FSDD training recordings held out for validation
IMAGE_VALIDATION_FRACTION = 0.08  # share of the training scans held out for validation
IMAGE_VALIDATION_SEED = 20261201
BUILD_INFO_FILE = "build_info.json"
_FSDD_NAME = re.compile(r"(?:.*/)?(\d)_([a-z]+)_(\d+)\.wav$")
_SPLITS = ("train", "test", "validation")  # the position seeds each split's rows


class DataSeedError(UserError):
    """A written data set drawn with another seed than the one asked for."""


def default_data_dir() -> str:
    """``$TFMM_DATA_DIR`` if set, else ``data/generated/av_digits`` (relative to the cwd)."""
    return os.environ.get(ENV_DATA_DIR) or DEFAULT_DATA_DIR


def fsdd_asset_path():
    """The packaged FSDD subset zip, as an ``importlib.resources`` Traversable."""
    return importlib.resources.files(__package__ or "tfmm.data").joinpath("assets", "fsdd_subset.zip")


def answer_for(question_type: str, written_digit: int, spoken_digit: int) -> str:
    """The answer string of a question type for a (written, spoken) digit pair."""
    if question_type == "written":
        return str(written_digit)
    if question_type == "spoken":
        return str(spoken_digit)
    if question_type == "sum":
        return str(written_digit + spoken_digit)
    if question_type == "spoken_larger":
        return "yes" if spoken_digit > written_digit else "no"
    raise ValueError(f"unknown question type {question_type!r}; expected one of {QUESTION_TYPES}")


# ----------------------------------------------------------------------------------------------
# Sources


def _read_fsdd_zip() -> tuple[zipfile.ZipFile, list[dict]]:
    """Opens the packaged zip; returns it with one record per recording, sorted by file name."""
    data = fsdd_asset_path().read_bytes()
    zf = zipfile.ZipFile(io.BytesIO(data))
    recs = []
    for member in zf.namelist():
        m = _FSDD_NAME.match(member)
        if not m:
            continue
        digit, speaker, index = int(m.group(1)), m.group(2), int(m.group(3))
        recs.append({
            "member": member,
            "file": os.path.basename(member),
            "digit": digit,
            "speaker": speaker,
            "index": index,
            "split": ("test" if index <= FSDD_TEST_MAX_INDEX else
                      "validation" if index in VALIDATION_RECORDING_INDICES else "train"),
        })
    recs.sort(key=lambda r: r["file"])
    if not recs:
        raise RuntimeError("the packaged FSDD zip holds no recordings")
    return zf, recs


def _load_scans() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    d = load_digits()
    images = np.clip(np.rint(d.images * (255.0 / 16.0)), 0, 255).astype(np.uint8)  # (1797, 8, 8)
    return images, d.target.astype(np.int64)


def image_split(labels: np.ndarray) -> dict[str, np.ndarray]:
    """Stratified split of scan indices with fixed seeds: {"train", "validation", "test": idx}.

    80/20 train/test first (unchanged since before the validation split existed), then 8% of
    the training scans of each digit become validation.
    """
    rng = np.random.default_rng(IMAGE_SPLIT_SEED)
    validation_rng = np.random.default_rng(IMAGE_VALIDATION_SEED)
    train, validation, test = [], [], []
    for digit in range(10):
        idx = np.flatnonzero(labels == digit)
        idx = idx[rng.permutation(len(idx))]
        n_test = int(round(len(idx) * IMAGE_TEST_FRACTION))
        test.extend(idx[:n_test].tolist())
        rest = np.sort(idx[n_test:])
        rest = rest[validation_rng.permutation(len(rest))]
        n_validation = int(round(len(rest) * IMAGE_VALIDATION_FRACTION))
        validation.extend(rest[:n_validation].tolist())
        train.extend(rest[n_validation:].tolist())
    return {"train": np.array(sorted(train)), "validation": np.array(sorted(validation)),
            "test": np.array(sorted(test))}


def _png_gray8(img: np.ndarray) -> bytes:
    """Encodes a 2-D uint8 array as an 8-bit grayscale PNG.

    Written with the standard library (zlib) rather than ``tf.io.encode_png`` so building the
    data set does not need to import TensorFlow (which alone takes longer than the whole build)
    and the bytes are the same on every machine. TensorFlow, PIL, etc. decode it as usual.
    """
    h, w = img.shape

    def chunk(kind: bytes, payload: bytes) -> bytes:
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))

    raw = b"".join(b"\x00" + img[r].tobytes() for r in range(h))  # filter type 0 per row
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(raw, 9))
        + chunk(b"IEND", b"")
    )


# ----------------------------------------------------------------------------------------------
# Rows


def _balanced_sequence(values, n: int, rng: np.random.Generator) -> list:
    """n items, cycling through shuffled permutations of `values` (counts differ by at most 1,
    and any aligned run of len(values) consecutive items holds each value once)."""
    out: list = []
    while len(out) < n:
        out.extend(values[i] for i in rng.permutation(len(values)))
    return out[:n]


def _make_rows(split: str, recs: list[dict], scan_idx: np.ndarray, scan_labels: np.ndarray,
               per_recording: int, seed: int) -> list[dict]:
    rng = np.random.default_rng([seed, _SPLITS.index(split)])
    by_digit = {d: scan_idx[scan_labels[scan_idx] == d] for d in range(10)}

    # Slots: each recording `per_recording` times, in shuffled recording order; question types
    # come in blocks of 4 so they are balanced and (per_recording <= 4) a recording's rows differ.
    order = rng.permutation(len(recs))
    slots = [recs[i] for i in order for _ in range(per_recording)]
    qtypes = _balanced_sequence(list(QUESTION_TYPES), len(slots), rng)

    # spoken_larger: half the rows answer "yes". A spoken 0 can never be larger, so those are
    # "no"; the "yes" answers go to a random choice of the other rows.
    larger = [k for k, q in enumerate(qtypes) if q == "spoken_larger"]
    free = [k for k in larger if slots[k]["digit"] > 0]
    n_yes = min(len(larger) // 2, len(free))
    want_yes = {free[i] for i in rng.choice(len(free), size=n_yes, replace=False)} if free else set()

    rows = []
    for k, (rec, qtype) in enumerate(zip(slots, qtypes)):
        spoken = rec["digit"]
        if qtype == "spoken_larger":
            # Pick the written digit for the wanted answer: yes -> written < spoken;
            # no -> written >= spoken (ties answer "no"); then a random scan of that digit.
            choices = np.arange(0, spoken) if k in want_yes else np.arange(spoken, 10)
            written = int(rng.choice(choices))
            scan = int(rng.choice(by_digit[written]))
        else:
            scan = int(rng.choice(scan_idx))
            written = int(scan_labels[scan])
        templates = QUESTION_TEMPLATES[qtype]
        rows.append({
            "id": f"{split}-{k:05d}",
            "text": templates[int(rng.integers(len(templates)))],
            "image": f"images/{split}/digit_{scan}.png",
            "audio": f"audio/{rec['file']}",
            "label": answer_for(qtype, written, spoken),
            "question_type": qtype,
            "written_digit": written,
            "spoken_digit": spoken,
            "speaker": rec["speaker"],
        })
    return rows


# ----------------------------------------------------------------------------------------------
# Writing


def _write_if_changed(path: str, data: bytes) -> None:
    current = None
    if os.path.exists(path):
        with open(path, "rb") as f:
            current = f.read()
    if current != data:
        write_bytes(path, data)


def _check_same_seed(out_dir: str, test_manifest: bytes, seed: int,
                     name: str = "AV-digits") -> None:
    """Raises DataSeedError when out_dir's test.jsonl was drawn with another seed than `seed`."""
    path = os.path.join(out_dir, "test.jsonl")
    if not os.path.exists(path):
        return
    with open(path, "rb") as f:
        if f.read() == test_manifest:
            return
    written = "another seed"
    try:
        with open(os.path.join(out_dir, BUILD_INFO_FILE)) as f:
            written = f"data.seed={json.load(f)['seed']}"
    except (OSError, ValueError, KeyError):
        pass
    raise DataSeedError(
        f"{path}: the {name} data set there was written with {written}, not data.seed={seed}; "
        f"it is kept as it is. Set data.seed to the seed it was written with, or write the other "
        f"data set to another folder (data.train_manifest/validation_manifest/test_manifest)")


def write_recordings(zf: zipfile.ZipFile, recs: list[dict], out_dir: str,
                     overwrite: bool) -> None:
    """Writes the FSDD recordings `recs` from the packaged zip to out_dir/audio (missing ones
    only unless `overwrite`), then closes the zip."""
    audio_dir = os.path.join(out_dir, "audio")
    os.makedirs(audio_dir, exist_ok=True)
    with zf:
        for rec in recs:
            path = os.path.join(audio_dir, rec["file"])
            if overwrite or not os.path.exists(path):
                write_bytes(path, zf.read(rec["member"]))


def build_av_digits(out_dir, *, train_examples_per_recording: int = 4, seed: int = 0,
                    overwrite: bool = False) -> dict:
    """Writes AV-digits QA under ``out_dir`` and returns where its manifests are.

    Files (images and audio written only if missing, or always with ``overwrite=True``):

    - ``images/{train,validation,test}/digit_{i}.png``: scikit-learn digits scan ``i`` (0..16 to
      0..255), 8x8 grayscale PNG;
    - ``audio/{digit}_{speaker}_{index}.wav``: the FSDD recordings, unchanged, from the packaged zip;
    - ``train.jsonl``, ``validation.jsonl``, ``test.jsonl``: one JSON object per line with keys
      ``id``, ``text`` (the question), ``image`` and ``audio`` (paths relative to ``out_dir``),
      ``label`` (answer),
      ``question_type``, ``written_digit``, ``spoken_digit``, ``speaker``;
    - ``README.md``: what the data is, and the credits/licences.

    Every recording of a split gives ``train_examples_per_recording`` rows (validation and test 2),
    each with a random scan of the same split and a question; question types are balanced, and the
    "spoken_larger" rows are about half "yes". Rows depend only on ``seed`` and the row count.
    The manifests and README (cheap, and dependent on the arguments) are rewritten whenever their
    content differs from what is on disk; images and audio are the same for every ``seed``.
    A folder whose ``test.jsonl`` was drawn with another ``seed`` is kept (DataSeedError), unless
    ``overwrite=True``; ``build_info.json`` records the seed.

    Returns ``{split}_manifest`` and ``num_{split}`` for split in train, validation, test, plus
    the single-modality digit manifests ``{image,audio}_digits_{split}_manifest``
    (``image_digits_train.jsonl``: one row per scan, label = the written digit; likewise audio).
    """
    if train_examples_per_recording < 1:
        raise ValueError("train_examples_per_recording must be >= 1")
    out_dir = os.fspath(out_dir)
    zf, recs = _read_fsdd_zip()
    images, labels = _load_scans()
    split_idx = image_split(labels)

    # Images
    for split in _SPLITS:
        d = os.path.join(out_dir, "images", split)
        os.makedirs(d, exist_ok=True)
        for i in split_idx[split]:
            path = os.path.join(d, f"digit_{int(i)}.png")
            if overwrite or not os.path.exists(path):
                write_bytes(path, _png_gray8(images[i]))

    write_recordings(zf, recs, out_dir, overwrite)

    # Manifests. The test rows are checked first: a data set drawn with another seed stays.
    rows_by_split = {split: _make_rows(split, [r for r in recs if r["split"] == split],
                                       split_idx[split], labels,
                                       train_examples_per_recording if split == "train" else 2,
                                       seed)
                     for split in _SPLITS}
    if not overwrite:
        _check_same_seed(out_dir, jsonl_bytes(rows_by_split["test"]), seed)
    result = {}
    for split in _SPLITS:
        rows = rows_by_split[split]
        path = os.path.join(out_dir, f"{split}.jsonl")
        _write_if_changed(path, jsonl_bytes(rows))
        result[f"{split}_manifest"] = path
        result[f"num_{split}"] = len(rows)
        # Single-modality digit manifests: each encoder's own task (and its accuracy ceiling).
        image_rows = [{"id": f"{split}-image-{int(i)}", "image": f"images/{split}/digit_{int(i)}.png",
                       "label": str(int(labels[i]))} for i in split_idx[split]]
        audio_rows = [{"id": f"{split}-audio-{rec['file'][:-4]}", "audio": f"audio/{rec['file']}",
                       "label": str(rec["digit"]), "speaker": rec["speaker"]}
                      for rec in recs if rec["split"] == split]
        for kind, kind_rows in (("image", image_rows), ("audio", audio_rows)):
            kind_path = os.path.join(out_dir, f"{kind}_digits_{split}.jsonl")
            _write_if_changed(kind_path, jsonl_bytes(kind_rows))
            result[f"{kind}_digits_{split}_manifest"] = kind_path
    _write_if_changed(os.path.join(out_dir, BUILD_INFO_FILE), json.dumps(
        {"seed": seed, "train_examples_per_recording": train_examples_per_recording}).encode())

    counts = {s: sum(1 for r in recs if r["split"] == s) for s in _SPLITS}
    readme = readme_text(counts, {s: len(split_idx[s]) for s in _SPLITS}, result)
    _write_if_changed(os.path.join(out_dir, "README.md"), readme.encode("utf-8"))
    return result
