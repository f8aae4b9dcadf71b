"""Video-digits QA, a temporal task on real data: `python train.py configs/video_digits.py`.

Each example is a GIF clip of three real handwritten scans (scikit-learn digits) shown one after
another (two frames each, moved and faded), a real spoken digit (FSDD, CC BY-SA 4.0) and a
question about the order in time: "which digit is shown first?", "which digit is shown last?",
"which digit comes after the spoken one?", "is the spoken digit shown before the last frame?".
The answer is one of "0".."9", "yes", "no". Where a scan sits in its frames does not depend on
when it is shown, so an encoder blind to the order of the frames can tell which digits a clip
holds but not in which order. The data set is written to data/generated/video_digits on first
use (the splits of AV-digits: FSDD recordings 0-4 test, 5-6 validation; disjoint scans).

The recipe runs four stages, each a plain tfmm config (run one with `--stage NAME`):
  1. frame_encoder: InceptionV3 from scratch (no ImageNet weights offline) learns the digit
     of single-scan clips (one frame each);
  2. audio_encoder: the quickstart's log-Mel CNN stage (configs/av_digits.py; a finished
     runs/av_digits/audio_encoder is only re-evaluated);
  3. fused: MiniLM BERT (frozen) reads the question; InceptionV3 from stage 1 and the audio
     encoder from stage 2 stay frozen and their features are computed once
     (`training.cache_frozen_features`); the temporal attention over the sampled frames (with
     time positions), the fusion and the head learn to answer;
  4. fused_mean: the same with the frames mean-pooled (blind to their order): the ablation.
Every stage evaluates on its test split with the accuracy per question type; fused exports the
serving SavedModel (GIF bytes in).

Expected result and time: see README "Video QA task".
"""

import importlib.util
import os

_spec = importlib.util.spec_from_file_location(
    "av_digits_recipe", os.path.join(os.path.dirname(os.path.abspath(__file__)), "av_digits.py"))
av_digits_recipe = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(av_digits_recipe)

DATA_DIR = "data/generated/video_digits"
RUN_DIR = "runs/video_digits"
# A clip has 6 frames (3 digits x 2, tfmm.data.video_digits); uniform sampling of 3 takes frames
# 0, 3 and 5: one of each digit, in order, at half the InceptionV3 cost of all six.
VIDEO_FRAMES = 3
VIDEO = {"video_size": 75, "video_sampling": "uniform"}  # InceptionV3's smallest input
AUDIO = {"audio_sample_rate": 8000, "audio_length": 8000}
VIDEO_ENCODER = {"weights": "", "batchnorm_momentum": 0.9}


def frame_encoder_stage(epochs=10):
    """InceptionV3 learns the digit of one frame: the single-scan clips, one frame sampled."""
    return {
        "name": "frame_encoder",
        "data": {"builder": "video_digits",
                 "train_manifest": f"{DATA_DIR}/frames_train.jsonl",
                 "validation_manifest": f"{DATA_DIR}/frames_validation.jsonl",
                 "test_manifest": f"{DATA_DIR}/frames_test.jsonl",
                 "modalities": ["video"], "video_frames": 1, "batch_size": 32, **VIDEO},
        "model": {"projection_dim": 128, "fusion": "concat", "head_hidden_dim": 0,
                  "dropout": 0.1, "video_encoder": dict(VIDEO_ENCODER, temporal="mean")},
        "training": {"run_dir": f"{RUN_DIR}/frame_encoder", "epochs": epochs,
                     "learning_rate": 3e-4, "weight_decay": 0.05, "warmup_fraction": 0.1,
                     "label_smoothing": 0.1, "export": False,
                     # InceptionV3's train step ran slower under XLA on this CPU than without.
                     "jit_compile": "false"},
    }


def fused_stage(name="fused", modalities=("text", "video", "audio"), temporal="attention",
                export=True):
    """The question-answering model on the frozen frame and audio encoders."""
    sources = [source for modality, source in (("video", f"{RUN_DIR}/frame_encoder"),
                                               ("audio", "runs/av_digits/audio_encoder"))
               if modality in modalities]
    return {
        "name": name,
        "data": {"builder": "video_digits", "train_manifest": f"{DATA_DIR}/train.jsonl",
                 "validation_manifest": f"{DATA_DIR}/validation.jsonl",
                 "test_manifest": f"{DATA_DIR}/test.jsonl", "modalities": list(modalities),
                 "text_sequence_length": 24, "batch_size": 64,
                 "report_group_field": "question_type", "video_frames": VIDEO_FRAMES,
                 **VIDEO, **AUDIO},
        "model": {"projection_dim": 128, "dropout": 0.1, "text_preset": "minilm",
                  "freeze_text_encoder": True, "freeze_audio_encoder": True,
                  "video_encoder": dict(VIDEO_ENCODER, freeze=True, temporal=temporal),
                  "init_encoders_from": sources, "fusion": "attention", "fusion_num_heads": 4,
                  "fusion_num_layers": 2, "head_hidden_dim": 256},
        "training": {"run_dir": f"{RUN_DIR}/{name}", "epochs": 40, "learning_rate": 2e-3,
                     "weight_decay": 0.01, "warmup_fraction": 0.05, "export": export,
                     "cache_frozen_features": True},
    }


def get_config():
    return [frame_encoder_stage(),
            av_digits_recipe.encoder_stage("audio", epochs=12, learning_rate=2e-3,
                                           warmup_fraction=0.05),
            fused_stage(),
            fused_stage("fused_mean", temporal="mean", export=False)]
