"""Tiny real artefacts for fast tests: a 2-layer BERT preset, PNGs, WAVs, manifests, configs."""

import io
import json
import os
import wave

import numpy as np

TINY_VOCABULARY = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "which", "digit", "is",
                   "written", "spoken", "what", "sum", "?", "a", "the", "red", "blue", "cat",
                   "dog", "."]


def write_tiny_bert_preset(directory: str) -> str:
    """A keras-hub preset folder: 2-layer BERT (hidden 8) and its WordPiece tokenizer."""
    import keras_hub

    if os.path.exists(os.path.join(directory, "metadata.json")):
        return directory
    backbone = keras_hub.models.BertBackbone(
        vocabulary_size=len(TINY_VOCABULARY), num_layers=2, num_heads=2, hidden_dim=8,
        intermediate_dim=16, max_sequence_length=16)
    backbone.save_to_preset(directory)
    tokenizer = keras_hub.tokenizers.BertTokenizer(vocabulary=TINY_VOCABULARY, lowercase=True)
    tokenizer.save_to_preset(directory)
    return directory


def png_bytes(pixels: np.ndarray) -> bytes:
    """PNG of a uint8 [H, W] or [H, W, 3] array."""
    import tensorflow as tf

    if pixels.ndim == 2:
        pixels = pixels[..., None]
    return tf.io.encode_png(tf.constant(pixels, tf.uint8)).numpy()


def wav_bytes(samples: np.ndarray, sample_rate: int = 8000, channels: int = 1,
              sample_width: int = 2) -> bytes:
    """16-bit PCM WAV of float samples in [-1, 1] (shape [N] or [N, channels])."""
    samples = np.asarray(samples, np.float32).reshape(-1)
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as handle:
        handle.setnchannels(channels)
        handle.setsampwidth(sample_width)
        handle.setframerate(sample_rate)
        scale = 2 ** (8 * sample_width - 1) - 1
        dtype = {1: np.uint8, 2: np.int16, 4: np.int32}[sample_width]
        values = samples * scale + (128 if sample_width == 1 else 0)
        handle.writeframes(values.astype(dtype).tobytes())
    return buffer.getvalue()


def write_toy_dataset(directory: str, num_rows: int = 32, seed: int = 0,
                      modalities=("text", "image", "audio"), missing_every: int = 0) -> str:
    """A learnable 2-class toy manifest: bright image + high tone = "yes", else "no".

    Args:
        directory: where the files and `manifest.jsonl` go.
        num_rows: rows written.
        missing_every: if > 0, every n-th row lacks its audio (null field).

    Returns:
        The manifest path.
    """
    random = np.random.default_rng(seed)
    os.makedirs(os.path.join(directory, "files"), exist_ok=True)
    rows = []
    for index in range(num_rows):
        positive = index % 2 == 0
        row = {"id": f"row{index}", "label": "yes" if positive else "no"}
        if "text" in modalities:
            row["text"] = "which digit is written ?" if positive else "the red cat ."
        if "image" in modalities:
            level = 200 if positive else 30
            pixels = np.clip(random.normal(level, 10, (8, 8)), 0, 255).astype(np.uint8)
            name = f"files/image{index}.png"
            with open(os.path.join(directory, name), "wb") as handle:
                handle.write(png_bytes(pixels))
            row["image"] = name
        if "audio" in modalities:
            frequency = 1500 if positive else 300
            time = np.arange(800) / 8000
            samples = 0.5 * np.sin(2 * np.pi * frequency * time) + random.normal(0, 0.01, 800)
            name = f"files/audio{index}.wav"
            with open(os.path.join(directory, name), "wb") as handle:
                handle.write(wav_bytes(samples))
            row["audio"] = name
            if missing_every and index % missing_every == missing_every - 1:
                row["audio"] = None
        rows.append(row)
    path = os.path.join(directory, "manifest.jsonl")
    with open(path, "w") as handle:
        for row in rows:
            handle.write(json.dumps(row) + "\n")
    return path


def tiny_config_dict(preset_dir: str, manifest: str, run_dir: str,
                     modalities=("text", "image", "audio"), **sections) -> dict:
    """A config dict for the tiny model; `sections` update data/model/training fields."""
    config = {
        "data": {"train_manifest": manifest, "test_manifest": manifest,
                 "modalities": list(modalities), "text_sequence_length": 8, "image_size": 32,
                 "audio_length": 800, "batch_size": 8},
        "model": {"text_preset": preset_dir, "projection_dim": 16, "fusion_num_heads": 2,
                  "head_hidden_dim": 16, "audio_conv_filters": [4, 8], "audio_num_mel_bins": 16,
                  "dropout": 0.0},
        "training": {"run_dir": run_dir, "epochs": 2, "learning_rate": 3e-3,
                     "jit_compile": "false", "export": False, "checkpoint_every_steps": 0},
    }
    for section, values in sections.items():
        config[section].update(values)
    return config
