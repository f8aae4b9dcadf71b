"""PNG, WAV and GIF files for the tests, written with zlib, the wave module and Pillow (GIF; no
TensorFlow).

The one home of the tests' image and audio bytes: `png_bytes` / `wav_bytes` make valid files,
`write_png` / `write_wav` put them on disk, `png_header` declares a size without pixels (for the
decompression-bomb checks) and `with_wav_chunk` adds a chunk the 44-byte layout has not.
"""

import io
import os
import struct
import wave
import zlib

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    return (struct.pack(">I", len(payload)) + kind + payload
            + struct.pack(">I", zlib.crc32(kind + payload) & 0xFFFFFFFF))


def png_header(width: int, height: int) -> bytes:
    """The signature and an IHDR chunk of an 8-bit RGB PNG declaring width x height; no pixels.

    Args:
        width, height: the declared size (may be far larger than any real image).
    """
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return PNG_SIGNATURE + _png_chunk(b"IHDR", header)


def png_bytes(pixels) -> bytes:
    """A PNG (8-bit grey or RGB) of a uint8 array [H, W], [H, W, 1] or [H, W, 3]."""
    import numpy as np

    pixels = np.asarray(pixels, np.uint8)
    if pixels.ndim == 3 and pixels.shape[-1] == 1:
        pixels = pixels[..., 0]
    height, width = pixels.shape[:2]
    colour_type = 0 if pixels.ndim == 2 else 2
    raw = b"".join(b"\x00" + pixels[row].tobytes() for row in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, colour_type, 0, 0, 0)
    return (PNG_SIGNATURE + _png_chunk(b"IHDR", header) + _png_chunk(b"IDAT", zlib.compress(raw))
            + _png_chunk(b"IEND", b""))


def wav_bytes(samples, sample_rate: int = 8000, channels: int = 1, sample_width: int = 2) -> bytes:
    """A PCM WAV of float samples in [-1, 1].

    Args:
        samples: shape [N] (mono) or [N, channels] (written interleaved); N may be 0.
        sample_rate: frames per second in the header.
        channels: channels per frame.
        sample_width: bytes per sample: 1 (unsigned 8-bit), 2 (16-bit) or 4 (32-bit).
    """
    import numpy as np

    samples = np.asarray(samples, np.float32).reshape(-1)
    scale = 2 ** (8 * sample_width - 1) - 1
    dtype = {1: np.uint8, 2: np.int16, 4: np.int32}[sample_width]
    values = samples * scale + (128 if sample_width == 1 else 0)
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as handle:
        handle.setnchannels(channels)
        handle.setsampwidth(sample_width)
        handle.setframerate(sample_rate)
        handle.writeframes(values.astype(dtype).tobytes())
    return buffer.getvalue()


def with_wav_chunk(data: bytes, chunk: bytes, before: bytes = b"data") -> bytes:
    """The WAV `data` (as `wav_bytes` writes it) with one more chunk placed before its "fmt " or
    "data" chunk (readers must walk the chunks, not assume the 44-byte layout).

    Args:
        chunk: the whole chunk: id, little-endian size, payload.
        before: b"fmt " or b"data".
    """
    position = {b"fmt ": 12, b"data": 36}[before]
    body = data[12:position] + chunk + data[position:]
    return b"RIFF" + (4 + len(body)).to_bytes(4, "little") + b"WAVE" + body


def _write(path: str, content: bytes) -> str:
    path = os.fspath(path)
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path, "wb") as handle:
        handle.write(content)
    return path


def write_png(path, pixels=None, size: int = 4) -> str:
    """Writes `png_bytes(pixels)` (default: a grey size x size RGB square) to `path`, making its
    folder; returns the path."""
    import numpy as np

    if pixels is None:
        pixels = np.full((size, size, 3), 128, np.uint8)
    return _write(path, png_bytes(pixels))


def write_wav(path, samples=None, frames: int = 80, sample_rate: int = 8000, channels: int = 1,
              sample_width: int = 2) -> str:
    """Writes `wav_bytes` to `path`, making its folder; returns the path.

    Args:
        samples: [N] or [N, channels]; default `frames` frames of a quiet constant level.
        frames, sample_rate, channels, sample_width: as in `wav_bytes`.
    """
    import numpy as np

    if samples is None:
        samples = np.full((frames, channels), 0.01, np.float32)
    return _write(path, wav_bytes(samples, sample_rate, channels, sample_width))


def gif_bytes(frames) -> bytes:
    """An animated GIF of uint8 frames [N, H, W] (grey) or [N, H, W, 3] (RGB), written with
    Pillow. Lossless when the frames use at most 256 colours together; consecutive frames must
    differ (Pillow merges equal ones)."""
    import numpy as np
    from PIL import Image

    images = [Image.fromarray(np.asarray(frame, np.uint8)) for frame in frames]
    buffer = io.BytesIO()
    images[0].save(buffer, format="GIF", save_all=True, append_images=images[1:], duration=100,
                   loop=0)
    return buffer.getvalue()


def write_gif(path, frames) -> str:
    """Writes `gif_bytes(frames)` to `path`, making its folder; returns the path."""
    return _write(path, gif_bytes(frames))
