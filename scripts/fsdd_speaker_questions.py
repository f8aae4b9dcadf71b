"""Speaker-and-digit questions about real FSDD recordings: a text + audio task written as plain
JSONL manifests (README "Your own data: the manifest"), for configs/fsdd_speaker_questions.py.

    python scripts/fsdd_speaker_questions.py --recordings PATH/TO/fsdd/recordings
    python train.py configs/fsdd_speaker_questions.py      # stages audio_encoder, fused

Every recording of the Free Spoken Digit Dataset (`{digit}_{speaker}_{index}.wav`, 6 speakers,
CC BY-SA 4.0) is asked one question of each type:

    speaker      "who is speaking?"             a speaker's name
    digit        "which digit is said?"         "0".."9"
    is_speaker   "is this george speaking?"     yes / no (half each, per speaker)
    said_digit   "did theo say seven?"          yes / no (half each, per speaker); a "no" names
                                                the right digit and another speaker, or the
                                                right speaker and another digit (alternately)

so that the answer depends on the text (which question, which name, which digit) and on the
recording (who speaks, which digit). Each row also holds `question_detail` (e.g.
"said_digit:no_wrong_digit"): `--set data.report_group_field=question_detail` (or evaluate.py
on a run trained with it) breaks the test figures down by it. Splits by recording index: 0-4 test (FSDD's convention),
5-9 validation, 10-49 training (`--max-train-index K` keeps 10..K only). The draws are seeded
(`--seed`) and depend on nothing else: the same recordings and seed write the same bytes.

Also written: `audio_{split}.jsonl`, one row per recording labelled "{speaker} {digit}" (60
classes), for the recipe's audio-only pretraining stage: speaker identity is something no digit
encoder has learned.
"""
from __future__ import annotations

import argparse
import collections
import importlib.util
import json
import os
import random
import sys

_spec = importlib.util.spec_from_file_location(
    "fsdd_manifest", os.path.join(os.path.dirname(os.path.abspath(__file__)), "fsdd_manifest.py"))
fsdd_manifest = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(fsdd_manifest)
list_recordings = fsdd_manifest.list_recordings

SPLITS = ("train", "validation", "test")
TEST_MAX_INDEX = fsdd_manifest.TEST_MAX_INDEX  # 0-4: FSDD's own test set.
VALIDATION_MAX_INDEX = 9  # 5-9: held out of training for the per-epoch validation figures.
SPEAKERS = ("george", "jackson", "lucas", "nicolas", "theo", "yweweler")
DIGITS = tuple(str(digit) for digit in range(10))
DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
QUESTION_TYPES = ("speaker", "digit", "is_speaker", "said_digit")
# Two phrasings per type, drawn per question.
PHRASINGS = {
    "speaker": ("who is speaking?", "whose voice is this?"),
    "digit": ("which digit is said?", "what number do you hear?"),
    "is_speaker": ("is this {name} speaking?", "is this the voice of {name}?"),
    "said_digit": ("did {name} say {word}?", "is this {name} saying {word}?"),
}
LABELS = DIGITS + SPEAKERS + ("yes", "no")
AUDIO_LABELS = tuple(f"{speaker} {digit}" for speaker in SPEAKERS for digit in DIGITS)


def split_of(index: int) -> str:
    """The split of a recording index: 0-4 test, 5-9 validation, the rest train."""
    if index <= TEST_MAX_INDEX:
        return "test"
    return "validation" if index <= VALIDATION_MAX_INDEX else "train"


def recordings_by_split(recordings: list[dict], max_train_index: int | None = None) -> dict:
    """{split: recordings} in file-name order; training indexes above max_train_index dropped."""
    by_split = {split: [] for split in SPLITS}
    for recording in recordings:
        if recording["speaker"] not in SPEAKERS:
            raise SystemExit(f"error: expected FSDD's speakers {list(SPEAKERS)}. Received: "
                             f"{recording['speaker']!r} ({recording['path']})")
        split = split_of(recording["index"])
        if split == "train" and max_train_index is not None and recording["index"] > max_train_index:
            continue
        by_split[split].append(recording)
    return by_split


def _yes_no_answers(recordings: list[dict], rng: random.Random) -> list[bool]:
    """A yes (True) or no per recording, alternating over a seeded shuffle of each speaker's
    recordings: half of each speaker's questions are yes (one more when the count is odd)."""
    answers = [False] * len(recordings)
    positions = collections.defaultdict(list)
    for position, recording in enumerate(recordings):
        positions[recording["speaker"]].append(position)
    for speaker in sorted(positions):
        shuffled = list(positions[speaker])
        rng.shuffle(shuffled)
        for rank, position in enumerate(shuffled):
            answers[position] = rank % 2 == 0
    return answers


def question_rows(recordings: list[dict], split: str, seed: int = 0) -> list[dict]:
    """One row per recording and question type, for one split.

    Args:
        recordings: dicts from `list_recordings` (path, digit, speaker, index), all of one split.
        split: the split's name (it seeds the draws with `seed`).
        seed: the draws' seed.

    Returns:
        manifest rows: id, text, audio, label, question_type, question_detail (the type, with
        the answer for yes/no types and which part of a said_digit "no" is wrong: e.g.
        "said_digit:no_wrong_digit"), speaker, digit.
    """
    rows = []
    for question_type in QUESTION_TYPES:
        rng = random.Random(f"fsdd_speaker_questions:{seed}:{split}:{question_type}")
        answers = _yes_no_answers(recordings, rng)
        wrong_speaker_next = True  # the "no" of said_digit alternates its wrong part
        for recording, yes in zip(recordings, answers):
            speaker, digit = recording["speaker"], recording["digit"]
            phrasing = rng.choice(PHRASINGS[question_type])
            detail = question_type
            if question_type == "speaker":
                text, label = phrasing, speaker
            elif question_type == "digit":
                text, label = phrasing, digit
            elif question_type == "is_speaker":
                name = speaker if yes else rng.choice([s for s in SPEAKERS if s != speaker])
                text, label = phrasing.format(name=name), "yes" if yes else "no"
                detail = f"{question_type}:{label}"
            else:
                name, asked_digit = speaker, digit
                detail = f"{question_type}:yes"
                if not yes:
                    if wrong_speaker_next:
                        name = rng.choice([s for s in SPEAKERS if s != speaker])
                        detail = f"{question_type}:no_wrong_speaker"
                    else:
                        asked_digit = rng.choice([d for d in DIGITS if d != digit])
                        detail = f"{question_type}:no_wrong_digit"
                    wrong_speaker_next = not wrong_speaker_next
                text = phrasing.format(name=name, word=DIGIT_WORDS[int(asked_digit)])
                label = "yes" if yes else "no"
            stem = os.path.basename(recording["path"])[:-len(".wav")]
            rows.append({"id": f"{stem}:{question_type}", "text": text,
                         "audio": recording["path"], "label": label,
                         "question_type": question_type, "question_detail": detail,
                         "speaker": speaker, "digit": digit})
    return rows


def audio_rows(recordings: list[dict]) -> list[dict]:
    """One row per recording, labelled "{speaker} {digit}" (the audio pretraining stage's)."""
    return [{"id": os.path.basename(r["path"])[:-len(".wav")], "audio": r["path"],
             "label": f"{r['speaker']} {r['digit']}", "speaker": r["speaker"]}
            for r in recordings]


def write_jsonl(path: str, rows: list[dict]) -> None:
    with open(path, "w", encoding="utf-8") as handle:
        handle.writelines(json.dumps(row) + "\n" for row in rows)


def write_manifests(recordings_dir: str, out_dir: str, seed: int = 0,
                    max_train_index: int | None = None) -> dict:
    """Writes OUT/{split}.jsonl (questions) and OUT/audio_{split}.jsonl (recordings).

    Returns:
        {split: number of question rows}.
    """
    by_split = recordings_by_split(list_recordings(recordings_dir), max_train_index)
    os.makedirs(out_dir, exist_ok=True)
    counts = {}
    for split in SPLITS:
        if not by_split[split]:
            raise SystemExit(f"error: expected recordings for the {split} split (indexes "
                             f"{ {'test': '0-4', 'validation': '5-9', 'train': '10-49'}[split] }) "
                             f"in {recordings_dir}. Received: none")
        rows = question_rows(by_split[split], split, seed)
        write_jsonl(os.path.join(out_dir, f"{split}.jsonl"), rows)
        write_jsonl(os.path.join(out_dir, f"audio_{split}.jsonl"), audio_rows(by_split[split]))
        counts[split] = len(rows)
    with open(os.path.join(out_dir, "build_info.json"), "w", encoding="utf-8") as handle:
        json.dump({"seed": seed, "max_train_index": max_train_index, "questions": counts,
                   "source": "Free Spoken Digit Dataset (FSDD), CC BY-SA 4.0"}, handle, indent=1)
    return counts


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--recordings", required=True,
                        help="FSDD's `recordings` folder (or its parent)")
    parser.add_argument("--out", default="data/generated/fsdd_speaker_questions",
                        help="folder of the manifests (the recipe reads this one)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the questions' draws")
    parser.add_argument("--max-train-index", type=int, default=None,
                        help="keep training recordings 10..K only (default: all, 10..49)")
    args = parser.parse_args(argv)
    counts = write_manifests(args.recordings, args.out, args.seed, args.max_train_index)
    print(f"{args.out}: " + ", ".join(f"{split}.jsonl {counts[split]} questions"
                                      for split in SPLITS)
          + f" ({len(QUESTION_TYPES)} per recording); audio_{{split}}.jsonl one row per recording")
    return 0


if __name__ == "__main__":
    sys.exit(main())
