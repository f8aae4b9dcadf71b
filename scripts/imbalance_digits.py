"""Writes the imbalanced training manifest of the spoken-digit classifier (README "Imbalanced data").

    python scripts/imbalance_digits.py [--data-dir data/generated/av_digits] [--keep 7]
    python scripts/imbalance_digits.py --table runs/imbalanced_digits/*   # the README table

Reads the bundled `audio_digits_train.jsonl` (real FSDD recordings, CC BY-SA 4.0; written by the
av_digits builder, which this runs first when it is missing) and writes
`audio_digits_train_imbalanced.jsonl` beside it: every recording of the common digits, and only
`--keep` recordings of each rare digit (by default 7 of 144: about 20x rarer), drawn with a fixed
seed. The validation and test manifests are left as they are.
"""

import argparse
import json
import os
import random
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

RARE_DIGITS = ("5", "6", "7", "8", "9")
IMBALANCED_NAME = "audio_digits_train_imbalanced.jsonl"


def write_imbalanced_manifest(data_dir: str, keep: int = 7, rare=RARE_DIGITS,
                              seed: int = 0) -> dict:
    """Writes the imbalanced training manifest; returns {label: rows kept}."""
    from tfmm.atomic_write import write_jsonl

    source = os.path.join(data_dir, "audio_digits_train.jsonl")
    if not os.path.exists(source):
        from tfmm.data.av_digits import build_av_digits

        build_av_digits(data_dir, seed=0)
    with open(source) as handle:
        rows = [json.loads(line) for line in handle if line.strip()]
    by_label = {}
    for row in rows:
        by_label.setdefault(row["label"], []).append(row)
    draw = random.Random(seed)
    kept_ids = set()
    for label, label_rows in by_label.items():
        chosen = draw.sample(label_rows, keep) if label in rare else label_rows
        kept_ids.update(row["id"] for row in chosen)
    kept = [row for row in rows if row["id"] in kept_ids]  # the source's order
    write_jsonl(os.path.join(data_dir, IMBALANCED_NAME), kept)
    counts = {}
    for row in kept:
        counts[row["label"]] = counts.get(row["label"], 0) + 1
    return dict(sorted(counts.items()))


def report_table(run_dirs, rare=RARE_DIGITS) -> str:
    """A Markdown table of the runs' test reports: accuracy, macro-F1, balanced accuracy, the
    mean recall of the rare and of the common digits, and each digit's recall."""
    from tfmm.run_folder import RunFolder

    lines = []
    for run_dir in run_dirs:
        with open(RunFolder(run_dir).report("test")) as handle:
            report = json.load(handle)
        per_class = report["per_class"]
        if not lines:
            digits = list(per_class)
            lines = ["| run | accuracy | macro-F1 | balanced accuracy | recall, rare digits | "
                     "recall, common digits | " + " | ".join(digits) + " |",
                     "| --- " * (6 + len(digits)) + "|"]
        recalls = {label: figures["recall"] for label, figures in per_class.items()}
        rare_recall = sum(recalls[label] for label in rare) / len(rare)
        common = [label for label in recalls if label not in rare]
        common_recall = sum(recalls[label] for label in common) / len(common)
        lines.append(f"| {os.path.basename(os.path.normpath(run_dir))} | "
                     f"{report['accuracy']:.3f} | {report['macro_f1']:.3f} | "
                     f"{report['balanced_accuracy']:.3f} | {rare_recall:.3f} | "
                     f"{common_recall:.3f} | "
                     + " | ".join(f"{recalls[label]:.2f}" for label in recalls) + " |")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default="data/generated/av_digits")
    parser.add_argument("--keep", type=int, default=7, help="recordings kept per rare digit")
    parser.add_argument("--table", nargs="+", metavar="RUN_DIR",
                        help="print the test reports of these runs as a Markdown table instead")
    args = parser.parse_args()
    if args.table:
        print(report_table(args.table))
        return
    counts = write_imbalanced_manifest(args.data_dir, args.keep)
    print(f"wrote {os.path.join(args.data_dir, IMBALANCED_NAME)}: {counts}")


if __name__ == "__main__":
    main()
