"""Checks of the serving signature's raw inputs, so a bad request fails with a message that names
the input and the row (e.g. `audio[3]: not a RIFF/WAV file`) instead of a decoder's error, which
names neither (and for WAV files quotes the raw header bytes).

Each check is a `tf.debugging.Assert` on the whole batch: the first bad row fails the request
with an InvalidArgumentError whose message reads `assertion failed: [audio[3]: ...]`.
"""

import tensorflow as tf

from tfmm.data.media_checks import MAX_IMAGE_PIXELS
from tfmm.preprocessing.decoding import header_bytes, header_has_tag, little_endian_field

# Leading bytes of the image formats tf.io.decode_image reads (and WebP: RIFF....WEBP).
_IMAGE_SIGNATURES = (b"\x89PNG", b"\xff\xd8\xff", b"GIF8", b"BM")
_WAV_HEADER_BYTES = 36  # RIFF/WAVE and the 16 bytes of a "fmt " chunk's fields


def serving_input_checks(inputs: dict, required) -> list:
    """The assertions on a batch of raw serving inputs.

    Args:
        inputs: {"text" | "image" | "audio" | "video": tf.string [B]} ("video": GIF bytes); ""
            marks a missing modality.
        required: modalities that may not be missing ("" or, for text, blank).

    Returns:
        A list of assertion ops to run before the preprocessor.
    """
    names = sorted(inputs)
    checks = []
    sizes = {name: tf.size(inputs[name]) for name in names}
    first = names[0]
    for name in names[1:]:
        checks.append(tf.debugging.Assert(
            tf.equal(sizes[first], sizes[name]),
            [tf.strings.format(f"inputs {first} and {name} must have one entry per row; "
                               f"received {{}} and {{}} entries", (sizes[first], sizes[name]))]))
    for name in names:
        value = inputs[name]
        present = tf.strings.length(tf.strings.strip(value) if name == "text" else value) > 0
        if name in required:
            checks.append(_assert_no_bad_row(
                tf.logical_not(present),
                f"{name}[{{}}]: empty, but this model requires {name} (it was trained without "
                f"{name} in data.optional_modalities)"))
        if name == "audio":
            checks.extend(_audio_checks(value, present))
        elif name == "image":
            header = header_bytes(value, 30)
            known = tf.reduce_any(tf.stack([header_has_tag(header, 0, signature)
                                            for signature in _IMAGE_SIGNATURES]), axis=0)
            known |= header_has_tag(header, 0, "RIFF") & header_has_tag(header, 8, "WEBP")
            checks.append(_assert_no_bad_row(present & tf.logical_not(known),
                                             "image[{}]: not a JPEG/PNG/GIF/BMP/WebP image"))
            pixels = declared_pixels(value, header)
            checks.append(_assert_no_bad_row(
                pixels > MAX_IMAGE_PIXELS,
                f"image[{{}}]: its header declares {{}} pixels, more than the limit of "
                f"{MAX_IMAGE_PIXELS} (tfmm.data.media_checks.MAX_IMAGE_PIXELS)", [pixels]))
        elif name == "video":
            checks.extend(_video_checks(value, present))
        elif name == "text":
            valid = tf.equal(value, tf.strings.unicode_transcode(
                value, "UTF-8", "UTF-8", errors="replace"))
            checks.append(_assert_no_bad_row(tf.logical_not(valid), "text[{}]: not valid UTF-8"))
    return checks


def declared_pixels(image_bytes, header) -> tf.Tensor:
    """Width x height that each image's header declares, read without decoding: int64 [B].

    PNG, GIF, BMP and extended WebP (VP8X) from the first 30 header bytes, JPEG with
    tf.io.extract_jpeg_shape; 0 for other files (the decoder then judges them).
    """
    def big_endian(offset):
        return tf.add_n([header[:, offset + i] * 256 ** (3 - i) for i in range(4)])

    def signed(value):  # BMP sizes are int32; a negative height means top-down rows
        return tf.abs(tf.where(value >= 2 ** 31, value - 2 ** 32, value))

    field = lambda offset, size: little_endian_field(header, offset, size)  # noqa: E731
    tag = lambda offset, text: header_has_tag(header, offset, text)  # noqa: E731
    pixels = tf.zeros_like(header[:, 0])
    pixels = tf.where(tag(0, b"\x89PNG") & tag(12, "IHDR"), big_endian(16) * big_endian(20),
                      pixels)
    pixels = tf.where(tag(0, "GIF8"), field(6, 2) * field(8, 2), pixels)
    pixels = tf.where(tag(0, "BM"), signed(field(18, 4)) * signed(field(22, 4)), pixels)
    pixels = tf.where(tag(0, "RIFF") & tag(8, "WEBP") & tag(12, "VP8X"),
                      (field(24, 3) + 1) * (field(27, 3) + 1), pixels)

    def jpeg_pixels(item):
        return tf.cond(tf.strings.substr(item, 0, 3) == b"\xff\xd8\xff",
                       lambda: tf.reduce_prod(tf.io.extract_jpeg_shape(item, tf.int64)[:2]),
                       lambda: tf.constant(0, tf.int64))

    jpeg = tf.map_fn(jpeg_pixels, image_bytes, fn_output_signature=tf.int64)
    return tf.maximum(pixels, jpeg)


def _video_checks(gif_bytes, present) -> list:
    """A present video must be a GIF (TensorFlow decodes no other video format) whose header
    declares at most MAX_IMAGE_PIXELS pixels per frame."""
    header = header_bytes(gif_bytes, 10)
    gif = header_has_tag(header, 0, "GIF87a") | header_has_tag(header, 0, "GIF89a")
    pixels = little_endian_field(header, 6, 2) * little_endian_field(header, 8, 2)
    return [
        _assert_no_bad_row(present & tf.logical_not(gif),
                           "video[{}]: not a GIF file (convert other videos to GIF, README "
                           "\"Video\")"),
        _assert_no_bad_row(present & gif & (pixels > MAX_IMAGE_PIXELS),
                           f"video[{{}}]: its header declares {{}} pixels per frame, more than the "
                           f"limit of {MAX_IMAGE_PIXELS} (tfmm.data.media_checks.MAX_IMAGE_PIXELS)",
                           [pixels]),
    ]


def _audio_checks(wav_bytes, present) -> list:
    """A present row must be a RIFF/WAVE file; when its "fmt " chunk comes first (as almost
    always), that chunk must say 16-bit PCM with channels and a sample rate above 0. Files with
    other chunks first (which tf.audio.decode_wav reads too) are left to the decoder."""
    header = header_bytes(wav_bytes, _WAV_HEADER_BYTES)
    riff = header_has_tag(header, 0, "RIFF") & header_has_tag(header, 8, "WAVE")
    fields = [little_endian_field(header, 20, 2), little_endian_field(header, 22, 2),
              little_endian_field(header, 24, 4), little_endian_field(header, 34, 2)]
    audio_format, channels, sample_rate, bits = fields
    format_first = header_has_tag(header, 12, "fmt ")
    pcm16 = (tf.equal(audio_format, 1) & (channels > 0) & (sample_rate > 0)
             & tf.equal(bits, 16))
    return [
        _assert_no_bad_row(present & tf.logical_not(riff), "audio[{}]: not a RIFF/WAV file"),
        _assert_no_bad_row(present & riff & format_first & tf.logical_not(pcm16),
                           "audio[{}]: not a 16-bit PCM WAV file (format tag {}, {} channel(s), "
                           "{} Hz, {} bits per sample)", fields),
    ]


def _assert_no_bad_row(bad, template: str, fields=()):
    """Fails when any row is bad; the message is `template` formatted with the first bad row's
    index (and its entries of `fields`, int64 [B] tensors)."""
    padded = tf.concat([bad, [False]], axis=0)  # argmax needs one entry even in an empty batch
    row = tf.argmax(tf.cast(padded, tf.int32), output_type=tf.int32)
    values = [row] + [tf.gather(tf.concat([field, [0]], axis=0), row) for field in fields]
    return tf.debugging.Assert(tf.logical_not(tf.reduce_any(bad)),
                               [tf.strings.format(template, values)])
