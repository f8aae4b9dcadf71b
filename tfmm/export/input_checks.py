"""Checks of the serving signature's raw inputs, so a bad request fails with a message that names
the input and the row (e.g. `audio[3]: not a RIFF/WAV file`) instead of a decoder's error, which
names neither (and for WAV files quotes the raw header bytes).

Each check is a `tf.debugging.Assert` on the whole batch: the first bad row fails the request
with an InvalidArgumentError whose message reads `assertion failed: [audio[3]: ...]`.
"""

import tensorflow as tf

from tfmm.preprocessing.decoding import header_bytes, header_has_tag, little_endian_field

# Leading bytes of the image formats tf.io.decode_image reads (and WebP: RIFF....WEBP).
_IMAGE_SIGNATURES = (b"\x89PNG", b"\xff\xd8\xff", b"GIF8", b"BM")
_WAV_HEADER_BYTES = 36  # RIFF/WAVE and the 16 bytes of a "fmt " chunk's fields


def serving_input_checks(inputs: dict, required) -> list:
    """The assertions on a batch of raw serving inputs.

    Args:
        inputs: {"text" | "image" | "audio": tf.string [B]}; "" marks a missing modality.
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
            header = header_bytes(value, 12)
            known = tf.reduce_any(tf.stack([header_has_tag(header, 0, signature)
                                            for signature in _IMAGE_SIGNATURES]), axis=0)
            known |= header_has_tag(header, 0, "RIFF") & header_has_tag(header, 8, "WEBP")
            checks.append(_assert_no_bad_row(present & tf.logical_not(known),
                                             "image[{}]: not a JPEG/PNG/GIF/BMP/WebP image"))
        elif name == "text":
            valid = tf.equal(value, tf.strings.unicode_transcode(
                value, "UTF-8", "UTF-8", errors="replace"))
            checks.append(_assert_no_bad_row(tf.logical_not(valid), "text[{}]: not valid UTF-8"))
    return checks


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
