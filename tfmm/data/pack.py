"""Packs a JSONL manifest into TFRecord shards of `tf.train.Example`s and a JSON index.

Every row is validated once, with the same checks and `file:line` messages as training reads a
manifest with (`tfmm.data.manifest.read_manifest`); the valid rows then go to the shards round
robin (row i to shard i mod N, so each shard holds a share of every part of the manifest), their
media bytes copied as the files hold them. Shards are written in parallel by worker processes
through `tf.io.gfile` (a local folder or any scheme TensorFlow's file system knows, such as
`gs://`). Nothing depends on time or on the processes: packing twice gives identical files.

    python -m tfmm.pack data/train.jsonl records/train --shards 8
    python -m tfmm.pack data/train.jsonl records/train --shards 8 --modalities text,audio \\
        --skip-invalid

The index (`records/train.index.json`) holds the examples per shard, the label vocabulary, the
schema, the settings the rows were validated with and the SHA-256 of the source manifest.
"""

import argparse
import concurrent.futures
import hashlib
import multiprocessing
import os
import sys

import tensorflow as tf

from tfmm.atomic_write import write_json
from tfmm.data.manifest import read_manifest
from tfmm.data.record_format import (INDEX_FORMAT, INDEX_VERSION, MEDIA, SCHEMA, example_bytes,
                                     index_path, shard_path)


def _read_bytes(path) -> bytes:
    if not path:
        return b""
    with tf.io.gfile.GFile(path, "rb") as handle:
        return handle.read()


def write_shard(path: str, rows: list) -> int:
    """Writes one shard of rows (`ManifestRow`s, in order); returns the records written."""
    tf.io.gfile.makedirs(os.path.dirname(path) or ".")
    with tf.io.TFRecordWriter(path) as writer:
        for row in rows:
            writer.write(example_bytes(row, {"image": _read_bytes(row.image),
                                             "audio": _read_bytes(row.audio)}))
    return len(rows)


def manifest_sha256(path: str) -> str:
    digest = hashlib.sha256()
    with tf.io.gfile.GFile(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def pack_manifest(manifest_path: str, out_prefix: str, num_shards: int, *,
                  task: str = "multiclass", modalities=MEDIA, optional_modalities=(),
                  labels=(), num_targets: int = 1, audio_sample_rate: int = 8000,
                  resample_audio: bool = True, skip_invalid: bool = False,
                  label_field: str = "label", target_field: str = "target",
                  processes: int = 0, log=print) -> dict:
    """Validates a manifest and writes its valid rows to `num_shards` shards and an index.

    Args:
        manifest_path: JSONL manifest (local or a tf.io.gfile scheme).
        out_prefix: shards go to `{out_prefix}-NNNNN-of-NNNNN.tfrecord`, the index to
            `{out_prefix}.index.json`.
        num_shards: shards to write (>= 1; use at least as many as the workers that will read).
        task, modalities, ..., target_field: as `tfmm.data.manifest.read_manifest` (and the
            `data` section of a config) take them; the rows are validated with them.
        processes: worker processes writing shards; 0: one per CPU core (at most one per shard);
            1: in this process.

    Returns:
        The index dict (also written as JSON).

    Raises:
        ManifestError: an invalid row (without skip_invalid) or no valid row.
        ValueError: num_shards < 1, or a modality the shards cannot hold (video).
    """
    if num_shards < 1:
        raise ValueError(f"num_shards must be >= 1. Received: {num_shards}")
    unpackable = [name for name in (*modalities, *optional_modalities) if name not in MEDIA]
    if unpackable:
        raise ValueError(f"--modalities: shards hold {', '.join(MEDIA)}; {unpackable} cannot be "
                         "packed yet (train video from the manifest). Received: "
                         f"{list(modalities)}")
    manifest = read_manifest(
        manifest_path, task=task, modalities=modalities, optional_modalities=optional_modalities,
        labels=labels, num_targets=num_targets, audio_sample_rate=audio_sample_rate,
        resample_audio=resample_audio, skip_invalid=skip_invalid, label_field=label_field,
        target_field=target_field)
    log(manifest.summary())
    shard_rows = [manifest.rows[index::num_shards] for index in range(num_shards)]
    paths = [shard_path(out_prefix, index, num_shards) for index in range(num_shards)]
    processes = processes or min(num_shards, os.cpu_count() or 1)
    if processes <= 1:
        counts = [write_shard(path, rows) for path, rows in zip(paths, shard_rows)]
    else:
        # "forkserver": a clean process forks the workers (the parent runs TensorFlow's
        # threads, which a plain fork does not copy safely), without re-importing per shard.
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(["tfmm.data.pack"])
        with concurrent.futures.ProcessPoolExecutor(min(processes, num_shards),
                                                    mp_context=context) as pool:
            counts = list(pool.map(write_shard, paths, shard_rows))
    index = {
        "format": INDEX_FORMAT, "version": INDEX_VERSION,
        "source_manifest": os.path.basename(manifest_path),
        "source_manifest_sha256": manifest_sha256(manifest_path),
        "num_examples": sum(counts),
        "shards": [{"file": os.path.basename(path), "examples": count}
                   for path, count in zip(paths, counts)],
        "skipped": len(manifest.skipped), "skipped_reasons": manifest.skipped_reasons,
        "task": task, "labels": list(manifest.labels),
        "modalities": list(modalities), "optional_modalities": list(optional_modalities),
        "num_targets": num_targets,
        "audio_sample_rates": sorted({row.audio_sample_rate for row in manifest.rows
                                      if row.audio_sample_rate}),
        "schema": SCHEMA,
    }
    write_json(index_path(out_prefix), index)
    log(f"wrote {index['num_examples']} examples to {num_shards} shards "
        f"{paths[0]} ... and the index {index_path(out_prefix)}")
    return index


def _names(text: str) -> tuple:
    return tuple(part.strip() for part in text.split(",") if part.strip())


def parse_arguments(argv):
    parser = argparse.ArgumentParser(
        prog="python -m tfmm.pack", description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("manifest", help="JSONL manifest to pack")
    parser.add_argument("out_prefix", help="shards: OUT_PREFIX-NNNNN-of-NNNNN.tfrecord; index: "
                                           "OUT_PREFIX.index.json")
    parser.add_argument("--shards", type=int, default=8, help="number of shards (default 8)")
    parser.add_argument("--processes", type=int, default=0,
                        help="writer processes (0: one per core)")
    parser.add_argument("--task", default="multiclass",
                        help="multiclass | multilabel | regression (as data.task)")
    parser.add_argument("--modalities", default="text,image,audio",
                        help="comma-separated, as data.modalities")
    parser.add_argument("--optional-modalities", default="",
                        help="modalities a row may lack, as data.optional_modalities")
    parser.add_argument("--labels", default="", help="known class names, comma-separated "
                                                     "(default: the sorted labels of the rows)")
    parser.add_argument("--num-targets", type=int, default=1)
    parser.add_argument("--audio-sample-rate", type=int, default=8000)
    parser.add_argument("--no-resample-audio", action="store_true",
                        help="reject WAV files at another sample rate (data.resample_audio=false)")
    parser.add_argument("--label-field", default="label")
    parser.add_argument("--target-field", default="target")
    parser.add_argument("--skip-invalid", action="store_true",
                        help="skip (and count) invalid rows instead of stopping at the first")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    arguments = parse_arguments(sys.argv[1:] if argv is None else argv)
    from tfmm.errors import UserError

    try:
        pack_manifest(
            arguments.manifest, arguments.out_prefix, arguments.shards, task=arguments.task,
            modalities=_names(arguments.modalities),
            optional_modalities=_names(arguments.optional_modalities),
            labels=_names(arguments.labels), num_targets=arguments.num_targets,
            audio_sample_rate=arguments.audio_sample_rate,
            resample_audio=not arguments.no_resample_audio,
            skip_invalid=arguments.skip_invalid, label_field=arguments.label_field,
            target_field=arguments.target_field, processes=arguments.processes)
    except (UserError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0
