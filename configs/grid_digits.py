"""Grid-digits QA, a grounding task: `python train.py configs/grid_digits.py`.

Each example shows a 2x2 grid of real handwritten scans (scikit-learn digits, 64x64: one 32x32
scan per corner) with a real spoken digit (FSDD, CC BY-SA 4.0) and a question: "which digit is in
the top-left corner?", "is the spoken digit in the picture?", "where is the spoken digit?" (a
corner or "nowhere"), "how many times does the spoken digit appear?". The data set is written to
data/generated/grid_digits on first use (tfmm/data/grid_digits.py; the quickstart's splits:
FSDD's test recordings, disjoint scans). Two of the four question types need a position.

The recipe runs three stages, each a plain tfmm config (run one with `--stage NAME`):
  1. image_encoder: the quickstart's stage (ResNet50 from scratch on single 32x32 scans);
  2. audio_encoder: the quickstart's stage (the log-Mel CNN on single recordings);
  3. fused: MiniLM BERT (frozen) reads the question, the two encoders start from stages 1-2 and
     stay frozen (features cached once), token-level cross-attention over the question's tokens,
     the grid's 2x2 feature-map cells and the recording's frames learns to answer.
At 64x64, ResNet50's last feature map is 2x2: one cell per scan. Pooled fusion methods average
the four cells into one vector before fusing, and lose which corner holds which digit.

Expected result: see README "Fusion methods" for the measured accuracies of every fusion method.
"""

import importlib.util
import os

_spec = importlib.util.spec_from_file_location(
    "av_digits_recipe", os.path.join(os.path.dirname(os.path.abspath(__file__)), "av_digits.py"))
quickstart = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(quickstart)

DATA_DIR = "data/generated/grid_digits"
RUN_DIR = "runs/grid_digits"
FUSION = "cross_attention"


def encoder_stage(modality, **schedule):
    """The quickstart's encoder stage, with its run folder under runs/grid_digits."""
    stage = quickstart.encoder_stage(modality, **schedule)
    stage["training"]["run_dir"] = f"{RUN_DIR}/{modality}_encoder"
    return stage


def fused_stage(name="fused", fusion=FUSION, export=True):
    """The grounding model on the frozen encoders of stages 1-2."""
    stage = quickstart.fused_stage(name, export=export)
    stage["data"].update({
        "builder": "grid_digits", "train_manifest": f"{DATA_DIR}/train.jsonl",
        "validation_manifest": f"{DATA_DIR}/validation.jsonl",
        "test_manifest": f"{DATA_DIR}/test.jsonl", "image_size": 64})
    stage["model"].update({"fusion": fusion,
                           "init_encoders_from": [f"{RUN_DIR}/image_encoder",
                                                  f"{RUN_DIR}/audio_encoder"]})
    # Token-level attention over ~37 tokens needs a gentler step than the quickstart's pooled
    # fusion: at 2e-3 (40 epochs) cross_attention stayed at 0.51 training accuracy, answering
    # only digit_at; at 5e-4 it learns the audio-image matching too (README "Fusion methods").
    # At 1e-3 (seeds 0 and 1, stopped at epochs 32 and 29) training accuracy was 0.62 and 0.57
    # where 5e-4 had reached 0.82 and 0.86 by epoch 30.
    # 50 epochs: an 80-epoch run's validation accuracy was at 0.87-0.89 from epoch 30 on, and 80
    # put the one command over 20 minutes (the whole recipe: 16.5 min on a slower 2-core machine,
    # README "Grounding task").
    stage["training"].update({"run_dir": f"{RUN_DIR}/{name}", "learning_rate": 5e-4,
                              "epochs": 50})
    return stage


def get_config():
    return [encoder_stage("image", epochs=14, learning_rate=1e-3, warmup_fraction=0.1),
            encoder_stage("audio", epochs=12, learning_rate=2e-3, warmup_fraction=0.05),
            fused_stage()]
