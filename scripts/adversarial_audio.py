"""Clean and robust (FGM) accuracy of the spoken-digit audio encoder, trained plain and with FGM
adversarial training (README "Adversarial training").

    python scripts/adversarial_audio.py [--epsilons 0.03 0.1 0.3] [--train-epsilon 0.1]
    python scripts/adversarial_audio.py --table          # the table of runs already evaluated

Trains the quickstart's `audio_encoder` stage (configs/av_digits.py) twice with train.py, into
runs/adversarial_audio/plain and runs/adversarial_audio/fgm (the second with
`training.adversarial = {"method": "fgm", "epsilon": TRAIN_EPSILON, "weight": 0.5}`), then
evaluates each on the test recordings with evaluate.py, clean, under FGM at each epsilon (an
L2 norm per clip in waveform units; the test clips' median norm is about 2.8) and under 5-step
PGD at the training epsilon, and prints a Markdown table. A run folder that already holds its
model is not trained again.
"""

import argparse
import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RUNS = "runs/adversarial_audio"
TEST = "data/generated/av_digits/audio_digits_test.jsonl"
PGD_STEPS = 5


def train(run_dir: str, adversarial: dict):
    if os.path.exists(os.path.join(ROOT, run_dir, "model.keras")):
        print(f"{run_dir}: trained already")
        return
    command = [sys.executable, "train.py", "configs/av_digits.py", "--stage", "audio_encoder",
               "--run-dir", run_dir, "--set", f"training.adversarial={adversarial!r}"]
    print(" ".join(command), flush=True)
    subprocess.run(command, cwd=ROOT, check=True)


def evaluate(run_dir: str, epsilons, pgd_epsilon: float):
    """FGM at each epsilon, then PGD with PGD_STEPS steps at pgd_epsilon."""
    command = [sys.executable, "evaluate.py", run_dir, "--data", TEST, "--attack", "fgm"]
    for epsilon in epsilons:
        command += ["--attack-epsilon", str(epsilon)]
    pgd = [sys.executable, "evaluate.py", run_dir, "--data", TEST, "--attack", "pgd",
           "--attack-steps", str(PGD_STEPS), "--attack-epsilon", str(pgd_epsilon)]
    for each in (command, pgd):
        print(" ".join(each), flush=True)
        subprocess.run(each, cwd=ROOT, check=True)


def table(run_dirs, epsilons, pgd_epsilon: float) -> str:
    """Markdown: run -> clean accuracy, accuracy under FGM at each epsilon and under PGD."""
    attacks = [("fgm", epsilon, f"FGM eps {epsilon:g}") for epsilon in epsilons]
    attacks.append(("pgd", pgd_epsilon, f"PGD-{PGD_STEPS} eps {pgd_epsilon:g}"))
    header = ["training", "clean"] + [title for _, _, title in attacks]
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    for run_dir in run_dirs:
        cells = [os.path.basename(run_dir)]
        for index, (method, epsilon, _) in enumerate(attacks):
            path = os.path.join(ROOT, run_dir,
                                f"audio_digits_test_{method}_eps{epsilon:g}_report.json")
            with open(path) as handle:
                report = json.load(handle)
            if index == 0:
                cells.append(f"{report['clean']['accuracy']:.4f}")
            cells.append(f"{report['accuracy']:.4f}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epsilons", type=float, nargs="+", default=[0.03, 0.1, 0.3])
    parser.add_argument("--train-epsilon", type=float, default=0.1)
    parser.add_argument("--table", action="store_true", help="only print the table")
    arguments = parser.parse_args(argv)
    runs = {f"{RUNS}/fgm": {"method": "fgm", "epsilon": arguments.train_epsilon, "weight": 0.5},
            f"{RUNS}/plain": {}}
    if not arguments.table:
        for run_dir, adversarial in runs.items():
            train(run_dir, adversarial)
            evaluate(run_dir, arguments.epsilons, arguments.train_epsilon)
    print(table(list(runs), arguments.epsilons, arguments.train_epsilon))


if __name__ == "__main__":
    main()
