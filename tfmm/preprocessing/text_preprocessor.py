"""Text preprocessing: the BERT WordPiece tokenizer and a [CLS] text [SEP] packer of fixed length."""

import os

import keras_hub
import tensorflow as tf

from tfmm.preprocessing.bert_presets import (is_hugging_face_directory, load_from_preset,
                                             resolve_bert_preset)


def load_bert_tokenizer(preset: str) -> keras_hub.tokenizers.BertTokenizer:
    """Loads the WordPiece tokenizer that belongs to a BERT preset.

    A Hugging Face directory without `tokenizer_config.json` (as in the MiniLM package) is read
    from its `vocab.txt`; lower-casing follows `do_lower_case` in `tokenizer_config.json` when
    present and defaults to True (uncased BERT).

    Args:
        preset: see `tfmm.preprocessing.bert_presets.resolve_bert_preset`.
    """
    resolved = resolve_bert_preset(preset)
    if is_hugging_face_directory(resolved):
        vocabulary_path = os.path.join(resolved, "vocab.txt")
        if not tf.io.gfile.exists(vocabulary_path):
            raise FileNotFoundError(f"{resolved}: a Hugging Face BERT directory needs vocab.txt")
        with tf.io.gfile.GFile(vocabulary_path) as handle:
            vocabulary = [line.rstrip("\n") for line in handle]
        lowercase = _hugging_face_lowercase(resolved)
        # Uncased BERT vocabularies hold no accented letters: strip accents as BERT does.
        return keras_hub.tokenizers.BertTokenizer(vocabulary=vocabulary, lowercase=lowercase,
                                                  strip_accents=lowercase)
    return load_from_preset(keras_hub.tokenizers.BertTokenizer.from_preset, preset)


def _hugging_face_lowercase(directory: str) -> bool:
    import json

    config_path = os.path.join(directory, "tokenizer_config.json")
    if tf.io.gfile.exists(config_path):
        with tf.io.gfile.GFile(config_path) as handle:
            return bool(json.load(handle).get("do_lower_case", True))
    return True


def build_text_preprocessor(preset: str, sequence_length: int):
    """keras-hub's BERT preprocessor: strings -> token_ids, segment_ids, padding_mask.

    Args:
        preset: BERT preset (see `resolve_bert_preset`).
        sequence_length: tokens per text, [CLS] and [SEP] included; longer texts are truncated.

    Returns:
        A `keras_hub.models.BertTextClassifierPreprocessor`; called on a string tensor of shape
        [] or [batch] it returns int32 tensors of shape [sequence_length] or
        [batch, sequence_length].
    """
    tokenizer = load_bert_tokenizer(preset)
    return keras_hub.models.BertTextClassifierPreprocessor(
        tokenizer=tokenizer, sequence_length=sequence_length)
