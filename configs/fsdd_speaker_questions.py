"""FSDD speaker questions, a text + audio task read from plain manifests:
`python scripts/fsdd_speaker_questions.py --recordings PATH/TO/fsdd/recordings`, then
`python train.py configs/fsdd_speaker_questions.py`.

Each example is a real FSDD recording (CC BY-SA 4.0; 6 speakers) with a question about who speaks
or which digit is said ("who is speaking?", "which digit is said?", "is this george speaking?",
"did theo say seven?"); the answer is one of 18 classes ("0".."9", the six names, "yes", "no").
The manifests are written by the script (splits by recording index: 0-4 test, 5-9 validation,
10-49 training); nothing in tfmm knows this task.

The recipe runs two stages, each a plain tfmm config (run one with `--stage NAME`):
  1. audio_encoder: the log-Mel CNN learns "{speaker} {digit}" (60 classes) from the recordings
     alone: speaker identity is something the quickstart's digit encoder never learned;
  2. fused: MiniLM BERT (frozen) reads the question, the audio encoder starts from stage 1 and
     stays frozen (features cached once), token-level cross-attention over the question's tokens
     and the recording's frames learns to answer. `scripts/fusion_ablation.py` trains this stage
     with every `model.fusion` on the same schedule.

Test figures per question type: `data.report_group_field = "question_type"` (or
"question_detail": which part of a said_digit "no" is wrong).

Measured 2026-12-02 (2 shared CPU cores), two runs of the recipe: audio_encoder 0.990 on the 300
test recordings' "{speaker} {digit}" both times; fused, 1,200 test questions, seed 0:
cross_attention 0.997 / 0.992, attention 0.997 / 0.998, concat 0.995 / 0.996, tensor 0.996 /
0.998, low_rank 0.998 / 0.998, gated 0.998 / 0.999, late 0.758 / 0.763. The errors of every
method but late are a handful of questions, mostly said_digit ones (in the first run, checked:
"no"s whose digit is the wrong one, "did theo say seven?" to theo saying another digit). A third
run (2026-12-03), seeds 0-2, questions wrong of 3,600: cross_attention 16, with
`model.fusion_options={"cross_attention_pooled_skip": true}` 10, gated 11, attention and concat
12 (pooled skip is off by default: on the grounding task it kept the model from learning
positions). README "Fusion methods" has the tables.
"""

import importlib.util
import os

_spec = importlib.util.spec_from_file_location(
    "fsdd_speaker_questions_script",
    os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "scripts",
                 "fsdd_speaker_questions.py"))
questions = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(questions)

DATA_DIR = "data/generated/fsdd_speaker_questions"
RUN_DIR = "runs/fsdd_speaker_questions"
FUSION = "cross_attention"

AUDIO = {"audio_sample_rate": 8000, "audio_length": 8000}
ENCODER_MODEL = {"projection_dim": 128, "fusion": "concat", "head_hidden_dim": 0, "dropout": 0.1}


def manifests(prefix=""):
    return {f"{split}_manifest": f"{DATA_DIR}/{prefix}{split}.jsonl"
            for split in ("train", "validation", "test")}


def audio_encoder_stage(epochs=12, learning_rate=2e-3):
    """The log-Mel CNN on "{speaker} {digit}": the encoder the fused stage starts from."""
    return {
        "name": "audio_encoder",
        "data": {**manifests("audio_"), "modalities": ["audio"],
                 "labels": list(questions.AUDIO_LABELS), "batch_size": 64,
                 "report_group_field": "speaker", **AUDIO},
        "model": dict(ENCODER_MODEL),
        "training": {"run_dir": f"{RUN_DIR}/audio_encoder", "epochs": epochs,
                     "learning_rate": learning_rate, "weight_decay": 0.05,
                     "warmup_fraction": 0.05, "label_smoothing": 0.1, "export": False},
    }


def fused_stage(name="fused", fusion=FUSION, export=False):
    """The question-answering model on the frozen MiniLM and the stage-1 audio encoder."""
    return {
        "name": name,
        "data": {**manifests(), "modalities": ["text", "audio"],
                 "labels": list(questions.LABELS),
                 # The longest question is 12 tokens with [CLS] and [SEP]: 16 cuts none.
                 "text_sequence_length": 16, "batch_size": 64,
                 "report_group_field": "question_type", **AUDIO},
        "model": {**ENCODER_MODEL, "text_preset": "minilm", "freeze_text_encoder": True,
                  "freeze_audio_encoder": True, "init_encoders_from": [f"{RUN_DIR}/audio_encoder"],
                  "fusion": fusion, "fusion_num_heads": 4, "fusion_num_layers": 2,
                  "head_hidden_dim": 256},
        "training": {"run_dir": f"{RUN_DIR}/{name}", "epochs": 40, "learning_rate": 2e-3,
                     "weight_decay": 0.01, "warmup_fraction": 0.05, "export": export,
                     "cache_frozen_features": True},
    }


def get_config():
    return [audio_encoder_stage(), fused_stage()]
