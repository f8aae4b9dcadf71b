"""The spoken-digit classifier on imbalanced training data (README "Imbalanced data").

    python scripts/imbalance_digits.py          # writes the imbalanced training manifest
    python train.py configs/imbalanced_digits.py --stage plain   # or class_weights, focal, resample

The audio stage of configs/av_digits.py (the log-Mel CNN on real FSDD recordings, CC BY-SA 4.0;
same model, epochs and schedule) trained on `audio_digits_train_imbalanced.jsonl`: digits 0-4 keep
their 144 training recordings, digits 5-9 only 7 each (about 20x rarer). The validation and test
recordings are the bundled ones, unchanged (30 test recordings per digit). Each stage changes one
thing against `plain`.
"""

import importlib.util
import os

_spec = importlib.util.spec_from_file_location(
    "av_digits_recipe", os.path.join(os.path.dirname(os.path.abspath(__file__)), "av_digits.py"))
recipe = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(recipe)

TRAIN_MANIFEST = f"{recipe.DATA_DIR}/audio_digits_train_imbalanced.jsonl"
VARIANTS = {
    "plain": ({}, {}),
    "class_weights": ({"class_weights": "balanced"}, {}),
    "focal": ({"loss": "focal", "focal_gamma": 2.0}, {}),
    "resample": ({}, {"resample": "balanced"}),
}


def imbalanced_stage(name, training, data):
    stage = recipe.encoder_stage("audio", epochs=12, learning_rate=2e-3, warmup_fraction=0.05)
    stage["name"] = name
    stage["data"] = {**stage["data"], "train_manifest": TRAIN_MANIFEST, **data}
    # TRAIN_MANIFEST comes from scripts/imbalance_digits.py (run it first); the builder writes
    # the bundled validation and test manifests when they are missing.
    stage["training"] = {**stage["training"], "run_dir": f"runs/imbalanced_digits/{name}",
                         **training}
    return stage


def get_config():
    return [imbalanced_stage(name, training, data)
            for name, (training, data) in VARIANTS.items()]
