"""Augmentation per modality (issue 13, item 2): each layer's mechanism, inference, XLA, configs,
saving, and evaluation under white noise (`evaluate.py --noise-snr`)."""

import json
import logging
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from helpers.tiny import tiny_config, write_manifest
from tfmm.augmentation_config import AudioAugmentation, augmentation_options
from tfmm.config import ConfigError, config_from_dict
from tfmm.models.audio_augmentation import SpecAugment, WaveformAugmentation, band_mask
from tfmm.models.image_augmentation import ImageAugmentation, resize_matrices
from tfmm.models.token_masking import TokenMasking, bert_special_token_ids

LAYERS = [
    WaveformAugmentation([-6, 6], [0, 20], 0.5, 0.1, seed=1),
    SpecAugment(2, 8, 2, 4, seed=2),
    ImageAugmentation(0.1, True, True, True, 0.8, 0.1, 0.2, seed=3),
    TokenMasking(0.2, 4, (0, 1, 2, 3, 4), seed=4),
]


def _snr_db(signal, noisy):
    noise = noisy - signal
    return 10 * np.log10(np.mean(signal ** 2, axis=1) / np.mean(noise ** 2, axis=1))


def _sines(batch_size=8, length=8000):
    time = np.arange(length) / 8000.0
    amplitudes = np.linspace(0.05, 2.0, batch_size)[:, None]  # SNR must not depend on loudness
    return (amplitudes * np.sin(2 * np.pi * 440 * time)[None, :]).astype(np.float32)


@pytest.mark.parametrize("layer", LAYERS, ids=lambda layer: type(layer).__name__)
def test_config_round_trip_and_nothing_changes_at_inference(layer):
    clone = type(layer).from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()
    inputs = {WaveformAugmentation: lambda: _sines(2, 800),
              SpecAugment: lambda: np.random.rand(2, 20, 16, 1).astype(np.float32),
              ImageAugmentation: lambda: 255 * np.random.rand(2, 8, 8, 3).astype(np.float32),
              TokenMasking: lambda: {"token_ids": np.full((4, 16), 9, np.int32),
                                     "segment_ids": np.zeros((4, 16), np.int32),
                                     "padding_mask": np.ones((4, 16), np.int32)}}[type(layer)]()
    for training in (False, None):
        outputs = keras.tree.map_structure(np.asarray, layer(inputs, training=training))
        keras.tree.map_structure(np.testing.assert_array_equal, outputs, inputs)
    changed = keras.tree.map_structure(np.asarray, layer(inputs, training=True))
    assert any(not np.array_equal(a, b) for a, b in
               zip(keras.tree.flatten(changed), keras.tree.flatten(inputs)))


def test_band_mask_covers_exactly_the_given_bands():
    mask = band_mask(10, np.array([[1, 6], [0, 0]]), np.array([[2, 3], [0, 4]]))
    np.testing.assert_array_equal(np.asarray(mask), [
        [0, 1, 1, 0, 0, 0, 1, 1, 1, 0], [1, 1, 1, 1, 0, 0, 0, 0, 0, 0]])


def test_spec_augment_sets_whole_bands_to_the_clip_mean():
    spectrogram = np.random.default_rng(0).normal(size=(16, 40, 24, 1)).astype(np.float32)
    layer = SpecAugment(time_masks=2, time_mask_width=6, frequency_masks=1,
                        frequency_mask_width=5, seed=7)
    out = np.asarray(layer(spectrogram, training=True))
    changed = (out != spectrogram)[..., 0]
    for example in range(16):
        rows = changed[example].all(axis=1)  # frames masked across every Mel bin
        columns = changed[example].all(axis=0)  # Mel bins masked across every frame
        # Every changed value lies in a masked frame or a masked bin, and only there.
        np.testing.assert_array_equal(changed[example], rows[:, None] | columns[None, :])
        assert rows.sum() <= 12 and columns.sum() <= 5
        assert _runs(rows) <= 2 and _runs(columns) <= 1
        mean = spectrogram[example].mean()
        np.testing.assert_allclose(out[example][changed[example]], mean, rtol=1e-4)
    assert changed.any(axis=(1, 2)).sum() >= 12  # widths are drawn in [0, W]: most get a band


def _runs(flags):
    return int(np.sum(np.diff(np.concatenate([[0], flags.astype(int)])) == 1))


@pytest.mark.parametrize("snr", [0.0, 5.0, 20.0])
def test_noise_has_the_configured_snr(snr):
    signal = _sines()
    noisy = np.asarray(WaveformAugmentation(noise_snr_db=[snr, snr], seed=3)(signal,
                                                                            training=True))
    np.testing.assert_allclose(_snr_db(signal, noisy), snr, atol=0.25)  # 8000 samples per clip


def test_gain_scales_each_clip_by_its_drawn_factor():
    signal = _sines(16)
    out = np.asarray(WaveformAugmentation(gain_db=[-6, 6], seed=5)(signal, training=True))
    factors = out[:, 100] / signal[:, 100]
    np.testing.assert_allclose(out, factors[:, None] * signal, rtol=1e-5, atol=1e-6)
    decibels = 20 * np.log10(factors)
    assert decibels.min() >= -6 - 1e-4 and decibels.max() <= 6 + 1e-4 and decibels.std() > 1
    fixed = np.asarray(WaveformAugmentation(gain_db=[6, 6], seed=5)(signal, training=True))
    np.testing.assert_allclose(fixed, signal * 10 ** (6 / 20), rtol=1e-5)


def test_time_shift_moves_each_clip_and_fills_with_zeros():
    signal = np.random.default_rng(1).normal(size=(8, 100)).astype(np.float32)
    out = np.asarray(WaveformAugmentation(time_shift=0.2, seed=2)(signal, training=True))
    shifts = []
    for row, shifted in zip(signal, out):
        matches = [shift for shift in range(-20, 21)
                   if np.array_equal(shifted, np.concatenate([np.zeros(shift), row[:100 - shift]])
                                     if shift >= 0 else np.concatenate([row[-shift:],
                                                                        np.zeros(-shift)]))]
        assert len(matches) == 1
        shifts.append(matches[0])
    assert len(set(shifts)) > 1


def _allowed(image, flips, rotations):
    variants = [image]
    if flips:
        variants += [image[:, ::-1], image[::-1], image[::-1, ::-1]]
    if rotations:
        variants = [np.rot90(variant, turns) for variant in variants for turns in range(4)]
    return variants


@pytest.mark.parametrize("flips,rotations", [(True, False), (False, True)])
def test_flips_and_rotations_are_exact_permutations(flips, rotations):
    images = np.random.default_rng(3).permutation(16 * 6 * 6 * 3).reshape(16, 6, 6, 3)
    images = images.astype(np.float32)
    layer = ImageAugmentation(horizontal_flip=flips, vertical_flip=flips, rotate90=rotations,
                              seed=1)
    out = np.asarray(layer(images, training=True))
    chosen = set()
    for image, augmented in zip(images, out):
        variants = _allowed(image, flips, rotations)
        matches = [index for index, variant in enumerate(variants)
                   if np.array_equal(augmented, variant)]
        assert matches, "not a flip/rotation of its input"
        chosen.add(matches[0])
    assert len(chosen) >= 3


def test_crop_resamples_the_chosen_window_and_the_whole_image_is_identity():
    np.testing.assert_allclose(np.asarray(resize_matrices(np.array([[8.0]]), np.array([[0.0]]),
                                                          8))[0], np.eye(8), atol=1e-6)
    # A half-size crop at offset 2 of a ramp: output pixel i reads 2 + (i + 0.5) / 2 - 0.5.
    matrix = np.asarray(resize_matrices(np.array([[4.0]]), np.array([[2.0]]), 8))[0]
    np.testing.assert_allclose(matrix @ np.arange(8.0), 1.75 + 0.5 * np.arange(8), atol=1e-5)
    np.testing.assert_allclose(matrix.sum(axis=1), 1.0, atol=1e-6)


def test_brightness_adds_one_offset_per_image_and_stays_in_range():
    images = np.full((8, 4, 4, 3), 128.0, np.float32)
    out = np.asarray(ImageAugmentation(brightness=0.2, seed=4)(images, training=True))
    offsets = (out - images).reshape(8, -1)
    np.testing.assert_allclose(offsets, offsets[:, :1] * np.ones_like(offsets), atol=1e-4)
    assert np.abs(offsets).max() <= 0.2 * 255 + 1e-3 and offsets[:, 0].std() > 1


def test_token_masking_replaces_only_real_tokens_by_mask(tiny_preset):
    mask_id, special = bert_special_token_ids(tiny_preset)
    assert (mask_id, special) == (4, (0, 1, 2, 3, 4))  # the tiny vocabulary's order
    token_ids = np.tile(np.array([[2, 5, 6, 7, 8, 9, 10, 3, 0, 0]], np.int32), (64, 1))
    padding = (token_ids != 0).astype(np.int32)
    inputs = {"token_ids": token_ids, "segment_ids": np.zeros_like(token_ids),
              "padding_mask": padding}
    out = np.asarray(TokenMasking(0.3, mask_id, special, seed=1)(inputs, training=True)
                     ["token_ids"])
    changed = out != token_ids
    assert np.all(out[changed] == mask_id)
    assert not changed[:, [0, 7, 8, 9]].any()  # [CLS], [SEP] and padding are never masked
    assert abs(changed[:, 1:7].mean() - 0.3) < 0.06  # 384 real tokens


def test_augmentation_compiles_with_xla_and_its_generators_are_replica_streams():
    from tfmm.models.audio_encoder import build_audio_encoder
    from tfmm.models.replica_seeds import seed_generators

    options = AudioAugmentation(2, 6, 2, 4, (-6, 6), (0, 20), 0.5, 0.1)
    encoder = build_audio_encoder(800, 8000, 8, frame_length=128, frame_step=64, num_mel_bins=16,
                                  conv_filters=(4,), augmentation=options, seed=3)
    features = encoder.get_layer("audio_features")
    waveform, spec = features.get_layer("waveform_augmentation"), features.get_layer("spec_augment")
    # The augmentation layers as the encoder chains them (the spectrogram between them).
    log_mel = features.get_layer("log_mel_spectrogram")
    step = tf.function(lambda waves: spec(log_mel(waveform(waves, training=True)), training=True),
                       jit_compile=True)
    waves = _sines(4, 800)
    first, second = np.asarray(step(waves)), np.asarray(step(waves))
    assert first.shape == (4, 11, 16, 1) and not np.allclose(first, second)  # fresh draws
    generators = seed_generators(encoder)
    # Plain SeedGenerators: replica_random_streams folds the replica id into each of them, and
    # their states are model variables, so checkpoints save and restore them.
    assert {id(waveform.seed_generator), id(spec.seed_generator)} <= set(map(id, generators))
    assert all(type(generator) is keras.random.SeedGenerator for generator in generators)
    variables = {id(variable) for variable in encoder.variables}
    assert all(id(generator.state) in variables for generator in generators)
    image = ImageAugmentation(0.2, True, False, True, 0.7, 0.1, 0.1, seed=1)
    assert len(seed_generators(image)) == 2  # its own and the nested RandomShift's
    images = tf.constant(255 * np.random.rand(2, 8, 8, 3), tf.float32)
    out = tf.function(lambda batch: image(batch, training=True), jit_compile=True)(images)
    assert out.shape == (2, 8, 8, 3)
    masking = TokenMasking(0.5, 4, (0, 1, 2, 3, 4), seed=1)
    tokens = {"token_ids": tf.fill((2, 8), 9), "segment_ids": tf.zeros((2, 8), tf.int32),
              "padding_mask": tf.ones((2, 8), tf.int32)}
    masked = tf.function(lambda batch: masking(batch, training=True), jit_compile=True)(tokens)
    assert set(np.unique(masked["token_ids"])) <= {4, 9}


def test_config_accepts_option_dicts_and_names_the_field_in_errors(tiny_preset, tmp_path):
    def config(**model):
        return config_from_dict(tiny_config(tiny_preset, "m.jsonl", str(tmp_path),
                                            model=model)).validate()

    chosen = config(audio_augmentation={"spec_time_masks": 2, "spec_time_mask_width": 10.0,
                                        "noise_snr_db": (0, 20)})
    assert chosen.model.audio_augmentation == {"spec_time_masks": 2, "spec_time_mask_width": 10,
                                               "noise_snr_db": [0, 20]}
    options = augmentation_options("model.audio_augmentation", chosen.model.audio_augmentation)
    assert options == AudioAugmentation(spec_time_masks=2, spec_time_mask_width=10,
                                        noise_snr_db=(0, 20))
    assert config(image_augmentation=0.1).model.image_augmentation == 0.1  # as before
    assert augmentation_options("model.image_augmentation", 0.1).shift == 0.1
    assert config(audio_augmentation=None).model.audio_augmentation is None
    for value, message in (
            ({"noise_snr_db": [20, 0]}, "`model.audio_augmentation.noise_snr_db` must be a list "
             r"\[low, high\] of numbers with low <= high. Received: \[20, 0\]"),
            ({"spec_masks": 2}, "`model.audio_augmentation` has no option 'spec_masks'"),
            (0.5, "`model.audio_augmentation` must be a dict of options")):
        with pytest.raises(ConfigError, match=message):
            config(audio_augmentation=value)
    with pytest.raises(ConfigError, match=r"`model.image_augmentation.horizontal_flip` must be "
                                          "true or false. Received: 'yes'"):
        config(image_augmentation={"horizontal_flip": "yes"})


def test_augmentation_on_a_frozen_cached_encoder_logs_a_warning(tiny_preset, tmp_path, caplog):
    values = tiny_config(tiny_preset, "m.jsonl", str(tmp_path), cache_frozen_features=True,
                         model={"freeze_audio_encoder": True,
                                "audio_augmentation": {"gain_db": [-3, 3]}})
    with caplog.at_level(logging.WARNING, logger="tfmm.augmentation_config"):
        config_from_dict(values).validate()
    assert ("`model.audio_augmentation` has no effect: the audio encoder is frozen "
            "(model.freeze_audio_encoder) and runs in inference mode and its features are cached"
            in caplog.text)


AUGMENTED_AUDIO = {"spec_time_masks": 1, "spec_time_mask_width": 3, "spec_frequency_masks": 1,
                   "spec_frequency_mask_width": 3, "gain_db": [-6, 6], "noise_snr_db": [0, 20],
                   "time_shift": 0.1}


def test_the_augmented_model_saves_and_loads(tiny_preset, tmp_path):
    from tfmm.models.multimodal_model import build_multimodal_model

    config = config_from_dict(tiny_config(tiny_preset, "m.jsonl", str(tmp_path), model={
        "audio_augmentation": AUGMENTED_AUDIO, "text_augmentation": {"token_mask_rate": 0.2},
        "dropout": 0.0})).validate()
    model = build_multimodal_model(config, 2)
    path = str(tmp_path / "model.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    audio = loaded.encoders["audio"].get_layer("audio_features")
    assert audio.get_layer("waveform_augmentation").noise_snr_db == (0.0, 20.0)
    assert audio.get_layer("spec_augment").time_masks == 1
    text = loaded.encoders["text"].get_layer("text_features")
    assert text.get_layer("token_masking").mask_token_id == 4  # the tiny vocabulary's [MASK]
    inputs = {"text_mask": np.ones(2, np.float32), "audio_mask": np.ones(2, np.float32),
              "token_ids": np.array([[2, 5, 6, 7, 3, 0, 0, 0]] * 2, np.int32),
              "segment_ids": np.zeros((2, 8), np.int32),
              "padding_mask": np.array([[1] * 5 + [0] * 3] * 2, np.int32),
              "audio": _sines(2, 800)}
    clean = np.asarray(model(inputs, training=False)["logits"])
    np.testing.assert_allclose(loaded(inputs, training=False)["logits"], clean, rtol=1e-5,
                               atol=1e-6)
    # With dropout 0 the only random draws in training mode are the augmentation's: two
    # training-mode calls differ, and they agree for the same model built without augmentation
    # (BatchNorm on the batch alone would move training mode away from `clean` too).
    assert not np.allclose(model(inputs, training=True)["logits"],
                           model(inputs, training=True)["logits"])
    plain_config = config_from_dict(tiny_config(tiny_preset, "m.jsonl", str(tmp_path),
                                                model={"dropout": 0.0})).validate()
    plain = build_multimodal_model(plain_config, 2)
    np.testing.assert_allclose(plain(inputs, training=True)["logits"],
                               plain(inputs, training=True)["logits"], rtol=1e-6, atol=1e-7)


@pytest.fixture(scope="module")
def augmented_run(tmp_path_factory, tiny_preset):
    """A tiny audio run trained for one epoch (the Trainer's XLA step) with audio augmentation."""
    from tfmm.training.runner import run_training

    root = tmp_path_factory.mktemp("augmented")
    manifest = write_manifest(str(root / "data"), num_rows=16)
    config = config_from_dict(tiny_config(tiny_preset, manifest, str(root / "run"), epochs=1,
                                          modalities=("audio",),
                                          model={"audio_augmentation": AUGMENTED_AUDIO}))
    run_training(config.validate(), log=lambda line: None)
    return config.training.run_dir, manifest


def test_noise_sweep_writes_a_report_per_level_the_summary_and_the_plot(augmented_run,
                                                                        tmp_path):
    import evaluate

    run_dir, manifest = augmented_run
    out = str(tmp_path)
    assert evaluate.main([run_dir, "--data", manifest, "--out", out, "--name", "n",
                          "--noise-snr", "clean,-5"]) == 0
    with open(os.path.join(out, "n_noise_sweep_report.json")) as handle:
        summary = json.load(handle)
    assert [row["snr_db"] for row in summary["rows"]] == [None, -5.0]
    assert os.path.getsize(os.path.join(out, summary["plot"])) > 1000
    reports = {}
    for name in ("n", "n_snr-5db"):
        with open(os.path.join(out, name + "_report.json")) as handle:
            reports[name] = json.load(handle)
    assert reports["n_snr-5db"]["noise_snr_db"] == -5.0 and reports["n"]["noise_snr_db"] is None
    assert reports["n"]["loss"] != pytest.approx(reports["n_snr-5db"]["loss"], abs=1e-6)
    assert evaluate.main([run_dir, "--data", manifest, "--out", out, "--name", "again",
                          "--noise-snr", "-5"]) == 0  # the same noise again: the same report
    with open(os.path.join(out, "again_snr-5db_report.json")) as handle:
        assert json.load(handle)["loss"] == pytest.approx(reports["n_snr-5db"]["loss"], rel=1e-6)


def test_evaluation_noise_has_the_requested_snr_and_bad_levels_are_user_errors(capsys):
    from tfmm.evaluation.noise_robustness import add_audio_noise, parse_noise_levels

    assert parse_noise_levels("clean, 20,0,-5") == [None, 20.0, 0.0, -5.0]
    signal = _sines(8)
    dataset = tf.data.Dataset.from_tensor_slices(({"audio": signal}, np.zeros(8))).batch(4)
    noisy = np.concatenate([f["audio"].numpy() for f, _ in add_audio_noise(dataset, 5.0)])
    np.testing.assert_allclose(_snr_db(signal, noisy), 5.0, atol=0.25)
    import evaluate

    assert evaluate.main(["no_run", "--data", "x.jsonl", "--noise-snr", "10,loud"]) == 2
    assert capsys.readouterr().err.strip() == (
        "error: --noise-snr expects 'clean' or SNRs in dB separated by commas (e.g. "
        "clean,20,10,5,0). Received: '10,loud'")


def test_the_measurement_config_changes_only_the_augmentation():
    from tfmm.config import load_stages

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    stages = dict(load_stages(os.path.join(root, "configs", "augmented_audio.py")))
    assert stages["plain"].model.audio_augmentation is None
    assert stages["noise"].model.audio_augmentation == {"noise_snr_db": [0, 20],
                                                        "noise_probability": 0.5}
    for name in ("noise", "augmented"):
        stages[name].model.audio_augmentation = None
        stages[name].training.run_dir = stages["plain"].training.run_dir
        assert stages[name] == stages["plain"]
