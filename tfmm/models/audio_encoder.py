"""Audio encoder: log-Mel spectrogram (in the model) -> small CNN -> shared width."""

import keras

from tfmm.augmentation_config import AudioAugmentation
from tfmm.models.audio_augmentation import SpecAugment, WaveformAugmentation
from tfmm.models.encoder_features import EncoderFeatures
from tfmm.models.log_mel_spectrogram import LogMelSpectrogram
from tfmm.models.pooling import MaxPooling2x2
from tfmm.models.token_projection import TokenMask, TokenProjection


def build_audio_encoder(audio_length: int, sample_rate: int, projection_dim: int,
                        frame_length: int = 256, frame_step: int = 128, num_mel_bins: int = 64,
                        conv_filters=(32, 64, 128), dropout: float = 0.1,
                        freeze: bool = False, batchnorm_momentum: float = 0.9,
                        augmentation: AudioAugmentation = None, seed: int = 0,
                        output_tokens: bool = False) -> keras.Model:
    """Waveforms -> one [projection_dim] vector per clip (or its time frames, `output_tokens`).

    The log-Mel spectrogram is standardised per clip (LayerNormalization over time, Mel and
    channel: a louder or quieter recording gives the same features). Each conv block is Conv2D
    3x3 -> BatchNorm -> ReLU -> 2x2 max pooling over (time, Mel). The feature map is then averaged
    over time only and flattened, so where a pattern sits in frequency is kept.

    Args:
        audio_length: static samples per clip.
        sample_rate: Hz of the waveform.
        projection_dim: output width.
        frame_length, frame_step, num_mel_bins: spectrogram parameters (see LogMelSpectrogram).
        conv_filters: filters of each conv block.
        dropout: dropout before the projection.
        batchnorm_momentum: momentum of the BatchNorm moving statistics (0.9 tracks the weights
            of a short run closely enough for inference; Keras' 0.99 lags behind them).
        freeze: keep the spectrogram and conv weights fixed and run them in inference mode.
        augmentation: an `AudioAugmentation` (None: none): time shift, gain and noise of the
            waveform before the spectrogram, SpecAugment masks between the spectrogram and its
            normalisation; in training only, and never while frozen.
        seed: seed of the augmentation.
        output_tokens: return the conv map's time frames (before the time pooling; each frame
            its Mel x channel features) as tokens, projected with a learned embedding per
            frame position, instead of their average. `audio_features` then returns
            {"features": [B, T, F] (after the dropout), "token_mask": ones}.

    The frozen part is `audio_features` (augmentation and everything up to and including `audio_dropout`, an
    `EncoderFeatures`): frozen, it runs in inference mode even in training (no dropout,
    BatchNorm on moving statistics); `audio_projection` always learns. The dropout belongs to
    the frozen part because the features cached for a frozen encoder
    (`tfmm.training.feature_cache`) are the projection's input.

    Returns:
        A functional model: float32 [B, audio_length] -> [B, projection_dim]; with
        output_tokens, {"tokens": [B, T, projection_dim], "token_mask": float32 ones [B, T]}.
    """
    augmentation = augmentation or AudioAugmentation()
    waveforms = keras.Input((audio_length,), name="audio")
    features = waveforms
    if augmentation.gain_db or augmentation.noise_snr_db or augmentation.time_shift:
        features = WaveformAugmentation(
            augmentation.gain_db, augmentation.noise_snr_db, augmentation.noise_probability,
            augmentation.time_shift, seed=seed, dtype="float32",
            name="waveform_augmentation")(features)
    features = LogMelSpectrogram(sample_rate, frame_length, frame_step, num_mel_bins,
                                 dtype="float32", name="log_mel_spectrogram")(features)
    if ((augmentation.spec_time_masks and augmentation.spec_time_mask_width)
            or (augmentation.spec_frequency_masks and augmentation.spec_frequency_mask_width)):
        features = SpecAugment(
            augmentation.spec_time_masks, augmentation.spec_time_mask_width,
            augmentation.spec_frequency_masks, augmentation.spec_frequency_mask_width,
            seed=seed + 1, dtype="float32", name="spec_augment")(features)
    features = keras.layers.LayerNormalization(axis=(1, 2, 3), name="spectrogram_normalization")(
        features)
    for index, filters in enumerate(conv_filters):
        features = keras.layers.Conv2D(filters, 3, padding="same", use_bias=False,
                                       name=f"audio_conv_{index}")(features)
        features = keras.layers.BatchNormalization(momentum=batchnorm_momentum,
                                                   name=f"audio_batchnorm_{index}")(features)
        features = keras.layers.ReLU(name=f"audio_relu_{index}")(features)
        # MaxPooling2D(2, padding="same") without its slow XLA gradient on CPU (see the layer).
        features = MaxPooling2x2(name=f"audio_pool_{index}")(features)
    _, frames, mel_bins, channels = features.shape
    features = keras.layers.Reshape((frames, mel_bins * channels), name="audio_frames")(features)
    if not output_tokens:
        features = keras.layers.GlobalAveragePooling1D(name="audio_time_pooling")(features)
    features = keras.layers.Dropout(dropout, name="audio_dropout")(features)
    if output_tokens:
        features = {"features": features, "token_mask": TokenMask(name="audio_token_mask")(
            features)}
    audio_features = EncoderFeatures(waveforms, features, name="audio_features")
    audio_features.trainable = not freeze
    encoder_input = keras.Input((audio_length,), name="audio")  # own input: kept as a sub-model
    if output_tokens:
        computed = audio_features(encoder_input)
        tokens = TokenProjection(projection_dim, (frames,), name="audio_projection")(
            computed["features"])
        return keras.Model(encoder_input, {"tokens": tokens, "token_mask": computed["token_mask"]},
                           name="audio_encoder")
    projected = keras.layers.Dense(projection_dim, name="audio_projection")(
        audio_features(encoder_input))
    return keras.Model(encoder_input, projected, name="audio_encoder")
