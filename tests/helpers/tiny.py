"""Tiny, fast stand-ins for real runs: a 2-layer BERT preset, a small manifest, a small config.

Everything is written into a folder the caller gives (pytest's tmp_path), so tests never touch
the repository or the network. Also usable from a subprocess (`python -m tests.helpers.tiny`
is not needed: the worker scripts import this module by path).
"""

import json
import math
import os
import socket
import struct
import subprocess
import sys
import wave

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# Words the tiny tokenizer knows; texts are built from them only.
VOCABULARY = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "which", "what", "is", "the", "digit",
              "color", "sound", "red", "blue", "high", "low", "a", "it", "?", "this"]
LABELS = ("high", "low")


def write_bert_preset(directory: str) -> str:
    """Saves a 2-layer BertBackbone (hidden 8) and its BertTokenizer as a keras-hub preset."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras
    import keras_hub

    keras.utils.set_random_seed(1234)
    backbone = keras_hub.models.BertBackbone(
        vocabulary_size=len(VOCABULARY), num_layers=2, num_heads=2, hidden_dim=8,
        intermediate_dim=16, max_sequence_length=16, dropout=0.0)
    tokenizer = keras_hub.tokenizers.BertTokenizer(vocabulary=list(VOCABULARY), lowercase=True)
    os.makedirs(directory, exist_ok=True)
    backbone.save_to_preset(directory)
    tokenizer.save_to_preset(directory)
    return directory


def _png_bytes(bright: bool, variant: int) -> bytes:
    """An 8x8 RGB PNG, bright or dark, written with zlib only (no TensorFlow needed)."""
    import zlib

    size = 8
    level = 200 + variant % 40 if bright else 20 + variant % 40
    raw = b"".join(b"\x00" + bytes([level, (level + 7 * y) % 256, level // 2] * size)
                   for y in range(size))

    def chunk(kind, payload):
        return (struct.pack(">I", len(payload)) + kind + payload
                + struct.pack(">I", zlib.crc32(kind + payload) & 0xFFFFFFFF))

    header = struct.pack(">IIBBBBB", size, size, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw))
            + chunk(b"IEND", b""))


def _write_wav(path: str, frequency: float, phase: float, sample_rate=8000, seconds=0.1):
    frames = int(sample_rate * seconds)
    samples = [int(12000 * math.sin(2 * math.pi * frequency * n / sample_rate + phase))
               for n in range(frames)]
    with wave.open(path, "wb") as handle:
        handle.setnchannels(1)
        handle.setsampwidth(2)
        handle.setframerate(sample_rate)
        handle.writeframes(struct.pack(f"<{frames}h", *samples))


def write_manifest(directory: str, num_rows: int = 32, name: str = "train.jsonl",
                   task: str = "multiclass") -> str:
    """Writes `num_rows` examples whose label ("high"/"low") every modality tells.

    Text names the label's colour and sound, the PNG is bright or dark, the WAV is a 1500 Hz or
    300 Hz tone; rows alternate between the two labels. For task "regression" each row gets a
    target (1.0 for high, -1.0 for low) instead of a label.

    Returns:
        The manifest path.
    """
    os.makedirs(os.path.join(directory, "images"), exist_ok=True)
    os.makedirs(os.path.join(directory, "audio"), exist_ok=True)
    path = os.path.join(directory, name)
    with open(path, "w") as handle:
        for index in range(num_rows):
            high = index % 2 == 0
            image = f"images/{index}.png"
            audio = f"audio/{index}.wav"
            with open(os.path.join(directory, image), "wb") as image_file:
                image_file.write(_png_bytes(high, index))
            _write_wav(os.path.join(directory, audio), 1500.0 if high else 300.0, 0.1 * index)
            words = ("which color is red ?", "the sound is high") if high else \
                    ("which color is blue ?", "the sound is low")
            row = {"id": f"row{index}", "text": words[index // 2 % 2], "image": image,
                   "audio": audio}
            if task == "regression":
                row["target"] = 1.0 if high else -1.0
            else:
                row["label"] = "high" if high else "low"
            handle.write(json.dumps(row) + "\n")
    return path


def tiny_config(preset_dir: str, manifest: str, run_dir: str,
                modalities=("text", "audio"), **training) -> dict:
    """The nested config dict of a tiny run (a few seconds per epoch on one CPU core).

    Args:
        preset_dir: from `write_bert_preset`.
        manifest: from `write_manifest`.
        run_dir: the run folder.
        modalities: inputs the model reads (ResNet50 is heavy: leave out "image" unless needed).
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
    config["training"].update(training)
    return config


def write_config(path: str, config: dict) -> str:
    with open(path, "w") as handle:
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
