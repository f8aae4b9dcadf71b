"""AV-digits QA, the offline quickstart: `python train.py configs/av_digits.py`.

Each example pairs a real handwritten digit scan (scikit-learn digits) with a real spoken digit
(FSDD, CC BY-SA 4.0) and a question ("which digit is written?", "what is the written digit plus
the spoken digit?", "is the spoken digit larger than the written one?", ...); the answer is one of
21 classes ("0".."18", "yes", "no"). No single modality can answer every question. The data set
is written to data/generated/av_digits on first use (FSDD's split: recordings 0-4 are test, 5-6
validation; the scans are split 80/20, then 8% of the training scans are validation; disjoint).
Every stage reports its validation loss and accuracy per epoch (history.json, training_curves.png).

The recipe runs three stages, each a plain tfmm config (run one with `--stage NAME`):
  1. image_encoder: ResNet50 from scratch learns the written digit from the scans alone;
  2. audio_encoder: the log-Mel CNN learns the spoken digit from the recordings alone;
  3. fused: MiniLM BERT (pretrained, offline, frozen) reads the question, the two encoders start
     from stages 1-2 and stay frozen, attention fusion and the head learn to answer; the frozen
     encoders' features are computed once and cached (`training.cache_frozen_features`).
Stages 1-2 give each encoder's own digit accuracy (the ceiling the fusion works under); every
stage evaluates on its test split, and the fused stage exports the serving SavedModel.

Expected result: see README "Quickstart" for the measured accuracies and time.
"""

DATA_DIR = "data/generated/av_digits"
RUN_DIR = "runs/av_digits"

IMAGE = {"image_size": 32}
AUDIO = {"audio_sample_rate": 8000, "audio_length": 8000}
ENCODER_MODEL = {"projection_dim": 128, "fusion": "concat", "head_hidden_dim": 0, "dropout": 0.1,
                 "image_augmentation": 0.1, "image_batchnorm_momentum": 0.9}


def encoder_stage(modality, epochs, learning_rate, warmup_fraction):
    """A single-modality digit classifier whose encoder the fused stage starts from."""
    return {
        "name": f"{modality}_encoder",
        "data": {"builder": "av_digits",
                 "train_manifest": f"{DATA_DIR}/{modality}_digits_train.jsonl",
                 "validation_manifest": f"{DATA_DIR}/{modality}_digits_validation.jsonl",
                 "test_manifest": f"{DATA_DIR}/{modality}_digits_test.jsonl",
                 "modalities": [modality], "batch_size": 64, **IMAGE, **AUDIO},
        "model": dict(ENCODER_MODEL),
        "training": {"run_dir": f"{RUN_DIR}/{modality}_encoder", "epochs": epochs,
                     "learning_rate": learning_rate, "weight_decay": 0.05,
                     "warmup_fraction": warmup_fraction, "label_smoothing": 0.1,
                     "export": False,
                     # ResNet50's step ran 2.06x faster without XLA than with it (oneDNN on, as
                     # train.py sets it), the log-Mel CNN's 1.53x faster with XLA
                     # (bench/image_audio_step.py, README "Speed").
                     "jit_compile": "false" if modality == "image" else "auto"},
    }


def fused_stage(name="fused", modalities=("text", "image", "audio"), export=True):
    """The question-answering model on frozen pretrained encoders."""
    sources = [f"{RUN_DIR}/{modality}_encoder" for modality in ("image", "audio")
               if modality in modalities]
    return {
        "name": name,
        "data": {"builder": "av_digits", "train_manifest": f"{DATA_DIR}/train.jsonl",
                 "validation_manifest": f"{DATA_DIR}/validation.jsonl",
                 "test_manifest": f"{DATA_DIR}/test.jsonl", "modalities": list(modalities),
                 # The longest question is 18 tokens with [CLS] and [SEP]: 24 cuts none.
                 "text_sequence_length": 24, "batch_size": 64,
                 "report_group_field": "question_type", **IMAGE, **AUDIO},
        "model": {**ENCODER_MODEL, "text_preset": "minilm", "freeze_text_encoder": True,
                  "freeze_image_encoder": True, "freeze_audio_encoder": True,
                  "init_encoders_from": sources, "fusion": "attention", "fusion_num_heads": 4,
                  "fusion_num_layers": 2, "head_hidden_dim": 256},
        # The frozen encoders run once per example, not once per epoch (feature_cache.py), so 40
        # epochs cost about as much as one through the encoders; at 10 the training accuracy was
        # still rising and the sum questions ended at 0.91-0.95.
        "training": {"run_dir": f"{RUN_DIR}/{name}", "epochs": 40, "learning_rate": 2e-3,
                     "weight_decay": 0.01, "warmup_fraction": 0.05, "export": export,
                     "cache_frozen_features": True},
    }


def get_config():
    return [encoder_stage("image", epochs=14, learning_rate=1e-3, warmup_fraction=0.1),
            encoder_stage("audio", epochs=12, learning_rate=2e-3, warmup_fraction=0.05),
            fused_stage()]
