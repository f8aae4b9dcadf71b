"""Decoding of one encoded image or one WAV file into a fixed-shape float tensor, in pure TF ops.

Pure TensorFlow (no py_function), so the same code runs in tf.data, in the exported serving
signature and on TPU hosts.
"""

import tensorflow as tf


def decode_image(image_bytes: tf.Tensor, image_size: int) -> tf.Tensor:
    """Decodes JPEG/PNG/GIF/BMP bytes into a [image_size, image_size, 3] float32 RGB image.

    Grayscale images are expanded to three channels; the image is resized with bilinear
    interpolation (antialiased when shrinking). Pixel values stay in [0, 255]: the image encoder
    applies its own normalisation.

    Args:
        image_bytes: scalar tf.string, an encoded image.
        image_size: output height and width.

    Returns:
        float32 tensor of shape [image_size, image_size, 3].
    """
    image = tf.io.decode_image(image_bytes, channels=3, expand_animations=False)
    image = tf.image.resize(tf.cast(image, tf.float32), (image_size, image_size),
                            method="bilinear", antialias=True)
    image = tf.clip_by_value(image, 0.0, 255.0)
    return tf.ensure_shape(image, (image_size, image_size, 3))


def resample_waveform(waveform: tf.Tensor, source_rate: tf.Tensor, target_rate: int) -> tf.Tensor:
    """Resamples a mono waveform by linear interpolation.

    Linear interpolation is exact for equal rates and adequate for speech between common rates;
    it does not low-pass filter, so content above the target Nyquist frequency aliases. Callers
    that need a band-limited resampler should resample offline.

    Args:
        waveform: float32 [num_samples].
        source_rate: int32 scalar, the rate the waveform was recorded at.
        target_rate: the rate wanted.

    Returns:
        float32 [ceil(num_samples * target_rate / source_rate)].
    """
    source_rate = tf.cast(source_rate, tf.float64)
    num_samples = tf.shape(waveform)[0]
    new_length = tf.cast(
        tf.math.ceil(tf.cast(num_samples, tf.float64) * target_rate / source_rate), tf.int32)
    positions = tf.range(new_length, dtype=tf.float64) * source_rate / target_rate
    positions = tf.minimum(positions, tf.cast(num_samples - 1, tf.float64))
    left = tf.cast(tf.floor(positions), tf.int32)
    right = tf.minimum(left + 1, num_samples - 1)
    fraction = tf.cast(positions - tf.cast(left, tf.float64), tf.float32)
    return (tf.gather(waveform, left) * (1.0 - fraction) + tf.gather(waveform, right) * fraction)


def decode_audio(wav_bytes: tf.Tensor, sample_rate: int, audio_length: int,
                 resample: bool = True) -> tf.Tensor:
    """Decodes 16-bit PCM WAV bytes into a mono float32 waveform of fixed length.

    Several channels are averaged. A recording at another sample rate is resampled when
    `resample` is True and otherwise stops the graph with an InvalidArgumentError that names both
    rates. The waveform is cropped to its first `audio_length` samples or padded with silence.

    Args:
        wav_bytes: scalar tf.string, the bytes of a WAV file.
        sample_rate: rate the model expects, in Hz.
        audio_length: samples in the output.
        resample: resample other rates (True) or reject them (False).

    Returns:
        float32 tensor of shape [audio_length], values in [-1, 1].
    """
    audio, file_rate = tf.audio.decode_wav(wav_bytes)
    waveform = tf.reduce_mean(audio, axis=-1)
    if resample:
        waveform = tf.cond(tf.equal(file_rate, sample_rate),
                           lambda: waveform,
                           lambda: resample_waveform(waveform, file_rate, sample_rate))
    else:
        check = tf.debugging.assert_equal(
            file_rate, tf.constant(sample_rate, tf.int32),
            message=f"WAV sample rate differs from the configured {sample_rate} Hz and "
                    "resampling is off (data.resample_audio=false); the file's rate is")
        with tf.control_dependencies([check]):
            waveform = tf.identity(waveform)
    waveform = waveform[:audio_length]
    waveform = tf.pad(waveform, [[0, audio_length - tf.shape(waveform)[0]]])
    return tf.ensure_shape(waveform, (audio_length,))


# The header of a canonical PCM WAV file: RIFF/WAVE, a 16-byte "fmt " chunk, then "data".
_CANONICAL_HEADER_BYTES = 44


def header_bytes(encoded: tf.Tensor, length: int) -> tf.Tensor:
    """The first `length` bytes of each string as int64 [B, length] (zeros past a short one)."""
    return tf.cast(tf.io.decode_raw(tf.strings.substr(encoded, 0, length), tf.uint8,
                                    fixed_length=length), tf.int64)


def little_endian_field(header: tf.Tensor, offset: int, size: int) -> tf.Tensor:
    """The little-endian unsigned integer of `size` bytes at `offset`: int64 [B]."""
    return tf.add_n([header[:, offset + i] * 256 ** i for i in range(size)])


def header_has_tag(header: tf.Tensor, offset: int, text) -> tf.Tensor:
    """Whether the header holds the bytes `text` at `offset`: bool [B]."""
    data = text if isinstance(text, bytes) else text.encode()
    return tf.reduce_all(tf.equal(header[:, offset:offset + len(data)],
                                  tf.constant(list(data), tf.int64)), axis=1)


def decode_audio_batch(wav_bytes: tf.Tensor, sample_rate: int, audio_length: int,
                       resample: bool = True) -> tf.Tensor:
    """Decodes a batch of WAV files (or "" for a missing one) into [B, audio_length] float32.

    The common case, a batch whose files are all canonical 16-bit PCM mono WAV (44-byte header,
    "data" chunk right after a 16-byte "fmt " chunk) at `sample_rate`, is decoded for the whole
    batch at once: the headers are parsed with tensor ops and the samples read with one
    `tf.io.decode_raw`, with no per-file op calls. Any other batch (another rate, several
    channels, extra chunks, other sample widths, a damaged file) goes file by file through
    `decode_audio`, which resamples, mixes channels or raises the error that names the problem.
    Both paths give the same waveforms: int16 / 32768, cropped or padded with silence.

    Args:
        wav_bytes: tf.string [B], WAV file bytes; "" marks a missing recording (zeros out).
        sample_rate, audio_length, resample: as in `decode_audio`.

    Returns:
        float32 [B, audio_length].
    """
    wav_bytes = tf.convert_to_tensor(wav_bytes, tf.string)
    lengths = tf.strings.length(wav_bytes)
    missing = tf.equal(lengths, 0)
    header = header_bytes(wav_bytes, _CANONICAL_HEADER_BYTES)

    def field(offset, size):
        return little_endian_field(header, offset, size)

    def tag(offset, text):
        return header_has_tag(header, offset, text)

    data_size = field(40, 4)
    canonical = (tag(0, "RIFF") & tag(8, "WAVE") & tag(12, "fmt ") & tag(36, "data")
                 & tf.equal(field(16, 4), 16)              # fmt chunk size: plain PCM
                 & tf.equal(field(20, 2), 1)               # format: PCM
                 & tf.equal(field(22, 2), 1)               # channels: mono
                 & tf.equal(field(24, 4), sample_rate)     # no resampling needed
                 & tf.equal(field(34, 2), 16)              # bits per sample
                 & tf.equal(data_size % 2, 0)
                 & (_CANONICAL_HEADER_BYTES + data_size <= tf.cast(lengths, tf.int64)))

    def decode_canonical():
        take = tf.where(missing, tf.zeros_like(data_size),
                        tf.minimum(data_size, 2 * audio_length))
        start = tf.where(missing, 0, _CANONICAL_HEADER_BYTES)
        samples = tf.strings.substr(wav_bytes, start, tf.cast(take, tf.int32))
        pcm = tf.io.decode_raw(samples, tf.int16, fixed_length=2 * audio_length)
        return tf.cast(pcm, tf.float32) / 32768.0

    def decode_each():
        def one(item):
            return tf.cond(tf.strings.length(item) > 0,
                           lambda: decode_audio(item, sample_rate, audio_length, resample),
                           lambda: tf.zeros([audio_length], tf.float32))
        return tf.map_fn(one, wav_bytes,
                         fn_output_signature=tf.TensorSpec([audio_length], tf.float32))

    waveforms = tf.cond(tf.reduce_all(canonical | missing), decode_canonical, decode_each)
    return tf.ensure_shape(waveforms, (wav_bytes.shape[0], audio_length))
