"""The layout of tfmm's TFRecord shards and their JSON index, shared by `tfmm.pack` (writing) and
`tfmm.data.records` (reading).

A pack with prefix `out/train` and 4 shards is

    out/train-00000-of-00004.tfrecord ... out/train-00003-of-00004.tfrecord
    out/train.index.json

Each record is a `tf.train.Example` of one valid manifest row, its media bytes as the files hold
them (never decoded or re-encoded):

    id      bytes   the row's id            line    int64   its line in the manifest
    text    bytes   UTF-8 text, "" absent   image   bytes   encoded image, "" absent
    audio   bytes   WAV file, "" absent     label   bytes[] class name(s) (none for regression)
    target  float[] regression target       extra   bytes   the row's other fields as JSON
"""

import json
import os
import re

import tensorflow as tf

from tfmm.errors import UserError

INDEX_FORMAT = "tfmm-records"
INDEX_VERSION = 1
INDEX_SUFFIX = ".index.json"
SHARD_PATTERN = re.compile(r"^(?P<prefix>.*)-(?P<index>\d{5})-of-(?P<total>\d{5})\.tfrecord$")

SCHEMA = {
    "id": "bytes: the row's id",
    "line": "int64: the row's line in the source manifest",
    "text": "bytes: UTF-8 text; empty when the row lacks it",
    "image": "bytes: the encoded image file as it is (JPEG/PNG/GIF/BMP); empty when absent",
    "audio": "bytes: the WAV file as it is; empty when absent",
    "label": "bytes list: class name(s); empty for regression",
    "target": "float list: regression target; empty for classification",
    "extra": "bytes: the row's other fields (e.g. a question type) as a JSON object",
}
MEDIA = ("text", "image", "audio")


class RecordsError(UserError, ValueError):
    """Shards or an index that cannot be read as tfmm records; the message names the file."""


def names_shards(path: str) -> bool:
    """Whether a data path given for evaluation names `tfmm.pack` shards (a glob pattern, or a
    `.tfrecord` file) rather than a JSONL manifest."""
    return path.endswith(".tfrecord") or any(character in path for character in "*?[")


def report_name(pattern: str) -> str:
    """The name of an evaluation report on shards: the pack's name ("records/test-*" ->
    "test")."""
    name = os.path.basename(pattern)
    match = SHARD_PATTERN.match(name)
    return match.group("prefix") if match else (
        re.split(r"[*?\[]", name)[0].rstrip("-_.") or "records")


def shard_path(prefix: str, index: int, total: int) -> str:
    return f"{prefix}-{index:05d}-of-{total:05d}.tfrecord"


def index_path(prefix: str) -> str:
    return prefix + INDEX_SUFFIX


def prefix_of_shard(path: str) -> str:
    """The pack prefix of a shard file name; RecordsError for a name tfmm did not write."""
    match = SHARD_PATTERN.match(path)
    if not match:
        raise RecordsError(f"{path}: not a tfmm shard name (expected PREFIX-NNNNN-of-NNNNN"
                           ".tfrecord, as `python -m tfmm.pack` writes)")
    return match.group("prefix")


def _bytes(values):
    return tf.train.Feature(bytes_list=tf.train.BytesList(value=list(values)))


def example_bytes(row, media: dict) -> bytes:
    """One serialized `tf.train.Example` (deterministic serialization: same row, same bytes).

    Args:
        row: a `tfmm.data.manifest.ManifestRow`.
        media: {"image": bytes, "audio": bytes} of the row's files ("" or absent: none).
    """
    labels = [] if row.label is None else (
        list(row.label) if isinstance(row.label, tuple) else [row.label])
    features = {
        "id": _bytes([row.id.encode("utf-8")]),
        "line": tf.train.Feature(int64_list=tf.train.Int64List(value=[row.line])),
        "text": _bytes([(row.text or "").encode("utf-8")]),
        "image": _bytes([media.get("image", b"")]),
        "audio": _bytes([media.get("audio", b"")]),
        "label": _bytes([label.encode("utf-8") for label in labels]),
        "target": tf.train.Feature(float_list=tf.train.FloatList(value=list(row.target or ()))),
        "extra": _bytes([json.dumps(row.extra, sort_keys=True).encode("utf-8")]),
    }
    example = tf.train.Example(features=tf.train.Features(feature=features))
    return example.SerializeToString(deterministic=True)


FEATURE_SPEC = {
    "id": tf.io.FixedLenFeature([], tf.string),
    "line": tf.io.FixedLenFeature([], tf.int64),
    "text": tf.io.FixedLenFeature([], tf.string),
    "image": tf.io.FixedLenFeature([], tf.string),
    "audio": tf.io.FixedLenFeature([], tf.string),
    "label": tf.io.VarLenFeature(tf.string),
    "target": tf.io.VarLenFeature(tf.float32),
    "extra": tf.io.FixedLenFeature([], tf.string),
}


def parse_example(serialized: tf.Tensor) -> dict:
    """Parses one serialized record (scalar tf.string) into its features; "label" and "target"
    become dense rank-1 tensors."""
    parsed = tf.io.parse_single_example(serialized, FEATURE_SPEC)
    parsed["label"] = tf.sparse.to_dense(parsed["label"])
    parsed["target"] = tf.sparse.to_dense(parsed["target"])
    return parsed


def read_index(path: str) -> dict:
    """The JSON index of a pack; RecordsError when it is missing or not a tfmm index."""
    if not tf.io.gfile.exists(path):
        raise RecordsError(f"{path}: records index not found (written by `python -m tfmm.pack` "
                           "beside the shards)")
    with tf.io.gfile.GFile(path, "r") as handle:
        try:
            index = json.load(handle)
        except json.JSONDecodeError as error:
            raise RecordsError(f"{path}:{error.lineno}: not valid JSON: {error.msg}") from None
    if not isinstance(index, dict) or index.get("format") != INDEX_FORMAT:
        raise RecordsError(f"{path}: not a tfmm records index (expected \"format\": "
                           f"\"{INDEX_FORMAT}\")")
    if index.get("version") != INDEX_VERSION:
        raise RecordsError(f"{path}: records index version {index.get('version')!r}; this tfmm "
                           f"reads version {INDEX_VERSION} (pack the manifest again)")
    return index


def shards_of_pattern(pattern: str) -> list:
    """[(shard path, examples, index dict)] of every shard matching a glob pattern, sorted by
    path; RecordsError when nothing matches or a shard is missing from its pack's index."""
    paths = sorted(tf.io.gfile.glob(pattern))
    if not paths:
        raise RecordsError(f"{pattern}: no TFRecord shards match this pattern")
    indexes, shards = {}, []
    for path in paths:
        prefix = prefix_of_shard(path)
        if prefix not in indexes:
            indexes[prefix] = read_index(index_path(prefix))
        counts = {shard["file"]: shard["examples"] for shard in indexes[prefix]["shards"]}
        name = os.path.basename(path)
        if name not in counts:
            raise RecordsError(f"{index_path(prefix)}: does not list the shard {name} (a shard "
                               "of another pack? pack the manifest again)")
        shards.append((path, int(counts[name]), indexes[prefix]))
    return shards
