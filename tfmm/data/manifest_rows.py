"""Parses and checks one manifest row: fields, types, media files, labels, targets, ids.

`RowReader.read_row` turns one JSONL line into a `ManifestRow` or raises `RowError(kind,
message)`; `tfmm.data.manifest.read_manifest` adds the file and line and collects the rows.
"""

import dataclasses
import json
import math
import os
from typing import Any, Optional

import tensorflow as tf
from tfmm.data.media_checks import BAD_AUDIO, MediaError, check_image, read_wav_header
from tfmm.data.video_checks import video_frame_paths

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


_KNOWN_FIELDS = ("id", "text", "image", "audio", "video", "label", "target")

# A problem with one row (kind, message); the manifest reader adds the file and line.
RowError = MediaError


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
        video: resolved files of the row's video, or None: (gif,) or the frame images in order
            (`tfmm.data.video_checks`).
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
    video: Optional[tuple] = None



def _is_absent(value) -> bool:
    """A modality a row lacks: the field is missing, null or an empty (or blank) string."""
    return value is None or (isinstance(value, str) and not value.strip())


def _type_name(value) -> str:
    return "null" if value is None else type(value).__name__


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


class RowReader:
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
        self.image_errors = {}  # resolved path -> RowError or None.
        self.audio_results = {}  # resolved path -> sample rate or RowError.
        self.video_results = {}  # the field's JSON -> frame paths or RowError.
        self.id_lines = {}  # explicit id -> line of its first valid row.

    def read_row(self, line: int, raw: bytes) -> ManifestRow:
        """Parses one manifest line into a ManifestRow; raises RowError when invalid."""
        record = _parse_json_object(raw)
        present = [name for name in self.modalities if not _is_absent(record.get(name))]
        for name in self.modalities:
            if name not in present and name not in self.optional_modalities:
                if record.get(name) is not None:
                    raise RowError(EMPTY_VALUE, f'field "{name}" is empty, but {name} is a '
                                                 "required modality (list it in "
                                                 "data.optional_modalities to allow rows "
                                                 "without it)")
                raise RowError(MISSING_FIELD, f'missing required field "{name}"')
        if not present:
            raise RowError(MISSING_FIELD, "row has none of the configured modalities "
                                           f"{list(self.modalities)}")
        text = self._read_text(record) if "text" in present else None
        image = self._read_image(record) if "image" in present else None
        audio, sample_rate = self._read_audio(record) if "audio" in present else (None, None)
        video = self._read_video(record) if "video" in present else None
        label, target = self.task.read_answer(self, record)
        row_id = self._read_unique_id(record, line)
        return ManifestRow(line=line, id=row_id, text=text, image=image,
                           audio=audio, label=label, target=target,
                           audio_sample_rate=sample_rate, video=video,
                           extra={key: value for key, value in record.items()
                                  if key not in _KNOWN_FIELDS})

    def _read_unique_id(self, record, line) -> str:
        """The row's id; an explicit "id" seen on an earlier valid row is an error."""
        row_id = _read_id(record, line)
        if record.get("id") is not None:
            if row_id in self.id_lines:
                raise RowError(DUPLICATE_ID, f'duplicate id "{row_id}" (first on line '
                                              f"{self.id_lines[row_id]})")
            self.id_lines[row_id] = line
        return row_id

    def _read_text(self, record) -> str:
        text = record["text"]
        if not isinstance(text, str):
            raise RowError(WRONG_TYPE, f'field "text" must be a string; received '
                                        f"{_type_name(text)} {text!r}")
        return text

    def _resolve(self, record, field) -> tuple:
        """Returns (path as written, resolved path) of a media field."""
        written = record[field]
        if not isinstance(written, str) or not written:
            raise RowError(WRONG_TYPE, f'field "{field}" must be a non-empty path string; '
                                        f"received {_type_name(written)} {written!r}")
        if os.path.isabs(written) or "://" in written:
            return written, written
        return written, os.path.join(self.directory, written)

    def _check_exists(self, field, written, resolved):
        if not tf.io.gfile.exists(resolved):
            shown = written if written == resolved else f"{written} (resolved: {resolved})"
            raise RowError(MISSING_FILE, f"{field} file not found: {shown}")

    def _read_image(self, record) -> str:
        written, resolved = self._resolve(record, "image")
        if resolved not in self.image_errors:
            try:
                self._check_exists("image", written, resolved)
                check_image(written, resolved)
                self.image_errors[resolved] = None
            except RowError as error:
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
            except RowError as error:
                self.audio_results[resolved] = error
        result = self.audio_results[resolved]
        if isinstance(result, RowError):
            raise result
        return resolved, result

    def _read_video(self, record) -> tuple:
        """The video's files (checked once per distinct field value)."""
        key = json.dumps(record["video"])
        if key not in self.video_results:
            try:
                self.video_results[key] = video_frame_paths(record["video"], self.directory)
            except RowError as error:
                self.video_results[key] = error
        result = self.video_results[key]
        if isinstance(result, RowError):
            raise result
        return result

    def _check_audio(self, written, resolved) -> int:
        """Checks a WAV file; returns its sample rate."""
        sample_width, frames, sample_rate = read_wav_header(written, resolved)
        if sample_width != 2:
            raise RowError(BAD_AUDIO, "audio file must be 16-bit PCM WAV; received "
                                       f"{8 * sample_width}-bit PCM: {written}")
        if frames == 0:
            raise RowError(BAD_AUDIO, f"audio file has no samples: {written}")
        if sample_rate != self.audio_sample_rate and not self.resample_audio:
            raise RowError(WRONG_SAMPLE_RATE,
                            f"audio sample rate is {sample_rate} Hz, expected "
                            f"{self.audio_sample_rate} Hz (set data.resample_audio=true to "
                            f"resample): {written}")
        return sample_rate

    def _label_value(self, record):
        if record.get(self.label_field) is None:
            raise RowError(MISSING_FIELD, f'missing required field "{self.label_field}"')
        return record[self.label_field]

    def read_label(self, record) -> str:
        """The row's one class name (multiclass), checked against the known labels."""
        label = self._read_label_name(self._label_value(record), f'field "{self.label_field}"')
        self._check_known(label)
        return label

    def read_label_list(self, record) -> tuple:
        """The row's class names (multilabel), without repeats, checked against known labels."""
        labels = self._read_label_list(self._label_value(record))
        for name in labels:
            self._check_known(name)
        return labels

    def _read_label_list(self, value) -> tuple:
        if not isinstance(value, list):
            raise RowError(WRONG_TYPE, f'field "{self.label_field}" must be a list of strings '
                                        f"(multilabel); received {_type_name(value)} {value!r}")
        names = [self._read_label_name(item, f'items of "{self.label_field}"') for item in value]
        return tuple(dict.fromkeys(names))

    @staticmethod
    def _read_label_name(value, description) -> str:
        if isinstance(value, str) and not value.strip():
            raise RowError(EMPTY_VALUE, f"{description} must not be an empty string; received "
                                         f"{value!r}")
        if isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool)):
            return str(value)
        raise RowError(WRONG_TYPE, f"{description} must be a string or an integer; received "
                                    f"{_type_name(value)} {value!r}")

    def _check_known(self, name):
        if self.known_labels and name not in self.known_labels:
            shown = list(self.labels[:MAX_LABELS_SHOWN])
            more = len(self.labels) - len(shown)
            listing = str(shown)[:-1] + (f", ... ({more} more)]" if more else "]")
            raise RowError(UNKNOWN_LABEL, f'unknown label "{name}"; known labels: {listing}')

    def read_target(self, record) -> tuple:
        """The row's regression target: num_targets finite numbers."""
        field = self.target_field
        if record.get(field) is None:
            raise RowError(MISSING_FIELD, f'missing required field "{field}"')
        value = record[field]
        values = value if isinstance(value, list) else [value]
        for item in values:
            if not _is_number(item) or not math.isfinite(item):
                raise RowError(WRONG_TYPE, f'field "{field}" must be a finite number or a list '
                                            f"of finite numbers; received {value!r}")
        if len(values) != self.num_targets:
            raise RowError(WRONG_TYPE, f'field "{field}" must hold {self.num_targets} '
                                        f"number(s); received {len(values)}: {value!r}")
        return tuple(float(item) for item in values)


def _parse_json_object(raw: bytes) -> dict:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise RowError(INVALID_JSON, f"not valid UTF-8 text ({error.reason} at byte "
                                      f"{error.start})") from None
    try:
        record = json.loads(text)
    except json.JSONDecodeError as error:
        message = f"not valid JSON: {error.msg} (column {error.colno})"
        raise RowError(INVALID_JSON, message) from None
    if not isinstance(record, dict):
        raise RowError(INVALID_JSON, "expected a JSON object; received "
                                      f"{type(record).__name__}")
    return record


def _read_id(record, line) -> str:
    value = record.get("id")
    if value is None:
        return str(line)
    if isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool)):
        return str(value)
    raise RowError(WRONG_TYPE, f'field "id" must be a string or an integer; received '
                                f"{_type_name(value)} {value!r}")
