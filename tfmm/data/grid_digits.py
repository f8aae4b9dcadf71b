"""Grid-digits QA: a grounding task on real scans and recordings (text + image + audio).

Each example shows

- an **image**: a 2x2 grid of real handwritten scans (scikit-learn's ``load_digits()``), each
  8x8 scan scaled to 32x32 (bilinear, as ``tf.image.resize`` scales the quickstart's scans), so
  the 64x64 grid gives ResNet50's last feature map one cell per scan;
- an **audio** clip: a real spoken digit from the Free Spoken Digit Dataset (FSDD, CC BY-SA 4.0);
- a **question** from :data:`QUESTION_TEMPLATES`;

and the answer, one of :data:`ANSWER_CLASSES`. Question types (``question_type``):

- ``digit_at``: "which digit is in the top-left corner?" (any corner; answer "0".."9");
- ``present``: "is the spoken digit in the picture?" ("yes"/"no");
- ``where``: "where is the spoken digit?" (a corner, or "nowhere"; asked only of grids that show
  the spoken digit at most once, so the answer is unique);
- ``count``: "how many times does the spoken digit appear?" ("0", "1" or "2").

``digit_at`` and ``where`` need a position: a model that pools the image into one vector before
fusion has lost it. The answers are balanced within each type: ``digit_at`` cycles through the
corners and the ten digits, ``present`` is half "yes" (the spoken digit shown once or twice),
``where`` cycles through the four corners and "nowhere", ``count`` through 0, 1 and 2. Cells that
do not show the spoken digit show other digits, drawn at random.

Splits, sources and files are the quickstart's (tfmm.data.av_digits): FSDD's test recordings
(index 0-4) are the test split, 5-6 validation; the scans are split with the same fixed seeds,
so a grid only holds scans of its own split and the quickstart's image encoder never saw a test
scan. :func:`build_grid_digits` writes the files and manifests; see its docstring.
"""
from __future__ import annotations

import json
import os

import numpy as np

from tfmm.atomic_write import jsonl_bytes
from tfmm.data.av_digits import (DataSeedError, _balanced_sequence, _check_same_seed,
                                 _load_scans, _png_gray8, _read_fsdd_zip,
                                 _write_if_changed, image_split, write_recordings)
from tfmm.data.av_digits_readme import readme_text as av_digits_readme_text

__all__ = ["ANSWER_CLASSES", "CORNERS", "QUESTION_TEMPLATES", "QUESTION_TYPES", "DataSeedError",
           "answer_for", "build_grid_digits", "draw_rows", "scale_scan"]

CORNERS: tuple[str, ...] = ("top-left", "top-right", "bottom-left", "bottom-right")  # row-major
NOWHERE = "nowhere"
QUESTION_TEMPLATES: dict[str, list[str]] = {
    "digit_at": [
        "which digit is in the {corner} corner?",
        "what number is written in the {corner} corner?",
        "read the handwritten digit in the {corner} corner.",
        "what digit does the {corner} corner show?",
    ],
    "present": [
        "is the spoken digit in the picture?",
        "does the picture show the number you hear?",
        "can you see the digit the speaker says?",
        "is the number you hear written anywhere?",
    ],
    "where": [
        "where is the spoken digit?",
        "in which corner is the number you hear?",
        "where is the digit the speaker says written?",
        "which corner shows the spoken digit?",
    ],
    "count": [
        "how many times does the spoken digit appear?",
        "how often is the number you hear written?",
        "count the spoken digit in the picture.",
        "how many corners show the digit the speaker says?",
    ],
}
QUESTION_TYPES: tuple[str, ...] = tuple(QUESTION_TEMPLATES)
ANSWER_CLASSES: tuple[str, ...] = tuple(str(i) for i in range(10)) + ("yes", "no") + CORNERS + (
    NOWHERE,)
SCAN_SIZE = 32  # pixels per grid cell: ResNet50's stride, so one feature-map cell per scan
GRID_SIZE = 2  # cells per side
DEFAULT_DATA_DIR = os.path.join("data", "generated", "grid_digits")
EXAMPLES_PER_RECORDING = {"train": 4, "validation": 2, "test": 4}
BUILD_INFO_FILE = "build_info.json"
_SPLITS = ("train", "test", "validation")  # the position seeds each split's rows


def answer_for(question_type: str, grid: list, spoken_digit: int, corner: str = "") -> str:
    """The answer of a question about a grid (its digits row-major) and a spoken digit.

    Raises:
        ValueError: an unknown question type, a ``digit_at`` question without a corner, or a
            ``where`` question whose grid shows the spoken digit more than once (no unique answer).
    """
    shown = [index for index, digit in enumerate(grid) if digit == spoken_digit]
    if question_type == "digit_at":
        if corner not in CORNERS:
            raise ValueError(f"a digit_at question needs a corner in {CORNERS}; got {corner!r}")
        return str(grid[CORNERS.index(corner)])
    if question_type == "present":
        return "yes" if shown else "no"
    if question_type == "where":
        if len(shown) > 1:
            raise ValueError(f"'where' has no unique answer: {spoken_digit} is shown "
                             f"{len(shown)} times in {grid}")
        return CORNERS[shown[0]] if shown else NOWHERE
    if question_type == "count":
        return str(len(shown))
    raise ValueError(f"unknown question type {question_type!r}; expected one of {QUESTION_TYPES}")


def scale_scan(scan: np.ndarray, size: int = SCAN_SIZE) -> np.ndarray:
    """A square uint8 scan scaled up to size x size, bilinear with half-pixel centres.

    The interpolation ``tf.image.resize(..., "bilinear")`` does (edges clamped), so a grid cell
    looks like a single scan the quickstart's image encoder was trained on at image_size 32.
    """
    source = scan.shape[0]
    coordinates = np.clip((np.arange(size) + 0.5) * source / size - 0.5, 0, source - 1)
    low = np.floor(coordinates).astype(int)
    high = np.minimum(low + 1, source - 1)
    weight_high = coordinates - low
    interpolation = np.zeros((size, source))
    interpolation[np.arange(size), low] += 1 - weight_high
    interpolation[np.arange(size), high] += weight_high
    scaled = interpolation @ scan.astype(np.float64) @ interpolation.T
    return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)


def _grid_image(scaled_scans: np.ndarray, scans: list) -> np.ndarray:
    """The [64, 64] uint8 picture of four scans, row-major."""
    rows = [np.concatenate([scaled_scans[s] for s in scans[r * GRID_SIZE:(r + 1) * GRID_SIZE]],
                           axis=1) for r in range(GRID_SIZE)]
    return np.concatenate(rows, axis=0)


def _grid_for(question_type: str, target, spoken: int, rng: np.random.Generator):
    """(grid digits row-major, asked corner or "") whose answer to `question_type` is `target`."""
    cells = GRID_SIZE * GRID_SIZE
    corner = ""
    if question_type == "count":
        shown = rng.choice(cells, size=int(target), replace=False).tolist()
    elif question_type == "present":
        shown = rng.choice(cells, size=int(rng.integers(1, 3)) if target == "yes" else 0,
                           replace=False).tolist()
    elif question_type == "where":
        shown = [] if target == NOWHERE else [CORNERS.index(target)]
    else:  # digit_at: target is (corner, digit)
        corner, digit = target
        asked = CORNERS.index(corner)
        others = [cell for cell in range(cells) if cell != asked]
        extra = rng.choice(others, size=int(rng.integers(0, 2)), replace=False).tolist()
        shown = [asked] + extra if digit == spoken else extra
    other_digits = [d for d in range(10) if d != spoken]
    grid = [spoken if cell in shown else int(rng.choice(other_digits)) for cell in range(cells)]
    if question_type == "digit_at":
        grid[CORNERS.index(corner)] = target[1]
    return grid, corner


def _targets(question_type: str, n: int, rng: np.random.Generator) -> list:
    """n balanced answers for one question type (digit_at: (corner, digit) pairs)."""
    if question_type == "digit_at":
        corners = _balanced_sequence(list(CORNERS), n, rng)
        return list(zip(corners, _balanced_sequence(list(range(10)), n, rng)))
    options = {"present": ["yes", "no"], "where": list(CORNERS) + [NOWHERE],
               "count": ["0", "1", "2"]}[question_type]
    return _balanced_sequence(options, n, rng)


def _make_rows(split: str, recs: list[dict], scan_idx: np.ndarray, scan_labels: np.ndarray,
               per_recording: int, seed: int) -> list[dict]:
    rng = np.random.default_rng([seed, _SPLITS.index(split), 17])
    by_digit = {d: scan_idx[scan_labels[scan_idx] == d] for d in range(10)}
    order = rng.permutation(len(recs))
    slots = [recs[i] for i in order for _ in range(per_recording)]
    qtypes = _balanced_sequence(list(QUESTION_TYPES), len(slots), rng)
    targets = {q: iter(_targets(q, qtypes.count(q), rng)) for q in QUESTION_TYPES}
    rows = []
    for k, (rec, qtype) in enumerate(zip(slots, qtypes)):
        grid, corner = _grid_for(qtype, next(targets[qtype]), rec["digit"], rng)
        scans = [int(rng.choice(by_digit[digit])) for digit in grid]
        template = QUESTION_TEMPLATES[qtype][int(rng.integers(len(QUESTION_TEMPLATES[qtype])))]
        rows.append({
            "id": f"{split}-{k:05d}",
            "text": template.format(corner=corner),
            "image": f"images/{split}/grid_{k:05d}.png",
            "audio": f"audio/{rec['file']}",
            "label": answer_for(qtype, grid, rec["digit"], corner),
            "question_type": qtype,
            "corner": corner,
            "grid_digits": grid,
            "grid_scans": scans,
            "spoken_digit": rec["digit"],
            "speaker": rec["speaker"],
        })
    return rows


def _row_counts(examples_per_recording: dict | None) -> dict:
    counts = {**EXAMPLES_PER_RECORDING, **(examples_per_recording or {})}
    if min(counts.values()) < 1:
        raise ValueError(f"examples_per_recording must be >= 1 per split; got {counts}")
    return counts


def draw_rows(seed: int = 0, examples_per_recording: dict | None = None) -> dict:
    """The manifest rows of every split, {split: [row, ...]}, without writing anything.

    Args:
        seed: the data set's seed (`data.seed`).
        examples_per_recording: rows per recording by split; missing splits take
            :data:`EXAMPLES_PER_RECORDING`.
    """
    counts = _row_counts(examples_per_recording)
    zf, recs = _read_fsdd_zip()
    zf.close()
    _, labels = _load_scans()
    split_idx = image_split(labels)
    return {split: _make_rows(split, [r for r in recs if r["split"] == split], split_idx[split],
                              labels, counts[split], seed) for split in _SPLITS}


def _readme(result: dict) -> str:
    credits = av_digits_readme_text({"train": 0, "validation": 0, "test": 0},
                                    {"train": 0, "validation": 0, "test": 0},
                                    {"num_train": 0, "num_validation": 0, "num_test": 0})
    return f"""# Grid-digits QA (generated by tfmm.data.grid_digits)

A grounding task for tfmm: every example shows a 2x2 grid of handwritten digit scans (64x64
grayscale PNG, one 32x32 scan per corner), a spoken digit recording and a question; the answer is
one of {", ".join(ANSWER_CLASSES)}.

- `images/{{train,validation,test}}/grid_{{k}}.png`: the grid of row `k` of that split; the scans
  it holds are listed in the row (`grid_scans`: scikit-learn `load_digits()` indices, row-major).
- `audio/`: the FSDD recordings; index 0-4 is the test split, 5-6 validation, the rest train.
- `train.jsonl` ({result['num_train']} rows), `validation.jsonl` ({result['num_validation']}
  rows), `test.jsonl` ({result['num_test']} rows): `id`, `text` (question), `image`, `audio`,
  `label`, `question_type` (digit_at / present / where / count), `corner` (the corner a digit_at
  question asks about), `grid_digits` (row-major), `grid_scans`, `spoken_digit`, `speaker`.

{credits[credits.index("## Credits"):]}"""


def build_grid_digits(out_dir, *, seed: int = 0, overwrite: bool = False,
                      examples_per_recording: dict | None = None) -> dict:
    """Writes Grid-digits QA under ``out_dir`` and returns where its manifests are.

    Files: ``images/{train,validation,test}/grid_{k}.png`` (64x64 grayscale PNG),
    ``audio/{digit}_{speaker}_{index}.wav`` (FSDD, unchanged), ``{train,validation,test}.jsonl``
    (see the module docstring for the fields), ``README.md`` and ``build_info.json``.
    Every recording of a split gives ``examples_per_recording[split]`` rows (default
    :data:`EXAMPLES_PER_RECORDING`: 4 train, 2 validation, 4 test), question types in turn.
    Rows and grids depend only on ``seed`` and the row counts; a file is rewritten only when its
    content differs. A folder whose ``test.jsonl`` was drawn with another ``seed`` is kept
    (DataSeedError), unless ``overwrite=True``.

    Returns ``{split}_manifest`` and ``num_{split}`` for split in train, validation, test.
    """
    counts = _row_counts(examples_per_recording)
    out_dir = os.fspath(out_dir)
    zf, recs = _read_fsdd_zip()
    images, _ = _load_scans()
    rows_by_split = draw_rows(seed, counts)
    if not overwrite:
        _check_same_seed(out_dir, jsonl_bytes(rows_by_split["test"]), seed, name="Grid-digits")

    scaled_scans = np.stack([scale_scan(scan) for scan in images])
    for split in _SPLITS:
        os.makedirs(os.path.join(out_dir, "images", split), exist_ok=True)
        for row in rows_by_split[split]:
            picture = _png_gray8(_grid_image(scaled_scans, row["grid_scans"]))
            _write_if_changed(os.path.join(out_dir, row["image"]), picture)
    write_recordings(zf, recs, out_dir, overwrite)

    result = {}
    for split in _SPLITS:
        path = os.path.join(out_dir, f"{split}.jsonl")
        _write_if_changed(path, jsonl_bytes(rows_by_split[split]))
        result[f"{split}_manifest"] = path
        result[f"num_{split}"] = len(rows_by_split[split])
    _write_if_changed(os.path.join(out_dir, BUILD_INFO_FILE),
                      json.dumps({"seed": seed, "examples_per_recording": counts}).encode())
    _write_if_changed(os.path.join(out_dir, "README.md"), _readme(result).encode("utf-8"))
    return result
