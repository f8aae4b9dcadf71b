"""Accuracy vs SNR of the spoken-digit classifier with and without audio augmentation (README
"Audio augmentation and noise robustness").

    python scripts/audio_snr_robustness.py --settings plain,noise --seeds 0,1

For each setting (a stage of configs/augmented_audio.py) and seed, trains
runs/augmented_audio/<setting>_seed<seed> unless it has a model, scores it on the test
recordings with white noise at each level (`evaluate.py --noise-snr`, reports in its `noise/`
folder) unless that summary exists, then prints the table (mean and standard deviation over the
seeds) and writes runs/augmented_audio/accuracy_vs_snr.png.
"""

import argparse
import json
import os
import subprocess
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

TEST_MANIFEST = "data/generated/av_digits/audio_digits_test.jsonl"
NAME = "audio_digits_test"


def run(arguments):
    print("$ " + " ".join(arguments), flush=True)
    subprocess.run([sys.executable, *arguments], cwd=ROOT, check=True)


def sweep(run_dir: str, levels: str) -> dict:
    """The noise-sweep summary of a run, training and evaluating what is missing."""
    summary_path = os.path.join(ROOT, run_dir, "noise", f"{NAME}_noise_sweep_report.json")
    if not os.path.exists(os.path.join(ROOT, run_dir, "model.keras")):
        setting, _, seed = os.path.basename(run_dir).rpartition("_seed")
        run(["train.py", "configs/augmented_audio.py", "--stage", setting, "--seed", seed,
             "--run-dir", run_dir])
    if not os.path.exists(summary_path):
        run(["evaluate.py", run_dir, "--data", TEST_MANIFEST, "--noise-snr", levels,
             "--out", os.path.join(run_dir, "noise")])
    with open(summary_path) as handle:
        return json.load(handle)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--settings", default="plain,noise")
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument("--levels", default="clean,20,10,5,0")
    parser.add_argument("--runs", default="runs/augmented_audio")
    arguments = parser.parse_args(argv)
    from tfmm.evaluation.noise_robustness import level_name, plot_score_vs_snr

    curves, header = {}, None
    for setting in arguments.settings.split(","):
        scores = {}  # SNR -> accuracy of each seed
        for seed in arguments.seeds.split(","):
            summary = sweep(f"{arguments.runs}/{setting}_seed{seed}", arguments.levels)
            for row in summary["rows"]:
                scores.setdefault(row["snr_db"], []).append(row["accuracy"])
        curves[setting] = [{"snr_db": snr, "accuracy": float(np.mean(values)),
                            "spread": float(np.std(values)), "seeds": values}
                           for snr, values in scores.items()]
        header = header or [row["snr_db"] for row in curves[setting]]
    seeds = len(arguments.seeds.split(","))
    print(f"\naccuracy on the 300 test recordings: mean ± std over {seeds} seeds (each seed)")
    print("| setting | " + " | ".join(level_name(snr) for snr in header) + " |")
    print("|" + " --- |" * (len(header) + 1))
    for setting, rows in curves.items():
        cells = [f"{row['accuracy']:.3f} ± {row['spread']:.3f} ("
                 + " / ".join(f"{value:.3f}" for value in row["seeds"]) + ")" for row in rows]
        print(f"| {setting} | " + " | ".join(cells) + " |")
    path = plot_score_vs_snr(curves, "accuracy", os.path.join(ROOT, arguments.runs,
                                                              "accuracy_vs_snr.png"),
                             title=f"Spoken digits under white noise ({seeds} seeds)")
    print(f"plot: {os.path.relpath(path, ROOT)}")


if __name__ == "__main__":
    main()
