"""Writes that a crash cannot leave half-done: write to a temporary name beside, then rename.

Every file a run folder holds besides checkpoints (config.json, run_info.json, model.keras,
reports, plots) goes through `write_bytes` / `write_json` / `atomic_path`; a SavedModel version
folder goes through `atomic_directory`, so TF Serving, which loads numbered folders only, never
sees a half-written version. A full disk becomes `DiskFullError` ("<path>: no space left on
device"), a `UserError` the command-line tools print as one line.

Local paths use `os.replace` (atomic on POSIX); other file systems (gs://) go through
`tf.io.gfile`, whose rename is a copy there.
"""

import contextlib
import errno
import json
import os
import shutil

from tfmm.errors import UserError

PARTIAL_MARK = ".partial"  # temporary names: ".<name>.partial[<suffix>]" in the same folder


class DiskFullError(UserError):
    """The disk filled up while writing `path`."""

    def __init__(self, path: str):
        super().__init__(f"{path}: no space left on device")
        self.path = path


def is_disk_full(error: BaseException) -> bool:
    """True for an OSError with ENOSPC, or a TensorFlow error that says the disk is full."""
    if isinstance(error, OSError) and error.errno == errno.ENOSPC:
        return True
    return type(error).__module__.startswith("tensorflow") and \
        "no space left on device" in str(error).lower()


def temporary_path(path: str) -> str:
    """A hidden name beside `path` with the same extension (Keras checks ".keras")."""
    folder, name = os.path.split(path)
    stem, extension = os.path.splitext(name)
    return os.path.join(folder, f".{stem}{PARTIAL_MARK}{extension}")


def _is_local(path: str) -> bool:
    return "://" not in path


def _remove(path: str):
    try:
        if _is_local(path):
            if os.path.isdir(path):
                shutil.rmtree(path)
            elif os.path.lexists(path):
                os.remove(path)
        else:
            import tensorflow as tf

            if tf.io.gfile.isdir(path):
                tf.io.gfile.rmtree(path)
            elif tf.io.gfile.exists(path):
                tf.io.gfile.remove(path)
    except OSError:
        pass


def _rename(source: str, target: str):
    if _is_local(target):
        os.replace(source, target)
    else:
        import tensorflow as tf

        tf.io.gfile.rename(source, target, overwrite=True)


def _write(path: str, data: bytes):
    """Writes the bytes to `path` (the one place file contents are written)."""
    if _is_local(path):
        with open(path, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
    else:
        import tensorflow as tf

        with tf.io.gfile.GFile(path, "wb") as handle:
            handle.write(data)


@contextlib.contextmanager
def _disk_full_as_user_error(path: str):
    try:
        yield
    except Exception as error:
        if is_disk_full(error):
            raise DiskFullError(path) from None
        raise


@contextlib.contextmanager
def atomic_path(path: str):
    """Yields a temporary path beside `path`; renames it over `path` when the block succeeds.

    On any error the temporary file is removed and `path` keeps its old content (or stays
    absent); a full disk is raised as `DiskFullError`.

    Example:
        with atomic_path("run/model.keras") as partial:
            model.save(partial)
    """
    partial = temporary_path(path)
    try:
        with _disk_full_as_user_error(path):
            yield partial
            _rename(partial, path)
    finally:
        _remove(partial)


def write_bytes(path: str, data: bytes):
    """Writes `data` to `path` atomically (see `atomic_path`)."""
    with atomic_path(path) as partial:
        _write(partial, data)


def write_json(path: str, value, indent: int = 2):
    """Writes `value` as JSON to `path` atomically."""
    write_bytes(path, (json.dumps(value, indent=indent) + "\n").encode("utf-8"))


def jsonl_bytes(rows) -> bytes:
    """The UTF-8 bytes of `rows` (dicts) as JSON lines, one row per line."""
    return "".join(json.dumps(row) + "\n" for row in rows).encode("utf-8")


def write_jsonl(path: str, rows):
    """Writes `rows` (dicts) to `path` as JSON lines, atomically (a manifest or predictions)."""
    write_bytes(path, jsonl_bytes(rows))


@contextlib.contextmanager
def atomic_directory(path: str):
    """Yields a temporary folder beside `path`; it replaces `path` when the block succeeds.

    For SavedModel versions (`export/1`): the temporary name is not a number, so TF Serving
    ignores it until the rename. A folder already at `path` is moved aside first and deleted
    after the rename.
    """
    partial = temporary_path(path)
    previous = partial + ".previous"
    _remove(partial)
    try:
        with _disk_full_as_user_error(path):
            yield partial
            exists = os.path.exists(path) if _is_local(path) else _gfile_exists(path)
            if exists:
                _rename(path, previous)
            _rename(partial, path)
    finally:
        _remove(partial)
        _remove(previous)


def _gfile_exists(path: str) -> bool:
    import tensorflow as tf

    return tf.io.gfile.exists(path)
