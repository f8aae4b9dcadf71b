"""Video-digits QA: a bundled temporal task (text + video + audio, all real data).

Each example pairs

- a **video**: an animated GIF of :data:`DIGITS_PER_CLIP` real handwritten scans (scikit-learn's
  ``load_digits()``, the same scans and split as :mod:`tfmm.data.av_digits`) shown one after
  another, each for :data:`FRAMES_PER_DIGIT` frames; a scan is scaled up, placed at a random spot
  of a black ``VIDEO_SIZE`` x ``VIDEO_SIZE`` canvas and moved and faded between its frames. The
  spot and the fade do not depend on the scan's place in time, so only the frame order tells
  which digit came first;
- an **audio** clip: a real spoken digit from the Free Spoken Digit Dataset (FSDD, CC BY-SA 4.0);
- a **question** that needs the order in time (:data:`QUESTION_TEMPLATES`);

and the answer, one of :data:`ANSWER_CLASSES` ("0".."9", "yes", "no").

Question types:

- ``first``: the digit shown first; ``last``: the digit shown last;
- ``after_spoken``: the digit shown right after the spoken one (the spoken digit is in the clip,
  first or second);
- ``spoken_before_last``: is the spoken digit shown before the last one? (it is in the clip:
  first or second -> "yes", last -> "no"; half the rows each).

The digits of a clip are distinct. Splits: the FSDD recordings and the scans split exactly as in
AV-digits (FSDD index 0-4 test, 5-6 validation; scans 80/20, then 8% validation; disjoint).
:func:`build_video_digits` also writes single-scan clips (``frames_{split}.jsonl``) on which the
frame encoder learns the digit before the fused stage.
"""
from __future__ import annotations

import io
import json
import os

import numpy as np

from tfmm.atomic_write import jsonl_bytes, write_bytes
from tfmm.data.av_digits import (_balanced_sequence, _check_same_seed,
                                 _load_scans, _read_fsdd_zip, _write_if_changed, image_split,
                                 write_recordings)

__all__ = ["ANSWER_CLASSES", "QUESTION_TEMPLATES", "QUESTION_TYPES", "build_video_digits",
           "answer_for", "render_clip"]

QUESTION_TEMPLATES: dict[str, list[str]] = {
    "first": [
        "which digit is shown first?",
        "what is the first digit in the clip?",
        "which number appears first?",
        "name the digit at the start of the clip.",
    ],
    "last": [
        "which digit is shown last?",
        "what is the last digit in the clip?",
        "which number appears at the end?",
        "name the final digit of the clip.",
    ],
    "after_spoken": [
        "which digit comes after the spoken one?",
        "what digit is shown right after the one you hear?",
        "which number follows the spoken digit in the clip?",
        "after the digit that is said, which digit appears?",
    ],
    "spoken_before_last": [
        "is the spoken digit shown before the last frame?",
        "does the digit you hear appear before the end of the clip?",
        "is the spoken number shown earlier than the last digit?",
        "does the said digit come before the final one?",
    ],
}
QUESTION_TYPES: tuple[str, ...] = tuple(QUESTION_TEMPLATES)
ANSWER_CLASSES: tuple[str, ...] = tuple(str(i) for i in range(10)) + ("yes", "no")

DEFAULT_DATA_DIR = os.path.join("data", "generated", "video_digits")
DIGITS_PER_CLIP = 3
FRAMES_PER_DIGIT = 2
VIDEO_SIZE = 75  # InceptionV3's smallest input
SCAN_SIZE = 36  # an 8x8 scan is scaled up to SCAN_SIZE x SCAN_SIZE pixels
MAX_MOVE = 6  # pixels a scan moves (each axis) between its frames
FADE_RANGE = (0.45, 0.8)  # the faded frame's brightness, relative to the full one
FRAME_DURATION_MS = 200
# Training rows per FSDD recording (validation and test: 2). At 4 the fused stage overfit
# (training 0.92, validation 0.76; "which digit comes after the spoken one?" 0.41 on test, below
# mean pooling); at 8 it reached validation 0.93 and 0.90 on those questions.
TRAIN_EXAMPLES_PER_RECORDING = 8
BUILD_INFO_FILE = "build_info.json"
_SPLITS = ("train", "test", "validation")  # the position seeds each split's rows


def answer_for(question_type: str, digits, spoken_digit: int) -> str:
    """The answer of a question type for the clip's digits (in time order) and the spoken digit."""
    digits = list(digits)
    if question_type == "first":
        return str(digits[0])
    if question_type == "last":
        return str(digits[-1])
    if question_type == "after_spoken":
        position = digits.index(spoken_digit)
        if position == len(digits) - 1:
            raise ValueError(f"the spoken digit {spoken_digit} is last in {digits}: nothing after it")
        return str(digits[position + 1])
    if question_type == "spoken_before_last":
        return "yes" if digits.index(spoken_digit) < len(digits) - 1 else "no"
    raise ValueError(f"unknown question type {question_type!r}; expected one of {QUESTION_TYPES}")


# ----------------------------------------------------------------------------------------------
# Frames


def _scan_frames(scan: np.ndarray, rng: np.random.Generator) -> list[np.ndarray]:
    """FRAMES_PER_DIGIT frames (VIDEO_SIZE x VIDEO_SIZE uint8) of one 8x8 scan: scaled up, placed
    at a random spot, then moved by up to MAX_MOVE pixels and faded (fading in or out)."""
    from PIL import Image

    big = np.asarray(Image.fromarray(scan).resize((SCAN_SIZE, SCAN_SIZE), Image.BILINEAR),
                     dtype=np.float32)
    room = VIDEO_SIZE - SCAN_SIZE - MAX_MOVE
    start = rng.integers(MAX_MOVE, room + 1, size=2)
    move = rng.integers(-MAX_MOVE, MAX_MOVE + 1, size=2)
    fade = rng.uniform(*FADE_RANGE)
    brightness = np.linspace(1.0, fade, FRAMES_PER_DIGIT)
    if rng.random() < 0.5:  # fading in instead of out
        brightness = brightness[::-1]
    frames = []
    for k in range(FRAMES_PER_DIGIT):
        top, left = start + np.rint(move * k / max(FRAMES_PER_DIGIT - 1, 1)).astype(int)
        canvas = np.zeros((VIDEO_SIZE, VIDEO_SIZE), np.float32)
        canvas[top:top + SCAN_SIZE, left:left + SCAN_SIZE] = big * brightness[k]
        frames.append(np.clip(np.rint(canvas), 0, 255).astype(np.uint8))
    return frames


def render_clip(scans, rng: np.random.Generator) -> list[np.ndarray]:
    """The frames of a clip showing each 8x8 uint8 scan in turn (FRAMES_PER_DIGIT frames each).

    Returns:
        ``len(scans) * FRAMES_PER_DIGIT`` arrays of shape (VIDEO_SIZE, VIDEO_SIZE), uint8.
    """
    return [frame for scan in scans for frame in _scan_frames(scan, rng)]


def _gif_bytes(frames: list[np.ndarray]) -> bytes:
    """An animated grayscale GIF of the frames (lossless: 8-bit gray palette), every frame kept."""
    from PIL import Image

    images = [Image.fromarray(frame) for frame in frames]  # 2-D uint8: mode "L"
    buffer = io.BytesIO()
    images[0].save(buffer, format="GIF", save_all=True, append_images=images[1:], loop=0,
                   duration=FRAME_DURATION_MS, optimize=False, disposal=1)
    return buffer.getvalue()


# ----------------------------------------------------------------------------------------------
# Rows


def _clip_digits(question_type: str, target: int, spoken: int, spoken_position: int,
                 rng: np.random.Generator) -> list[int]:
    """DIGITS_PER_CLIP distinct digits in time order; `target` (first/last) or the spoken digit
    (at `spoken_position`) is placed where the question type needs it."""
    fixed = ({0: target} if question_type == "first" else
             {DIGITS_PER_CLIP - 1: target} if question_type == "last" else {spoken_position: spoken})
    if question_type == "after_spoken":
        fixed[spoken_position + 1] = target
    others = [d for d in rng.permutation(10).tolist() if d not in fixed.values()]
    return [fixed[p] if p in fixed else others.pop() for p in range(DIGITS_PER_CLIP)]


def _make_rows(split: str, recs: list[dict], scan_idx: np.ndarray, scan_labels: np.ndarray,
               per_recording: int, seed: int) -> tuple[list[dict], list[list[int]]]:
    """The rows of a split and, per row, the scan indices its clip shows (in time order)."""
    rng = np.random.default_rng([seed, _SPLITS.index(split)])
    by_digit = {d: scan_idx[scan_labels[scan_idx] == d] for d in range(10)}
    order = rng.permutation(len(recs))
    slots = [recs[i] for i in order for _ in range(per_recording)]
    qtypes = _balanced_sequence(list(QUESTION_TYPES), len(slots), rng)
    # Balanced answers: first/last cycle through the ten digits; "after_spoken" through the nine
    # others; "spoken_before_last" alternates yes (spoken first or second) and no (spoken last).
    targets = {q: iter(_balanced_sequence(list(range(10)), len(slots), rng)) for q in ("first", "last")}
    answers_yes = iter(_balanced_sequence([True, False], len(slots), rng))
    rows, clip_scans = [], []
    for k, (rec, qtype) in enumerate(zip(slots, qtypes)):
        spoken = rec["digit"]
        target, spoken_position = (next(targets[qtype]) if qtype in targets else 0), 0
        if qtype == "after_spoken":
            target = int(rng.choice([d for d in range(10) if d != spoken]))
            spoken_position = int(rng.integers(DIGITS_PER_CLIP - 1))
        elif qtype == "spoken_before_last":
            spoken_position = (int(rng.integers(DIGITS_PER_CLIP - 1)) if next(answers_yes)
                               else DIGITS_PER_CLIP - 1)
        digits = _clip_digits(qtype, target, spoken, spoken_position, rng)
        scans = [int(rng.choice(by_digit[d])) for d in digits]
        clip_scans.append(scans)
        templates = QUESTION_TEMPLATES[qtype]
        rows.append({
            "id": f"{split}-{k:05d}",
            "text": templates[int(rng.integers(len(templates)))],
            # The name holds what decides the pixels besides data.seed (checked): the row's
            # number (its placement draw) and its scans; rows drawn otherwise get other files.
            "video": f"clips/{split}/{split}-{k:05d}_scans_{'_'.join(map(str, scans))}.gif",
            "audio": f"audio/{rec['file']}",
            "label": answer_for(qtype, digits, spoken),
            "question_type": qtype,
            "digits": digits,
            "scans": scans,
            "spoken_digit": spoken,
            "speaker": rec["speaker"],
        })
    return rows, clip_scans


def _write_clip(path: str, scans: np.ndarray, seed: list, overwrite: bool) -> None:
    if overwrite or not os.path.exists(path):
        write_bytes(path, _gif_bytes(render_clip(scans, np.random.default_rng(seed))))


def build_video_digits(out_dir, *,
                       train_examples_per_recording: int = TRAIN_EXAMPLES_PER_RECORDING,
                       seed: int = 0, overwrite: bool = False) -> dict:
    """Writes Video-digits QA under ``out_dir`` and returns where its manifests are.

    Files (GIFs and audio written only if missing, or always with ``overwrite=True``):

    - ``clips/{split}/{id}_scans_{i}_{j}_{k}.gif``: one clip per question row (DIGITS_PER_CLIP scans, each for
      FRAMES_PER_DIGIT frames, VIDEO_SIZE x VIDEO_SIZE, grayscale);
    - ``frames/{split}/scan_{i}.gif``: scikit-learn digits scan ``i`` alone (FRAMES_PER_DIGIT
      frames, moved and faded as in the clips), for the frame encoder's stage;
    - ``audio/{digit}_{speaker}_{index}.wav``: the FSDD recordings, unchanged;
    - ``{train,validation,test}.jsonl``: keys ``id``, ``text`` (question), ``video``, ``audio``
      (paths relative to ``out_dir``), ``label``, ``question_type``, ``digits`` (the clip's digits
      in time order), ``scans`` (their scikit-learn scan indices), ``spoken_digit``, ``speaker``;
    - ``frames_{split}.jsonl``: ``id``, ``video`` (a single-scan clip), ``label`` (its digit);
    - ``README.md``: what the data is, and the credits and licences.

    Every recording gives ``train_examples_per_recording`` training rows (validation and test 2);
    question types and answers are balanced. Rows and pixels depend only on ``seed``; a folder
    whose ``test.jsonl`` was drawn with another seed is kept (DataSeedError) unless ``overwrite``.

    Returns ``{split}_manifest``, ``num_{split}`` and ``frames_{split}_manifest`` per split.
    """
    if train_examples_per_recording < 1:
        raise ValueError("train_examples_per_recording must be >= 1")
    out_dir = os.fspath(out_dir)
    zf, recs = _read_fsdd_zip()
    images, labels = _load_scans()
    split_idx = image_split(labels)
    rows_by_split = {}
    for split in _SPLITS:
        rows_by_split[split] = _make_rows(split, [r for r in recs if r["split"] == split],
                                          split_idx[split], labels,
                                          train_examples_per_recording if split == "train" else 2,
                                          seed)
    if not overwrite:
        _check_same_seed(out_dir, jsonl_bytes(rows_by_split["test"][0]), seed, name="Video-digits")

    write_recordings(zf, recs, out_dir, overwrite)

    result = {}
    for position, split in enumerate(_SPLITS):
        rows, clip_scans = rows_by_split[split]
        os.makedirs(os.path.join(out_dir, "clips", split), exist_ok=True)
        for k, (row, scans) in enumerate(zip(rows, clip_scans)):
            _write_clip(os.path.join(out_dir, row["video"]), images[scans],
                        [seed, position, 0, k], overwrite)
        os.makedirs(os.path.join(out_dir, "frames", split), exist_ok=True)
        frame_rows = []
        for i in split_idx[split]:
            video = f"frames/{split}/scan_{int(i)}.gif"
            _write_clip(os.path.join(out_dir, video), images[[int(i)]], [seed, position, 1, int(i)],
                        overwrite)
            frame_rows.append({"id": f"{split}-scan-{int(i)}", "video": video,
                               "label": str(int(labels[i]))})
        for name, data in ((f"{split}.jsonl", rows), (f"frames_{split}.jsonl", frame_rows)):
            _write_if_changed(os.path.join(out_dir, name), jsonl_bytes(data))
        result[f"{split}_manifest"] = os.path.join(out_dir, f"{split}.jsonl")
        result[f"frames_{split}_manifest"] = os.path.join(out_dir, f"frames_{split}.jsonl")
        result[f"num_{split}"] = len(rows)
    _write_if_changed(os.path.join(out_dir, BUILD_INFO_FILE), json.dumps(
        {"seed": seed, "train_examples_per_recording": train_examples_per_recording}).encode())
    counts = {split: result[f"num_{split}"] for split in _SPLITS}
    scan_counts = {split: len(split_idx[split]) for split in _SPLITS}
    _write_if_changed(os.path.join(out_dir, "README.md"),
                      readme_text(counts, scan_counts).encode("utf-8"))
    return result


def readme_text(counts: dict, scan_counts: dict) -> str:
    """The README.md written beside the Video-digits files: contents, counts, credits, licences."""
    return f"""# Video-digits QA (generated by tfmm.data.video_digits)

A temporal question-answering task for tfmm: every example pairs a short animated GIF of
{DIGITS_PER_CLIP} handwritten digits shown one after another ({FRAMES_PER_DIGIT} frames each, moved and faded,
{VIDEO_SIZE}x{VIDEO_SIZE} grayscale), a spoken digit and a question about the order in time; the answer is one
of "0".."9", "yes", "no".

- `clips/{{train,validation,test}}/`: one GIF per question; `frames/`: every scan alone (the
  frame encoder's digit task, `frames_{{split}}.jsonl`); scans {scan_counts['train']} train /
  {scan_counts['validation']} validation / {scan_counts['test']} test, disjoint (as in AV-digits).
- `audio/`: the Free Spoken Digit Dataset recordings, unchanged (index 0-4 test, 5-6 validation).
- `train.jsonl` ({counts['train']} rows), `validation.jsonl` ({counts['validation']}), `test.jsonl`
  ({counts['test']}): `id`, `text`, `video`, `audio`, `label`, `question_type` (first / last /
  after_spoken / spoken_before_last), `digits` (the clip's digits in time order), `scans` (their
  scikit-learn scan indices), `spoken_digit`, `speaker`.

## Credits and licences

**Audio: Free Spoken Digit Dataset (FSDD)**, by Zohar Jackson (Jakobovski) and contributors,
https://github.com/Jakobovski/free-spoken-digit-dataset, licensed under Creative Commons
Attribution-ShareAlike 4.0 International (CC BY-SA 4.0,
https://creativecommons.org/licenses/by-sa/4.0/); see `tfmm/data/assets/FSDD_LICENSE.md`. The
`audio/` files and the manifests (`*.jsonl`) derived from them are under CC BY-SA 4.0 with this
credit.

**Images: Optical Recognition of Handwritten Digits** (UCI ML hand-written digits, as shipped in
scikit-learn as `sklearn.datasets.load_digits`), by E. Alpaydin and C. Kaynak, 1998, UCI Machine
Learning Repository.
"""
