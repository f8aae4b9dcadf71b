"""Tiny, fast stand-ins for real runs: a 2-layer BERT preset, manifests, configs, subprocesses.
The one home of the tests' fixtures, with tiny_media.py (PNG/WAV bytes, re-exported here) and
tiny_squad.py (SQuAD files, WordPiece vocabularies, the real QA data when present).

Everything is written into a folder the caller gives (pytest's tmp_path), so tests never touch
the repository or the network. Nothing here imports TensorFlow at import time, so worker
subprocesses can import this module by path cheaply.
"""

import importlib.util
import json
import os
import pprint
import socket
import subprocess
import sys

# The media helpers, re-exported: `from helpers.tiny import png_bytes` keeps working.
try:  # a package import (tests: `from helpers import tiny`) or this folder on sys.path
    from .tiny_media import (png_bytes, png_header, wav_bytes, with_wav_chunk,  # noqa: F401
                             write_png, write_wav)
except ImportError:
    from tiny_media import (png_bytes, png_header, wav_bytes, with_wav_chunk,  # noqa: F401
                            write_png, write_wav)

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# Words the tiny tokenizer knows (the manifest texts and the tiny SQuAD file of the span tests).
VOCABULARY = [
    "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "which", "what", "is", "the", "digit", "color",
    "sound", "red", "blue", "high", "low", "a", "it", "?", "this", ".", ",", "who", "where",
    "wrote", "book", "ada", "lived", "in", "paris", "london", "was", "cat", "dog", "bob", "of",
    "sky", "has", "name", "called", "##s", "and", "tom", "likes", "green", "tea", "written",
    "spoken", "sum",
]
LABELS = ("high", "low")


def write_bert_preset(directory, dropout: float = 0.0) -> str:
    """Saves a 2-layer BertBackbone (hidden 8, up to 64 tokens, the given dropout rate) and its
    BertTokenizer (the words of VOCABULARY) as a keras-hub preset; returns the folder. A folder
    already holding one is reused."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras
    import keras_hub

    directory = os.fspath(directory)
    if os.path.exists(os.path.join(directory, "metadata.json")):
        return directory
    keras.utils.set_random_seed(1234)
    backbone = keras_hub.models.BertBackbone(
        vocabulary_size=len(VOCABULARY), num_layers=2, num_heads=2, hidden_dim=8,
        intermediate_dim=16, max_sequence_length=64, dropout=dropout)
    tokenizer = keras_hub.tokenizers.BertTokenizer(vocabulary=list(VOCABULARY), lowercase=True)
    os.makedirs(directory, exist_ok=True)
    backbone.save_to_preset(directory)
    tokenizer.save_to_preset(directory)
    return directory


# The words of the varied texts of `write_manifest(varied_texts=True)` (all in VOCABULARY).
MANIFEST_WORDS = ["which", "what", "is", "the", "digit", "color", "sound", "red", "blue", "high",
                  "low"]


def write_jsonl(path, rows) -> str:
    """Writes rows one per line: dicts as JSON, strings as they are (for broken lines); makes the
    folder; returns the path."""
    path = os.fspath(path)
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path, "w") as handle:
        for row in rows:
            handle.write((row if isinstance(row, str) else json.dumps(row)) + "\n")
    return path


def read_jsonl(path) -> list:
    """The JSON rows of a manifest written by `write_jsonl` / `write_manifest` (blank lines
    skipped)."""
    with open(path) as handle:
        return [json.loads(line) for line in handle if line.strip()]


def write_manifest(directory: str, num_rows: int = 32, name: str = "train.jsonl",
                   task: str = "multiclass", modalities=("text", "image", "audio"),
                   missing_audio_every: int = 0, varied_texts: bool = False) -> str:
    """Writes `num_rows` examples whose label ("high"/"low") every modality tells.

    Text names the label's colour and sound, the 8x8 RGB PNG is bright or dark, the 0.1 s 8 kHz
    WAV is a 1500 Hz or 300 Hz tone; rows alternate between the two labels (row0 high). Files go
    to `images/N.png` and `audio/N.wav` beside the manifest.

    Args:
        task: "multiclass" (a `label` per row), "multilabel" (`label` a list: ["high"] or
            ["low"], every fourth row ["high", "low"]) or "regression" (a `target`: 1.0 high,
            -1.0 low).
        modalities: the fields written.
        missing_audio_every: if > 0, every n-th row's audio is null (a missing modality).
        varied_texts: texts of 1 to 12 words (row i: 1 + i % 12) drawn from MANIFEST_WORDS with
            seed 0 (3 to 14 tokens with [CLS] and [SEP]) instead of the two 4-5 word sentences;
            they do not tell the label.

    Returns:
        The manifest path.
    """
    import numpy as np

    random = np.random.default_rng(0)
    rows = []
    for index in range(num_rows):
        high = index % 2 == 0
        row = {"id": f"row{index}"}
        if "text" in modalities and varied_texts:
            row["text"] = " ".join(random.choice(MANIFEST_WORDS, size=1 + index % 12))
        elif "text" in modalities:
            words = ("which color is red ?", "the sound is high") if high else \
                    ("which color is blue ?", "the sound is low")
            row["text"] = words[index // 2 % 2]
        if "image" in modalities:
            level = (200 if high else 20) + index % 40
            pixels = np.stack([np.full((8, 8), level), level + 7 * np.arange(8)[:, None]
                               + np.zeros((8, 8)), np.full((8, 8), level // 2)], -1) % 256
            row["image"] = f"images/{index}.png"
            write_png(os.path.join(directory, row["image"]), pixels)
        if "audio" in modalities:
            row["audio"] = f"audio/{index}.wav"
            seconds = np.arange(800) / 8000
            tone = 0.37 * np.sin(2 * np.pi * (1500.0 if high else 300.0) * seconds + 0.1 * index)
            write_wav(os.path.join(directory, row["audio"]), tone)
            if missing_audio_every and index % missing_audio_every == missing_audio_every - 1:
                row["audio"] = None
        label = LABELS[index % 2]
        if task == "regression":
            row["target"] = 1.0 if high else -1.0
        elif task == "multilabel":
            row["label"] = list(LABELS) if index % 4 == 3 else [label]
        else:
            row["label"] = label
        rows.append(row)
    return write_jsonl(os.path.join(directory, name), rows)


def tiny_config(preset_dir: str, manifest: str, run_dir: str,
                modalities=("text", "audio"), data=None, model=None, **training) -> dict:
    """The nested config dict of a tiny run (a few seconds per epoch on one CPU core).

    Args:
        preset_dir: from `write_bert_preset`.
        manifest: from `write_manifest`.
        run_dir: the run folder.
        modalities: inputs the model reads (ResNet50 is heavy: leave out "image" unless needed).
        data, model: overrides of those sections (dicts).
        **training: overrides of the "training" section (e.g. epochs=3, strategy="mirrored").
    """
    config = {
        "data": {
            "train_manifest": manifest,
            "task": "multiclass",
            "modalities": list(modalities),
            "labels": list(LABELS),
            "text_sequence_length": 8,
            "image_size": 32,
            "audio_sample_rate": 8000,
            "audio_length": 800,
            "batch_size": 8,
            "shuffle_buffer": 64,
        },
        "model": {
            "text_preset": preset_dir,
            "freeze_text_encoder": False,
            "audio_frame_length": 128,
            "audio_frame_step": 64,
            "audio_num_mel_bins": 16,
            "audio_conv_filters": [4, 8],
            "projection_dim": 16,
            "fusion": "attention",
            "fusion_num_heads": 2,
            "head_hidden_dim": 16,
            "dropout": 0.0,
        },
        "training": {
            "run_dir": run_dir,
            "epochs": 2,
            "learning_rate": 3e-3,
            "warmup_fraction": 0.0,
            "decay": "constant",
            "seed": 7,
            "checkpoint_every_steps": 0,
            "export": False,
            "strategy": "default",
        },
    }
    config["data"].update(data or {})
    config["model"].update(model or {})
    config["training"].update(training)
    return config


def write_config(path, config) -> str:
    """Writes a config file tfmm reads: JSON, or for a `.py` path a Python file whose
    `get_config()` returns `config` (a dict, or a list of stage dicts); returns the path."""
    path = os.fspath(path)
    with open(path, "w") as handle:
        if path.endswith(".py"):
            handle.write(f"def get_config():\n    return {pprint.pformat(config, indent=1)}\n")
        else:
            json.dump(config, handle, indent=1)
    return path


def free_port() -> int:
    """A loopback TCP port that was free a moment ago (bind to port 0, read it back)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def subprocess_env(**extra) -> dict:
    """The environment for a tfmm subprocess: the repository importable, TF quiet, no GPU, no
    inherited TF_CONFIG; `extra` sets variables (a None value removes one)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = REPO_ROOT + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH")
                                     else "")
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    env["CUDA_VISIBLE_DEVICES"] = ""
    env["PYTHONUNBUFFERED"] = "1"
    env.pop("TF_CONFIG", None)
    for key, value in extra.items():  # None removes a variable
        if value is None:
            env.pop(key, None)
        else:
            env[key] = str(value)
    return env


def run_python(args, timeout: float, cwd: str = REPO_ROOT, **env) -> subprocess.CompletedProcess:
    """Runs `python ARGS` with a hard timeout (the child is killed when it runs over)."""
    return subprocess.run([sys.executable, *args], cwd=cwd, env=subprocess_env(**env),
                          capture_output=True, text=True, timeout=timeout)


def load_script(name: str):
    """The module of scripts/`name`.py (the scripts are not a package)."""
    spec = importlib.util.spec_from_file_location(
        name, os.path.join(REPO_ROOT, "scripts", f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
