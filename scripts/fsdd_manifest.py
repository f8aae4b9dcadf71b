"""A manifest from the raw Free Spoken Digit Dataset (FSDD) recordings, and a config that trains
the spoken-digit classifier on it twice: once from the manifest, once from `tfmm.pack` shards
(README "Data at scale: TFRecord shards").

    python scripts/fsdd_manifest.py --recordings PATH/TO/fsdd/recordings --out data/generated/fsdd
    python -m tfmm.pack data/generated/fsdd/train.jsonl data/generated/fsdd/records/train \\
        --shards 8 --modalities audio --audio-sample-rate 8000
    python -m tfmm.pack data/generated/fsdd/test.jsonl data/generated/fsdd/records/test \\
        --shards 2 --modalities audio --audio-sample-rate 8000
    python train.py data/generated/fsdd/config.json     # stages from_manifest, from_records

The manifests are written here from the file names alone (`{digit}_{speaker}_{index}.wav`), not
by the bundled AV-digits builder: one row per recording, `audio` its absolute path, `label` the
digit, `speaker` kept as a row field. FSDD's own split: indexes 0-4 of every speaker and digit
are the test set, the rest training. `--max-train-index K` keeps training indexes 5..K only (a
smaller set). Both stages of config.json are the same model, seed and schedule (the log-Mel CNN
of configs/av_digits.py's audio stage); they differ only in where the examples come from.

The script imports nothing of tfmm (so nothing of TensorFlow): it is the kind of data
preparation a user writes, and runs in a second.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import sys

RECORDING_NAME = re.compile(r"^(\d)_([a-z]+)_(\d+)\.wav$")
TEST_MAX_INDEX = 4  # FSDD's convention: recordings 0-4 of each speaker and digit are the test set.
SPLITS = ("train", "test")
DIGITS = [str(digit) for digit in range(10)]


def list_recordings(recordings_dir: str) -> list[dict]:
    """Every FSDD-named WAV of a folder (or of its `recordings` subfolder), sorted by name.

    Returns:
        dicts with `path` (absolute), `digit` (str), `speaker`, `index` (int).
    """
    nested = os.path.join(recordings_dir, "recordings")
    folder = nested if os.path.isdir(nested) else recordings_dir
    if not os.path.isdir(folder):
        raise SystemExit(f"error: expected a folder of FSDD recordings. Received: {recordings_dir}")
    recordings = []
    for name in sorted(os.listdir(folder)):
        match = RECORDING_NAME.match(name)
        if match:
            recordings.append({"path": os.path.abspath(os.path.join(folder, name)),
                               "digit": match.group(1), "speaker": match.group(2),
                               "index": int(match.group(3))})
    if not recordings:
        raise SystemExit(f"error: expected FSDD recordings named {{digit}}_{{speaker}}_{{index}}.wav "
                         f"in {folder}. Received: none")
    return recordings


def manifest_rows(recordings: list[dict], max_train_index: int | None = None) -> dict:
    """The rows of each split: {"train": [...], "test": [...]}, in file-name order."""
    rows = {split: [] for split in SPLITS}
    for recording in recordings:
        split = "test" if recording["index"] <= TEST_MAX_INDEX else "train"
        if split == "train" and max_train_index is not None and recording["index"] > max_train_index:
            continue
        stem = os.path.basename(recording["path"])[:-len(".wav")]
        rows[split].append({"id": stem, "audio": recording["path"], "label": recording["digit"],
                            "speaker": recording["speaker"]})
    return rows


def training_config(out_dir: str, run_dir: str, epochs: int, seed: int = 0) -> list[dict]:
    """Two stages, identical but for their source of examples: the manifests, or the shards that
    `python -m tfmm.pack` writes to OUT/records/{train,test}-*."""
    data = {"modalities": ["audio"], "task": "multiclass", "labels": DIGITS,
            "audio_sample_rate": 8000, "audio_length": 8000, "batch_size": 64,
            "report_group_field": "speaker"}
    model = {"projection_dim": 128, "fusion": "concat", "head_hidden_dim": 0, "dropout": 0.1}
    training = {"epochs": epochs, "learning_rate": 2e-3, "weight_decay": 0.05,
                "warmup_fraction": 0.05, "label_smoothing": 0.1, "seed": seed, "export": False}
    sources = {
        "from_manifest": {"train_manifest": os.path.join(out_dir, "train.jsonl"),
                          "test_manifest": os.path.join(out_dir, "test.jsonl")},
        "from_records": {"train_records": os.path.join(out_dir, "records", "train-*"),
                         "test_records": os.path.join(out_dir, "records", "test-*"),
                         "cache": "none"},
    }
    return [{"name": name, "data": {**data, **source}, "model": dict(model),
             "training": {**training, "run_dir": os.path.join(run_dir, name)}}
            for name, source in sources.items()]


def write_manifests(recordings_dir: str, out_dir: str, run_dir: str, epochs: int,
                    max_train_index: int | None = None, seed: int = 0) -> dict:
    """Writes OUT/train.jsonl, OUT/test.jsonl and OUT/config.json; returns rows per split."""
    rows = manifest_rows(list_recordings(recordings_dir), max_train_index)
    os.makedirs(out_dir, exist_ok=True)
    for split in SPLITS:
        with open(os.path.join(out_dir, f"{split}.jsonl"), "w", encoding="utf-8") as handle:
            handle.writelines(json.dumps(row) + "\n" for row in rows[split])
    with open(os.path.join(out_dir, "config.json"), "w", encoding="utf-8") as handle:
        json.dump(training_config(out_dir, run_dir, epochs, seed), handle, indent=1)
        handle.write("\n")
    return {split: len(rows[split]) for split in SPLITS}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--recordings", required=True,
                        help="FSDD's `recordings` folder (or its parent)")
    parser.add_argument("--out", default="data/generated/fsdd", help="folder of the manifests")
    parser.add_argument("--run-dir", default="runs/fsdd", help="parent of the two stages' runs")
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0, help="training.seed of both stages")
    parser.add_argument("--max-train-index", type=int, default=None,
                        help="keep training recordings 5..K only (default: all, 5..49)")
    args = parser.parse_args(argv)
    counts = write_manifests(args.recordings, args.out, args.run_dir, args.epochs,
                             args.max_train_index, args.seed)
    print(f"{args.out}: train.jsonl {counts['train']} rows, test.jsonl {counts['test']} rows, "
          f"config.json (stages from_manifest, from_records)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
