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
import json
import math
import os
import re
from typing import Any, Optional

import tensorflow as tf
from tfmm.data.media_checks import BAD_AUDIO, MediaError, check_image, read_wav_header
from tfmm.errors import UserError

MODALITIES = ("text", "image", "audio")
TASKS = ("multiclass", "multilabel", "regression")
MAX_LABELS_SHOWN = 20

# Short reason kinds, used to group skipped rows in `Manifest.summary()`.
INVALID_JSON = "invalid JSON"
MISSING_FIELD = "missing field"
WRONG_TYPE = "wrong type"
MISSING_FILE = "missing file"
EMPTY_VALUE = "empty value"
DUPLICATE_ID = "duplicate id"
WRONG_SAMPLE_RATE = "wrong sample rate"
UNKNOWN_LABEL = "unknown label"


_KNOWN_FIELDS = ("id", "text", "image", "audio", "label", "target")


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


# A problem with one row (kind, message); the reader adds the file and line.
_RowError = MediaError


@dataclasses.dataclass(frozen=True)
class ManifestRow:
    """One valid manifest row.

    Attributes:
        line: 1-based line number in the manifest file.
        id: the row's "id", or its line number as a string.
        text: the text, or None when the row lacks it (or text is not a configured modality).
        image: resolved image path, or None.
        audio: resolved WAV path, or None.
        label: class name (multiclass), tuple of class names (multilabel), None (regression).
        target: tuple of floats (regression), else None.
        audio_sample_rate: sample rate read from the WAV header, or None without audio.
        extra: the row's other fields (e.g. a question type to break a report down by).
    """

    line: int
    id: str
    text: Optional[str]
    image: Optional[str]
    audio: Optional[str]
    label: Any
    target: Optional[tuple]
    audio_sample_rate: Optional[int]
    extra: dict = dataclasses.field(default_factory=dict, compare=False)


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
        task: "multiclass", "multilabel" or "regression".
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
    reader = _RowReader(
        directory=os.path.dirname(path), task=task, modalities=tuple(modalities),
        optional_modalities=tuple(optional_modalities),
        labels=tuple(str(label) for label in labels), num_targets=num_targets,
        audio_sample_rate=audio_sample_rate, resample_audio=resample_audio,
        label_field=label_field, target_field=target_field)
    rows, skipped, reasons = [], [], collections.Counter()
    for line, text in _read_lines(path):
        try:
            rows.append(reader.read_row(line, text))
        except _RowError as error:
            if not skip_invalid:
                raise ManifestError(f"{path}:{line}: {error.message}", error.kind) from None
            skipped.append((line, error.message))
            reasons[error.kind] += 1
    if not rows:
        first_line, first_message = skipped[0]
        raise ManifestError(f"{path}: no valid rows; {len(skipped)} skipped (first, line "
                            f"{first_line}: {first_message})")
    if task == "regression":
        class_names = ()
    else:
        class_names = reader.labels or _infer_labels(rows, task)
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
    if task not in TASKS:
        raise ValueError(f"task must be one of {list(TASKS)}. Received: {task!r}")
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
    """Sorted unique labels: numerically when all are integers, else lexicographically."""
    if task == "multilabel":
        names = {name for row in rows for name in row.label}
    else:
        names = {row.label for row in rows}
    if names and all(re.fullmatch(r"[+-]?\d+", name) for name in names):
        return tuple(sorted(names, key=lambda name: (int(name), name)))
    return tuple(sorted(names))


def _is_absent(value) -> bool:
    """A modality a row lacks: the field is missing, null or an empty (or blank) string."""
    return value is None or (isinstance(value, str) and not value.strip())


def _type_name(value) -> str:
    return "null" if value is None else type(value).__name__


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


class _RowReader:
    """Parses and checks rows; caches media checks per resolved path."""

    def __init__(self, *, directory, task, modalities, optional_modalities, labels,
                 num_targets, audio_sample_rate, resample_audio, label_field, target_field):
        self.directory = directory
        self.task = task
        self.modalities = modalities
        self.optional_modalities = optional_modalities
        self.labels = labels
        self.known_labels = frozenset(labels)
        self.num_targets = num_targets
        self.audio_sample_rate = audio_sample_rate
        self.resample_audio = resample_audio
        self.label_field = label_field
        self.target_field = target_field
        self.image_errors = {}  # resolved path -> _RowError or None.
        self.audio_results = {}  # resolved path -> sample rate or _RowError.
        self.id_lines = {}  # explicit id -> line of its first valid row.

    def read_row(self, line: int, raw: bytes) -> ManifestRow:
        """Parses one manifest line into a ManifestRow; raises _RowError when invalid."""
        record = _parse_json_object(raw)
        present = [name for name in self.modalities if not _is_absent(record.get(name))]
        for name in self.modalities:
            if name not in present and name not in self.optional_modalities:
                if record.get(name) is not None:
                    raise _RowError(EMPTY_VALUE, f'field "{name}" is empty, but {name} is a '
                                                 "required modality (list it in "
                                                 "data.optional_modalities to allow rows "
                                                 "without it)")
                raise _RowError(MISSING_FIELD, f'missing required field "{name}"')
        if not present:
            raise _RowError(MISSING_FIELD, "row has none of the configured modalities "
                                           f"{list(self.modalities)}")
        text = self._read_text(record) if "text" in present else None
        image = self._read_image(record) if "image" in present else None
        audio, sample_rate = self._read_audio(record) if "audio" in present else (None, None)
        if self.task == "regression":
            label, target = None, self._read_target(record)
        else:
            label, target = self._read_label(record), None
        row_id = self._read_unique_id(record, line)
        return ManifestRow(line=line, id=row_id, text=text, image=image,
                           audio=audio, label=label, target=target,
                           audio_sample_rate=sample_rate,
                           extra={key: value for key, value in record.items()
                                  if key not in _KNOWN_FIELDS})

    def _read_unique_id(self, record, line) -> str:
        """The row's id; an explicit "id" seen on an earlier valid row is an error."""
        row_id = _read_id(record, line)
        if record.get("id") is not None:
            if row_id in self.id_lines:
                raise _RowError(DUPLICATE_ID, f'duplicate id "{row_id}" (first on line '
                                              f"{self.id_lines[row_id]})")
            self.id_lines[row_id] = line
        return row_id

    def _read_text(self, record) -> str:
        text = record["text"]
        if not isinstance(text, str):
            raise _RowError(WRONG_TYPE, f'field "text" must be a string; received '
                                        f"{_type_name(text)} {text!r}")
        return text

    def _resolve(self, record, field) -> tuple:
        """Returns (path as written, resolved path) of a media field."""
        written = record[field]
        if not isinstance(written, str) or not written:
            raise _RowError(WRONG_TYPE, f'field "{field}" must be a non-empty path string; '
                                        f"received {_type_name(written)} {written!r}")
        if os.path.isabs(written) or "://" in written:
            return written, written
        return written, os.path.join(self.directory, written)

    def _check_exists(self, field, written, resolved):
        if not tf.io.gfile.exists(resolved):
            shown = written if written == resolved else f"{written} (resolved: {resolved})"
            raise _RowError(MISSING_FILE, f"{field} file not found: {shown}")

    def _read_image(self, record) -> str:
        written, resolved = self._resolve(record, "image")
        if resolved not in self.image_errors:
            try:
                self._check_exists("image", written, resolved)
                check_image(written, resolved)
                self.image_errors[resolved] = None
            except _RowError as error:
                self.image_errors[resolved] = error
        if self.image_errors[resolved] is not None:
            raise self.image_errors[resolved]
        return resolved

    def _read_audio(self, record) -> tuple:
        written, resolved = self._resolve(record, "audio")
        if resolved not in self.audio_results:
            try:
                self._check_exists("audio", written, resolved)
                self.audio_results[resolved] = self._check_audio(written, resolved)
            except _RowError as error:
                self.audio_results[resolved] = error
        result = self.audio_results[resolved]
        if isinstance(result, _RowError):
            raise result
        return resolved, result

    def _check_audio(self, written, resolved) -> int:
        """Checks a WAV file; returns its sample rate."""
        sample_width, frames, sample_rate = read_wav_header(written, resolved)
        if sample_width != 2:
            raise _RowError(BAD_AUDIO, "audio file must be 16-bit PCM WAV; received "
                                       f"{8 * sample_width}-bit PCM: {written}")
        if frames == 0:
            raise _RowError(BAD_AUDIO, f"audio file has no samples: {written}")
        if sample_rate != self.audio_sample_rate and not self.resample_audio:
            raise _RowError(WRONG_SAMPLE_RATE,
                            f"audio sample rate is {sample_rate} Hz, expected "
                            f"{self.audio_sample_rate} Hz (set data.resample_audio=true to "
                            f"resample): {written}")
        return sample_rate

    def _read_label(self, record):
        if record.get(self.label_field) is None:
            raise _RowError(MISSING_FIELD, f'missing required field "{self.label_field}"')
        value = record[self.label_field]
        if self.task == "multilabel":
            label = self._read_label_list(value)
        else:
            label = self._read_label_name(value, f'field "{self.label_field}"')
        for name in (label if self.task == "multilabel" else (label,)):
            self._check_known(name)
        return label

    def _read_label_list(self, value) -> tuple:
        if not isinstance(value, list):
            raise _RowError(WRONG_TYPE, f'field "{self.label_field}" must be a list of strings '
                                        f"(multilabel); received {_type_name(value)} {value!r}")
        names = [self._read_label_name(item, f'items of "{self.label_field}"') for item in value]
        return tuple(dict.fromkeys(names))

    @staticmethod
    def _read_label_name(value, description) -> str:
        if isinstance(value, str) and not value.strip():
            raise _RowError(EMPTY_VALUE, f"{description} must not be an empty string; received "
                                         f"{value!r}")
        if isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool)):
            return str(value)
        raise _RowError(WRONG_TYPE, f"{description} must be a string or an integer; received "
                                    f"{_type_name(value)} {value!r}")

    def _check_known(self, name):
        if self.known_labels and name not in self.known_labels:
            shown = list(self.labels[:MAX_LABELS_SHOWN])
            more = len(self.labels) - len(shown)
            listing = str(shown)[:-1] + (f", ... ({more} more)]" if more else "]")
            raise _RowError(UNKNOWN_LABEL, f'unknown label "{name}"; known labels: {listing}')

    def _read_target(self, record) -> tuple:
        field = self.target_field
        if record.get(field) is None:
            raise _RowError(MISSING_FIELD, f'missing required field "{field}"')
        value = record[field]
        values = value if isinstance(value, list) else [value]
        for item in values:
            if not _is_number(item) or not math.isfinite(item):
                raise _RowError(WRONG_TYPE, f'field "{field}" must be a finite number or a list '
                                            f"of finite numbers; received {value!r}")
        if len(values) != self.num_targets:
            raise _RowError(WRONG_TYPE, f'field "{field}" must hold {self.num_targets} '
                                        f"number(s); received {len(values)}: {value!r}")
        return tuple(float(item) for item in values)


def _parse_json_object(raw: bytes) -> dict:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise _RowError(INVALID_JSON, f"not valid UTF-8 text ({error.reason} at byte "
                                      f"{error.start})") from None
    try:
        record = json.loads(text)
    except json.JSONDecodeError as error:
        message = f"not valid JSON: {error.msg} (column {error.colno})"
        raise _RowError(INVALID_JSON, message) from None
    if not isinstance(record, dict):
        raise _RowError(INVALID_JSON, "expected a JSON object; received "
                                      f"{type(record).__name__}")
    return record


def _read_id(record, line) -> str:
    value = record.get("id")
    if value is None:
        return str(line)
    if isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool)):
        return str(value)
    raise _RowError(WRONG_TYPE, f'field "id" must be a string or an integer; received '
                                f"{_type_name(value)} {value!r}")
