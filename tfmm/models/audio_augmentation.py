"""Audio augmentation inside the model: waveform gain, noise and shift; SpecAugment masks.

Both layers change their input only when called with `training=True` and draw from a
`keras.random.SeedGenerator` (one stream per replica under `replica_random_streams`, state
checkpointed with the model). Every op is a plain tensor op (no `py_function`), so XLA compiles
them. `build_audio_encoder` puts `WaveformAugmentation` before the log-Mel spectrogram and
`SpecAugment` between the spectrogram and its per-clip normalisation.
"""

import keras
from keras import ops


def _range(values, name):
    if values is None:
        return None
    low, high = (float(value) for value in values)
    if low > high:
        raise ValueError(f"`{name}` must be [low, high] with low <= high. Received: {values}")
    return (low, high)


@keras.saving.register_keras_serializable(package="tfmm")
class WaveformAugmentation(keras.layers.Layer):
    """Random time shift, gain and additive white noise of each clip, in training.

    In this order, per example: a shift by a whole number of samples in
    [-time_shift * N, time_shift * N], zero-filled (samples shifted past an end are lost, the
    gap is silence: no wrap-around); a gain of g dB, g uniform in `gain_db`; then, with
    probability `noise_probability`, Gaussian white noise at an SNR of s dB, s uniform in
    `noise_snr_db`, relative to the clip's own power (mean square over all N samples, after the
    gain): noise variance = power / 10^(s / 10).

    Args:
        gain_db: [low, high] in dB, or None (no gain).
        noise_snr_db: [low, high] SNR in dB, or None (no noise).
        noise_probability: share of clips that get noise.
        time_shift: largest shift as a fraction of the clip, in [0, 1).
        seed: seed of the draws.

    Input/output shape: float [B, N]. At inference the waveforms pass through unchanged.
    """

    def __init__(self, gain_db=None, noise_snr_db=None, noise_probability=1.0, time_shift=0.0,
                 seed=None, **kwargs):
        super().__init__(**kwargs)
        self.gain_db = _range(gain_db, "gain_db")
        self.noise_snr_db = _range(noise_snr_db, "noise_snr_db")
        if not 0.0 <= noise_probability <= 1.0:
            raise ValueError(f"`noise_probability` must be in [0, 1]. Received: "
                             f"{noise_probability}")
        if not 0.0 <= time_shift < 1.0:
            raise ValueError(f"`time_shift` must be in [0, 1). Received: {time_shift}")
        self.noise_probability = float(noise_probability)
        self.time_shift = float(time_shift)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, waveforms, training=None):
        if not training:
            return waveforms
        batch_size, length = ops.shape(waveforms)[0], waveforms.shape[1]
        max_shift = int(self.time_shift * length)
        if max_shift > 0:
            shifts = keras.random.randint((batch_size, 1), -max_shift, max_shift + 1,
                                          seed=self.seed_generator)
            waveforms = shift_with_zeros(waveforms, shifts)
        if self.gain_db is not None:
            gain = keras.random.uniform((batch_size, 1), *self.gain_db, seed=self.seed_generator)
            waveforms = waveforms * ops.power(10.0, gain / 20.0)
        if self.noise_snr_db is not None and self.noise_probability > 0:
            snr = keras.random.uniform((batch_size, 1), *self.noise_snr_db,
                                       seed=self.seed_generator)
            noisy = add_noise_at_snr(waveforms, snr, keras.random.normal(
                ops.shape(waveforms), seed=self.seed_generator))
            chosen = keras.random.uniform((batch_size, 1), seed=self.seed_generator)
            waveforms = ops.where(chosen < self.noise_probability, noisy, waveforms)
        return waveforms

    def get_config(self):
        config = super().get_config()
        config.update({"gain_db": self.gain_db, "noise_snr_db": self.noise_snr_db,
                       "noise_probability": self.noise_probability,
                       "time_shift": self.time_shift, "seed": self.seed})
        return config


def shift_with_zeros(waveforms, shifts):
    """Shifts each row of [B, N] `waveforms` right by `shifts` [B, 1] samples (negative: left),
    filling with zeros."""
    length = waveforms.shape[1]
    source = ops.arange(length)[None, :] - shifts
    inside = ops.logical_and(source >= 0, source < length)
    gathered = ops.take_along_axis(waveforms, ops.clip(source, 0, length - 1), axis=1)
    return ops.where(inside, gathered, ops.zeros_like(gathered))


def add_noise_at_snr(waveforms, snr_db, unit_noise):
    """`waveforms` [B, N] plus `unit_noise` [B, N] (standard normal) scaled so that each clip's
    power over the noise's expected power is `snr_db` [B, 1] dB."""
    power = ops.mean(ops.square(waveforms), axis=1, keepdims=True)
    noise_std = ops.sqrt(power / ops.power(10.0, snr_db / 10.0))
    return waveforms + noise_std * unit_noise


@keras.saving.register_keras_serializable(package="tfmm")
class SpecAugment(keras.layers.Layer):
    """SpecAugment time and frequency masking of a log-Mel spectrogram, in training.

    Each example gets `time_masks` bands of w frames (w uniform in [0, time_mask_width], start
    uniform) and `frequency_masks` bands of w Mel bins (w uniform in [0, frequency_mask_width]);
    every value inside a band is set to the example's mean log-Mel value, which the per-clip
    normalisation that follows maps to about 0 (the original paper's "mask to the mean").

    Args:
        time_masks, time_mask_width: number and largest width (frames) of the time bands.
        frequency_masks, frequency_mask_width: number and largest width (Mel bins) of the
            frequency bands.
        seed: seed of the draws.

    Input/output shape: float [B, T, F, 1]. At inference the spectrogram passes unchanged.
    """

    def __init__(self, time_masks=0, time_mask_width=0, frequency_masks=0,
                 frequency_mask_width=0, seed=None, **kwargs):
        super().__init__(**kwargs)
        for name, value in (("time_masks", time_masks), ("time_mask_width", time_mask_width),
                            ("frequency_masks", frequency_masks),
                            ("frequency_mask_width", frequency_mask_width)):
            if int(value) != value or value < 0:
                raise ValueError(f"`{name}` must be an integer >= 0. Received: {value}")
        self.time_masks, self.time_mask_width = int(time_masks), int(time_mask_width)
        self.frequency_masks = int(frequency_masks)
        self.frequency_mask_width = int(frequency_mask_width)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def _draw_bands(self, batch_size, size, count, max_width):
        """Starts and widths [B, count] of `count` bands of at most `max_width` in `size`."""
        max_width = min(max_width, size)
        widths = keras.random.randint((batch_size, count), 0, max_width + 1,
                                      seed=self.seed_generator)
        starts = ops.floor(keras.random.uniform((batch_size, count), seed=self.seed_generator)
                           * ops.cast(size - widths + 1, "float32"))
        return ops.cast(starts, "int32"), widths

    def call(self, spectrogram, training=None):
        if not training:
            return spectrogram
        batch_size = ops.shape(spectrogram)[0]
        frames, bins = spectrogram.shape[1], spectrogram.shape[2]
        masked = None
        if self.time_masks and self.time_mask_width:
            starts, widths = self._draw_bands(batch_size, frames, self.time_masks,
                                              self.time_mask_width)
            masked = band_mask(frames, starts, widths)[:, :, None, None]
        if self.frequency_masks and self.frequency_mask_width:
            starts, widths = self._draw_bands(batch_size, bins, self.frequency_masks,
                                              self.frequency_mask_width)
            bands = band_mask(bins, starts, widths)[:, None, :, None]
            masked = bands if masked is None else ops.logical_or(masked, bands)
        if masked is None:
            return spectrogram
        mean = ops.mean(spectrogram, axis=(1, 2, 3), keepdims=True)
        return ops.where(masked, mean, spectrogram)

    def get_config(self):
        config = super().get_config()
        config.update({"time_masks": self.time_masks, "time_mask_width": self.time_mask_width,
                       "frequency_masks": self.frequency_masks,
                       "frequency_mask_width": self.frequency_mask_width, "seed": self.seed})
        return config


def band_mask(size, starts, widths):
    """Bool [B, size]: True at positions p with start <= p < start + width for some band.

    Args:
        size: static length of the axis.
        starts, widths: int [B, K], K bands per example.
    """
    positions = ops.arange(size)[None, None, :]
    inside = ops.logical_and(positions >= starts[:, :, None],
                             positions < (starts + widths)[:, :, None])
    return ops.any(inside, axis=1)
