"""Reads and validates JSONL manifests before any training starts.

A manifest holds one JSON object per line:

    {"id": "ex1", "text": "which digit is written?", "image": "images/12.png",
     "audio": "audio/3_george_7.wav", "label": "7"}

Relative media paths resolve against the manifest's folder. Every row is checked up front
(fields, types, files that exist and decode, WAV format, labels), and every problem is reported
as one message naming the file and line, e.g. `train.jsonl:7: missing required field "audio"`.

Example:
    manifest = read_manifest("train.jsonl", modalities=("text", "audio"), skip_invalid=True)
    print(manifest.summary())
"""

import collections
import dataclasses
import os
import re
from typing import Optional

import tensorflow as tf
# ManifestRow is re-exported: rows are read in manifest_rows.py, collected here.
from tfmm.data.manifest_rows import ManifestRow, RowError, RowReader  # noqa: F401
from tfmm.config import MODALITIES
from tfmm.errors import UserError
from tfmm.tasks import get_task


class ManifestError(UserError, ValueError):
    """An invalid manifest file or row.

    The message reads `manifest.jsonl:LINE: what is wrong` for a row, or
    `manifest.jsonl: what is wrong` for the whole file.

    Attributes:
        kind: short reason kind of a row error (e.g. "missing file"), or None for file errors.
    """

    def __init__(self, message: str, kind: Optional[str] = None):
        super().__init__(message)
        self.kind = kind


@dataclasses.dataclass
class Manifest:
    """The valid rows of a manifest and what was skipped.

    Attributes:
        path: the manifest path as given.
        rows: valid ManifestRow objects in file order.
        skipped: (line, message) for each row skipped under skip_invalid; the message does not
            repeat the file and line.
        labels: class names in the order used for class indices (empty for regression).
        skipped_reasons: number of skipped rows per short reason kind.
    """

    path: str
    rows: list
    skipped: list
    labels: tuple
    skipped_reasons: dict = dataclasses.field(default_factory=dict)

    def summary(self) -> str:
        """Describes how many rows were read, kept and skipped.

        Returns:
            A line such as
            "train.jsonl: 5403 rows read, 5400 valid, 3 skipped (2 missing file, 1 unknown label)".
        """
        total = len(self.rows) + len(self.skipped)
        text = f"{self.path}: {total} rows read, {len(self.rows)} valid"
        if self.skipped:
            reasons = ", ".join(f"{count} {kind}" for kind, count in
                                sorted(self.skipped_reasons.items(), key=lambda item: -item[1]))
            text += f", {len(self.skipped)} skipped ({reasons})"
        return text


def read_manifest(path: str, *, task: str = "multiclass",
                  modalities=("text", "image", "audio"), optional_modalities=(), labels=(),
                  num_targets: int = 1, audio_sample_rate: int = 8000,
                  resample_audio: bool = True, skip_invalid: bool = False,
                  label_field: str = "label", target_field: str = "target") -> Manifest:
    """Reads a JSONL manifest and validates every row.

    Args:
        path: manifest file (local or any tf.io.gfile scheme such as gs://).
        task: a `tfmm.tasks.Task` (or its name) that reads JSONL manifests: "multiclass",
            "multilabel" or "regression".
        modalities: modalities the model reads; other media fields are ignored.
        optional_modalities: modalities a row may lack (absent or null).
        labels: known class names; empty: the sorted labels of the valid rows.
        num_targets: numbers per regression target.
        audio_sample_rate: sample rate the model expects, in Hz.
        resample_audio: accept other sample rates (they are resampled later); False rejects them.
        skip_invalid: skip and count invalid rows instead of raising on the first one.
        label_field: row field holding the label (classification tasks).
        target_field: row field holding the target (regression).

    Returns:
        A Manifest with the valid rows, the skipped ones and the class names.

    Raises:
        ManifestError: the file is missing or empty, a row is invalid (without skip_invalid),
            or no valid row remains.
        ValueError: task or modalities are not known names.
    """
    _check_arguments(task, modalities, optional_modalities, num_targets)
    task = get_task(task)
    reader = RowReader(
        directory=os.path.dirname(path), task=task, modalities=tuple(modalities),
        optional_modalities=tuple(optional_modalities),
        labels=tuple(str(label) for label in labels), num_targets=num_targets,
        audio_sample_rate=audio_sample_rate, resample_audio=resample_audio,
        label_field=label_field, target_field=target_field)
    rows, skipped, reasons = [], [], collections.Counter()
    for line, text in _read_lines(path):
        try:
            rows.append(reader.read_row(line, text))
        except RowError as error:
            if not skip_invalid:
                raise ManifestError(f"{path}:{line}: {error.message}", error.kind) from None
            skipped.append((line, error.message))
            reasons[error.kind] += 1
    if not rows:
        first_line, first_message = skipped[0]
        raise ManifestError(f"{path}: no valid rows; {len(skipped)} skipped (first, line "
                            f"{first_line}: {first_message})")
    class_names = (reader.labels or _infer_labels(rows, task)) if task.has_classes else ()
    return Manifest(path=path, rows=rows, skipped=skipped, labels=class_names,
                    skipped_reasons=dict(reasons))


def read_manifest_for_config(path: str, data_config, labels=None) -> Manifest:
    """Reads a manifest with the settings of a DataConfig.

    Args:
        path: manifest file.
        data_config: a tfmm.config.DataConfig.
        labels: class names overriding data_config.labels (e.g. the training label set when
            reading a test manifest); None uses data_config.labels.

    Returns:
        The Manifest, as read_manifest returns it.
    """
    return read_manifest(
        path, task=data_config.task, modalities=data_config.modalities,
        optional_modalities=data_config.optional_modalities,
        labels=data_config.labels if labels is None else labels,
        num_targets=data_config.num_targets, audio_sample_rate=data_config.audio_sample_rate,
        resample_audio=data_config.resample_audio, skip_invalid=data_config.skip_invalid)


def _check_arguments(task, modalities, optional_modalities, num_targets):
    if not get_task(task).reads_jsonl_manifests:
        raise ValueError(f"task {get_task(task).name!r} reads its own data format, not a JSONL "
                         "manifest")
    if not modalities:
        raise ValueError(f"modalities must name at least one of {list(MODALITIES)}. Received: []")
    for name in modalities:
        if name not in MODALITIES:
            raise ValueError(f"modalities must be among {list(MODALITIES)}. Received: {name!r}")
    for name in optional_modalities:
        if name not in modalities:
            raise ValueError(f"optional_modalities must be a subset of {list(modalities)}. "
                             f"Received: {name!r}")
    if isinstance(num_targets, bool) or not isinstance(num_targets, int) or num_targets < 1:
        raise ManifestError(f"data.num_targets must be an integer >= 1 (numbers per regression "
                            f"target); received {num_targets!r}")


def _read_lines(path):
    """Yields (line number, text) for each non-blank line; raises ManifestError for the file."""
    if not tf.io.gfile.exists(path):
        raise ManifestError(f"{path}: manifest file not found")
    if tf.io.gfile.isdir(path):
        raise ManifestError(f"{path}: manifest path is a folder, expected a JSONL file")
    with tf.io.gfile.GFile(path, "rb") as handle:
        content = handle.read()
    if content.startswith(b"\xef\xbb\xbf"):
        content = content[3:]
    lines = [(number, line) for number, line in enumerate(content.split(b"\n"), start=1)
             if line.strip()]
    if not lines:
        raise ManifestError(f"{path}: manifest is empty (no rows)")
    yield from lines


def _infer_labels(rows, task) -> tuple:
    """Sorted unique labels of the rows (see `sort_labels`)."""
    return sort_labels({name for row in rows for name in task.label_names(row)})


def sort_labels(names) -> tuple:
    """A label vocabulary's order: numerically when all are integers, else lexicographically
    (manifests and packed shards number their classes the same way)."""
    if names and all(re.fullmatch(r"[+-]?\d+", name) for name in names):
        return tuple(sorted(names, key=lambda name: (int(name), name)))
    return tuple(sorted(names))
