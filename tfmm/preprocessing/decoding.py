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
