"""Tiny, fast stand-ins for real runs: a 2-layer BERT preset, PNG/WAV bytes, a small manifest,
a small config. The one home of the tests' fixtures.

Everything is written into a folder the caller gives (pytest's tmp_path), so tests never touch
the repository or the network. Nothing here imports TensorFlow at import time, so worker
subprocesses can import this module by path cheaply.
"""

import io
import json
import os
import socket
import struct
import subprocess
import sys
import wave

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


def png_bytes(pixels) -> bytes:
    """A PNG (8-bit grey or RGB) of a uint8 array [H, W] or [H, W, 3], written with zlib."""
    import zlib

    import numpy as np

    pixels = np.asarray(pixels, np.uint8)
    if pixels.ndim == 3 and pixels.shape[-1] == 1:
        pixels = pixels[..., 0]
    height, width = pixels.shape[:2]
    colour_type = 0 if pixels.ndim == 2 else 2
    raw = b"".join(b"\x00" + pixels[row].tobytes() for row in range(height))

    def chunk(kind, payload):
        return (struct.pack(">I", len(payload)) + kind + payload
                + struct.pack(">I", zlib.crc32(kind + payload) & 0xFFFFFFFF))

    header = struct.pack(">IIBBBBB", width, height, 8, colour_type, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw))
            + chunk(b"IEND", b""))


def wav_bytes(samples, sample_rate: int = 8000, channels: int = 1, sample_width: int = 2) -> bytes:
    """A PCM WAV of float samples in [-1, 1], shape [N] or [N, channels] (interleaved)."""
    import numpy as np

    samples = np.asarray(samples, np.float32).reshape(-1)
    scale = 2 ** (8 * sample_width - 1) - 1
    dtype = {1: np.uint8, 2: np.int16, 4: np.int32}[sample_width]
    values = samples * scale + (128 if sample_width == 1 else 0)
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as handle:
        handle.setnchannels(channels)
        handle.setsampwidth(sample_width)
        handle.setframerate(sample_rate)
        handle.writeframes(values.astype(dtype).tobytes())
    return buffer.getvalue()


def write_manifest(directory: str, num_rows: int = 32, name: str = "train.jsonl",
                   task: str = "multiclass", modalities=("text", "image", "audio"),
                   missing_audio_every: int = 0) -> str:
    """Writes `num_rows` examples whose label ("high"/"low") every modality tells.

    Text names the label's colour and sound, the 8x8 RGB PNG is bright or dark, the 0.1 s 8 kHz
    WAV is a 1500 Hz or 300 Hz tone; rows alternate between the two labels. Files go to
    `images/N.png` and `audio/N.wav` beside the manifest.

    Args:
        task: "multiclass" (a `label` per row) or "regression" (a `target`: 1.0 high, -1.0 low).
        modalities: the fields written.
        missing_audio_every: if > 0, every n-th row's audio is null (a missing modality).

    Returns:
        The manifest path.
    """
    import numpy as np

    os.makedirs(os.path.join(directory, "images"), exist_ok=True)
    os.makedirs(os.path.join(directory, "audio"), exist_ok=True)
    path = os.path.join(directory, name)
    with open(path, "w") as handle:
        for index in range(num_rows):
            high = index % 2 == 0
            row = {"id": f"row{index}"}
            if "text" in modalities:
                words = ("which color is red ?", "the sound is high") if high else \
                        ("which color is blue ?", "the sound is low")
                row["text"] = words[index // 2 % 2]
            if "image" in modalities:
                level = (200 if high else 20) + index % 40
                pixels = np.stack([np.full((8, 8), level), level + 7 * np.arange(8)[:, None]
                                   + np.zeros((8, 8)), np.full((8, 8), level // 2)], -1) % 256
                row["image"] = f"images/{index}.png"
                with open(os.path.join(directory, row["image"]), "wb") as image_file:
                    image_file.write(png_bytes(pixels))
            if "audio" in modalities:
                row["audio"] = f"audio/{index}.wav"
                seconds = np.arange(800) / 8000
                tone = 0.37 * np.sin(2 * np.pi * (1500.0 if high else 300.0) * seconds
                                     + 0.1 * index)
                with open(os.path.join(directory, row["audio"]), "wb") as audio_file:
                    audio_file.write(wav_bytes(tone))
                if missing_audio_every and index % missing_audio_every == missing_audio_every - 1:
                    row["audio"] = None
            if task == "regression":
                row["target"] = 1.0 if high else -1.0
            else:
                row["label"] = "high" if high else "low"
            handle.write(json.dumps(row) + "\n")
    return path


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
