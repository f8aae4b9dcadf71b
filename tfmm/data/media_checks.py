"""Checks of one manifest's image or WAV file, before training reads it.

An image's size is read from its header (PNG, JPEG, GIF, BMP, WebP) before it is decoded, so a file
that declares enormous dimensions (a decompression bomb: a few kilobytes that decode to
gigabytes) is rejected without being decoded. A WAV file's header is read with `wave`.

Both functions raise `MediaError(kind, message)`; the manifest reader adds the file and line.
"""

import struct
import wave
from typing import Optional

import tensorflow as tf

# Largest image tfmm decodes, in pixels (width x height): 50 megapixels, about 150 MB as 8-bit
# RGB. Larger images are rejected from their header, before decoding.
MAX_IMAGE_PIXELS = 50_000_000

BAD_IMAGE = "undecodable image"
LARGE_IMAGE = "image too large"
BAD_AUDIO = "unreadable audio"

# JPEG start-of-frame markers (they hold the size); C4, C8 and CC are other segments.
_JPEG_FRAME_MARKERS = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}


class MediaError(Exception):
    """A problem with one media file; `kind` groups skipped rows in the manifest summary."""

    def __init__(self, kind: str, message: str):
        super().__init__(message)
        self.kind = kind
        self.message = message


def image_size_from_header(content: bytes) -> Optional[tuple]:
    """(width, height) declared by a PNG, JPEG, GIF, BMP or WebP header, without decoding.

    Args:
        content: the file's bytes (only the header is read).

    Returns:
        (width, height), or None for another format or a header too short to read.
    """
    try:
        if content.startswith(b"\x89PNG\r\n\x1a\n") and content[12:16] == b"IHDR":
            return struct.unpack(">II", content[16:24])
        if content[:6] in (b"GIF87a", b"GIF89a"):
            return struct.unpack("<HH", content[6:10])
        if content.startswith(b"BM"):
            if struct.unpack("<I", content[14:18])[0] == 12:  # OS/2 header: 16-bit sizes
                return struct.unpack("<HH", content[18:22])
            width, height = struct.unpack("<ii", content[18:26])
            return abs(width), abs(height)  # a negative height means rows stored top-down
        if content.startswith(b"\xff\xd8"):
            return _jpeg_size(content)
        if content[:4] == b"RIFF" and content[8:12] == b"WEBP":
            return _webp_size(content)
    except struct.error:
        return None
    return None


def _webp_size(content: bytes) -> Optional[tuple]:
    """The canvas of an extended (VP8X), lossless (VP8L) or lossy (VP8) WebP file."""
    chunk = content[12:16]
    if chunk == b"VP8X":
        width = int.from_bytes(content[24:27], "little") + 1
        return width, int.from_bytes(content[27:30], "little") + 1
    if chunk == b"VP8L":
        bits = int.from_bytes(content[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8 ":
        width, height = struct.unpack("<HH", content[26:30])
        return width & 0x3FFF, height & 0x3FFF
    return None


def _jpeg_size(content: bytes) -> Optional[tuple]:
    position = 2
    while position + 4 <= len(content):
        if content[position] != 0xFF:
            return None
        marker = content[position + 1]
        if marker == 0xFF:  # fill byte
            position += 1
            continue
        if marker in (0x01,) or 0xD0 <= marker <= 0xD9:  # markers without a length
            position += 2
            continue
        length = struct.unpack(">H", content[position + 2:position + 4])[0]
        if marker in _JPEG_FRAME_MARKERS:
            height, width = struct.unpack(">HH", content[position + 5:position + 9])
            return width, height
        position += 2 + length
    return None


def check_image(written: str, resolved: str, max_pixels: Optional[int] = None) -> None:
    """Checks that an image is a JPEG/PNG/GIF/BMP of at most `max_pixels` pixels that decodes.

    Args:
        written: the path as the manifest gives it (for messages).
        resolved: the path to read.
        max_pixels: pixel limit; None uses MAX_IMAGE_PIXELS.

    Raises:
        MediaError: unreadable, too large (from the header, before decoding) or undecodable.
    """
    limit = MAX_IMAGE_PIXELS if max_pixels is None else max_pixels
    try:
        with tf.io.gfile.GFile(resolved, "rb") as handle:
            content = handle.read()
    except (tf.errors.OpError, OSError):
        raise MediaError(BAD_IMAGE, f"image file cannot be read: {written}") from None
    size = image_size_from_header(content)
    if size is not None and size[0] * size[1] > limit:
        raise MediaError(LARGE_IMAGE, f"image header declares {size[0]}x{size[1]} pixels "
                                      f"({size[0] * size[1]}), more than the limit of {limit} "
                                      f"(tfmm.data.media_checks.MAX_IMAGE_PIXELS): {written}")
    try:
        tf.io.decode_image(content, channels=3, expand_animations=False)
    except tf.errors.OpError:
        raise MediaError(BAD_IMAGE, "image file is not a decodable JPEG/PNG/GIF/BMP image: "
                                    f"{written}") from None


def read_wav_header(written: str, resolved: str) -> tuple:
    """(bytes per sample, frames, sample rate) from a WAV file's RIFF header.

    Raises:
        MediaError: not a readable PCM WAV file, or a header declaring a sample rate of 0.
    """
    try:
        with tf.io.gfile.GFile(resolved, "rb") as handle:
            with wave.open(handle, "rb") as wav:
                header = wav.getsampwidth(), wav.getnframes(), wav.getframerate()
    except (wave.Error, EOFError, tf.errors.OpError, OSError) as error:
        reason = str(error) or type(error).__name__
        raise MediaError(BAD_AUDIO, f"audio file is not a readable PCM WAV file ({reason}): "
                                    f"{written}") from None
    if header[2] <= 0:
        raise MediaError(BAD_AUDIO, f"audio file's header declares a sample rate of {header[2]} "
                                    f"Hz: {written}")
    return header
