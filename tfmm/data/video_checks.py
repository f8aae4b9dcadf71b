"""Checks of one manifest row's video before training reads it, and the frame files it stands for.

A manifest's "video" field is one of
    - a path to an animated GIF,
    - a path to a folder of numbered frame images (PNG/JPEG/BMP), taken in numeric order
      (frame_2 before frame_10),
    - a JSON list of frame image paths, in order.
Relative paths resolve against the manifest's folder. `video_frame_paths` returns the files the
data pipeline reads: (gif,) for a GIF, the sorted frames otherwise; it raises `MediaError(kind,
message)` for a missing file, an empty folder or list, an undecodable GIF or frame, or frames of
inconsistent sizes (the manifest reader adds the file and line).
"""

import os
import re

import tensorflow as tf

from tfmm.data.media_checks import (BAD_IMAGE, MAX_IMAGE_PIXELS, MediaError,
                                    image_size_from_header)

BAD_VIDEO = "undecodable video"
EMPTY_VIDEO = "empty video"
FRAME_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp")
GIF_SIGNATURES = (b"GIF87a", b"GIF89a")


def natural_sort_key(name: str) -> tuple:
    """Sorts names with numbers by their value: frame_2 before frame_10."""
    return tuple((0, int(part), "") if part.isdigit() else (1, 0, part)
                 for part in re.split(r"(\d+)", name))


def video_frame_paths(value, directory: str) -> tuple:
    """The files of one video field, checked: (gif path,) or the frame paths in order.

    Args:
        value: the row's "video" value: a path string or a list of path strings.
        directory: the folder relative paths resolve against.

    Returns:
        tuple of resolved paths.

    Raises:
        MediaError: the video is missing, empty, undecodable or has frames of different sizes.
    """
    if isinstance(value, list):
        if not value:
            raise MediaError(EMPTY_VIDEO, 'field "video" is an empty list of frame paths')
        for item in value:
            if not isinstance(item, str) or not item.strip():
                raise MediaError("wrong type", 'items of "video" must be non-empty frame path '
                                               f"strings; received {item!r}")
        paths = [(item, _resolve(item, directory)) for item in value]
        for written, resolved in paths:
            _check_exists(written, resolved)
        if len(paths) == 1 and _read(*paths[0])[:6] in GIF_SIGNATURES:
            return _checked_gif(*paths[0])
        return _checked_frames(paths, f"video frame list {value[0]!r}...")
    if not isinstance(value, str):
        raise MediaError("wrong type", 'field "video" must be a GIF path, a frame folder or a '
                                       f"list of frame paths; received {type(value).__name__} "
                                       f"{value!r}")
    resolved = _resolve(value, directory)
    _check_exists(value, resolved)
    if tf.io.gfile.isdir(resolved):
        names = sorted((name for name in tf.io.gfile.listdir(resolved)
                        if name.lower().endswith(FRAME_EXTENSIONS)), key=natural_sort_key)
        if not names:
            raise MediaError(EMPTY_VIDEO, "video folder holds no frame images "
                                          f"({'/'.join(FRAME_EXTENSIONS)}): {value}")
        return _checked_frames([(f"{value.rstrip('/')}/{name}", os.path.join(resolved, name))
                                for name in names], value)
    return _checked_gif(value, resolved)


def _resolve(written: str, directory: str) -> str:
    if os.path.isabs(written) or "://" in written:
        return written
    return os.path.join(directory, written)


def _check_exists(written, resolved):
    if not tf.io.gfile.exists(resolved):
        shown = written if written == resolved else f"{written} (resolved: {resolved})"
        raise MediaError("missing file", f"video file not found: {shown}")


def _read(written, resolved) -> bytes:
    try:
        with tf.io.gfile.GFile(resolved, "rb") as handle:
            return handle.read()
    except (tf.errors.OpError, OSError):
        raise MediaError(BAD_VIDEO, f"video file cannot be read: {written}") from None


def _check_pixels(written, content, frames=1):
    size = image_size_from_header(content)
    if size is not None and size[0] * size[1] * frames > MAX_IMAGE_PIXELS:
        raise MediaError(BAD_VIDEO, f"video header declares {size[0]}x{size[1]} pixels per frame"
                                    f", more than the limit of {MAX_IMAGE_PIXELS} "
                                    f"(tfmm.data.media_checks.MAX_IMAGE_PIXELS): {written}")


def _checked_gif(written, resolved) -> tuple:
    content = _read(written, resolved)
    if content[:6] not in GIF_SIGNATURES:
        raise MediaError(BAD_VIDEO, "video file is not an animated GIF (MP4 and other "
                                    "containers: convert them to a GIF or to numbered frame "
                                    f"images, see README \"Video\"): {written}")
    _check_pixels(written, content)
    try:
        tf.io.decode_gif(content)
    except tf.errors.OpError:
        raise MediaError(BAD_VIDEO, f"video file is not a decodable GIF: {written}") from None
    return (resolved,)


def _checked_frames(paths, shown) -> tuple:
    """Decodes every frame; all must be images of one size."""
    first_size = None
    for written, resolved in paths:
        content = _read(written, resolved)
        _check_pixels(written, content)
        try:
            shape = tf.io.decode_image(content, channels=3, expand_animations=False).shape
        except tf.errors.OpError:
            raise MediaError(BAD_IMAGE, "video frame is not a decodable PNG/JPEG/BMP image: "
                                        f"{written}") from None
        size = (int(shape[1]), int(shape[0]))
        if first_size is None:
            first_size, first_written = size, written
        elif size != first_size:
            raise MediaError(BAD_VIDEO, f"video frames of {shown} have different sizes: "
                                        f"{first_written} is {first_size[0]}x{first_size[1]}, "
                                        f"{written} is {size[0]}x{size[1]}")
    return tuple(resolved for _, resolved in paths)
