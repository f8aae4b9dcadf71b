"""The quickstart's tf.data input pipeline against a plain Python loop (librosa / Pillow), and its
share of a training step.

1. Examples/second over the AV-digits quickstart manifests (`configs/av_digits.py`, stages
   `audio_encoder` and `image_encoder`; written by `tfmm.data.av_digits.build_av_digits` if
   missing), every file read and decoded each pass (no cache):
   - audio: `tfmm.data.dataset.ExamplePipeline` (files read one by one, then WAV decode,
     resampling to the configured rate and crop/pad to 1 s by the preprocessor, 64 files per
     call: `decode_audio_batch`) + `tfmm.models.log_mel_spectrogram.LogMelSpectrogram` on the
     batches,
     against `for row in rows: librosa.load -> crop/pad -> librosa.stft -> librosa mel
     filterbank -> log` with the same parameters;
   - image: `ExamplePipeline` (read, PNG decode, resize to 32x32), against Pillow
     (open, RGB, bilinear resize) in a loop.
   Both sides' features are compared (np.allclose; largest difference printed). Also shown:
   the audio pipeline of later epochs (decoded waveforms cached by the first; Log-Mel computed),
   and both audio pipelines in steady state: one iterator over 3 passes, so that the fixed cost
   of starting an iterator (instantiating the decoder's functions, ~0.1 s) is paid once, as it
   is for a data set much larger than the quickstart's 1,560 clips. And the first step alone,
   tf.data reading the files with no decoding, for both modalities: the ceiling of any
   pipeline that reads one file per example.
2. The audio encoder's and ResNet50's tfmm training step (the `Trainer`'s compiled step, batch 64)
   on tensors already in memory against the same step fed by the pipeline as the Trainer feeds it
   (cached after the first epoch, seeded shuffle, batch, prefetch; and the first, decoding,
   epoch): the pipeline's share of a step.

All variants run interleaved in rounds; ratios are per round, median and range.

    python bench/input_pipeline.py           # needs librosa: pip install -e ".[bench]"
    python bench/input_pipeline.py --quick   # fewer rounds, no ResNet50 step
"""

import os
import tempfile
import time

import benchlib
from benchlib import interleave, median, paired_ratios, ratio_line, spread

import numpy as np

STEADY_PASSES = 3  # passes through one iterator for the steady-state audio figures


def parse_args():
    parser = benchlib.parser(__doc__, rounds=5, quick="3 rounds, no ResNet50 step")
    parser.add_argument("--data", default="data/generated/av_digits",
                        help="AV-digits folder (relative paths: to the repository root)")
    parser.add_argument("--config", default="configs/av_digits.py")
    parser.add_argument("--step-rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=10, help="audio steps per variant and round")
    parser.add_argument("--image-steps", type=int, default=2, help="ResNet50 steps per round")
    parser.add_argument("--sample-rate", type=int, default=0,
                        help="model sample rate; 0: the quickstart's (8000 Hz, as the files: "
                             "resampling is then the identity)")
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.step_rounds, args.image_steps = 3, 3, 0
    args.data, args.config = benchlib.repo_path(args.data), benchlib.repo_path(args.config)
    return args


def stage_configs(args):
    """The quickstart's audio_encoder and image_encoder stage configs, pointed at args.data."""
    from tfmm.config import load_stages

    stages = dict(load_stages(args.config))
    configs = {}
    for modality in ("audio", "image"):
        config = stages[f"{modality}_encoder"]
        config.data.train_manifest = os.path.join(args.data, f"{modality}_digits_train.jsonl")
        config.data.test_manifest = ""
        config.training.run_dir = tempfile.mkdtemp(prefix=f"tfmm-bench-{modality}-")
        config.training.checkpoint_every_steps = 0
        if args.sample_rate:
            config.data.audio_sample_rate = args.sample_rate
            config.data.audio_length = args.sample_rate
        configs[modality] = config
    return configs


# ------------------------------------------------------------------------------------------
# The plain Python loops.

def librosa_log_mel(path, data, model, mel_basis):
    """One clip's log-Mel spectrogram [frames, mel bins], as a librosa user writes it."""
    import librosa

    waveform, rate = librosa.load(path, sr=None, mono=True)
    if rate != data.audio_sample_rate:  # tfmm resamples by linear interpolation
        positions = np.minimum(np.arange(int(np.ceil(len(waveform) * data.audio_sample_rate
                                                    / rate))) * rate / data.audio_sample_rate,
                               len(waveform) - 1)
        waveform = np.interp(positions, np.arange(len(waveform)), waveform).astype(np.float32)
    waveform = waveform[:data.audio_length]
    waveform = np.pad(waveform, (0, data.audio_length - len(waveform)))
    fft_length = 1 << (model.audio_frame_length - 1).bit_length()
    power = np.abs(librosa.stft(waveform, n_fft=fft_length, hop_length=model.audio_frame_step,
                                win_length=model.audio_frame_length, window="hann",
                                center=False)) ** 2
    return np.log(mel_basis @ power + 1e-6).T


def pillow_image(path, size):
    from PIL import Image

    with Image.open(path) as image:
        image = image.convert("RGB").resize((size, size), Image.BILINEAR)
        return np.asarray(image, np.float32)


def main():
    args = parse_args()
    import keras
    import librosa
    import tensorflow as tf

    from tfmm.data.av_digits import build_av_digits
    from tfmm.data.dataset import ExamplePipeline, read_file_or_empty
    from tfmm.data.manifest import read_manifest_for_config
    from tfmm.models.log_mel_spectrogram import LogMelSpectrogram
    from tfmm.models.multimodal_model import build_multimodal_model
    from tfmm.preprocessing.multimodal_preprocessor import MultimodalPreprocessor
    from tfmm.training.trainer import Trainer

    started = time.time()
    print(benchlib.machine_line())
    if not os.path.exists(os.path.join(args.data, "audio_digits_train.jsonl")):
        print(f"writing the AV-digits data set to {args.data}")
        build_av_digits(args.data)
    configs = stage_configs(args)
    audio_config, image_config = configs["audio"], configs["image"]
    data, model_config = audio_config.data, audio_config.model
    batch = data.batch_size

    # --- 1. pipelines and loops -----------------------------------------------------------
    audio_manifest = read_manifest_for_config(data.train_manifest, data)
    image_manifest = read_manifest_for_config(image_config.data.train_manifest, image_config.data)
    audio_rows = [row.audio for row in audio_manifest.rows]
    image_rows = [row.image for row in image_manifest.rows]
    audio_pipeline = ExamplePipeline(audio_manifest, MultimodalPreprocessor.from_data_config(
        data, "minilm"), "multiclass", cache=False)
    image_pipeline = ExamplePipeline(image_manifest, MultimodalPreprocessor.from_data_config(
        image_config.data, "minilm"), "multiclass", cache=False)
    log_mel = LogMelSpectrogram(data.audio_sample_rate, model_config.audio_frame_length,
                                model_config.audio_frame_step, model_config.audio_num_mel_bins,
                                dtype="float32")
    audio_dataset = audio_pipeline.batches(batch).map(
        lambda features, targets: (log_mel(features["audio"])[..., 0], targets),
        num_parallel_calls=tf.data.AUTOTUNE)
    image_dataset = image_pipeline.batches(batch)

    def files_only(paths):
        """The pipelines' first step alone: tf.data reading the files (no decoding), batched."""
        return tf.data.Dataset.from_tensor_slices(paths).map(
            read_file_or_empty, num_parallel_calls=tf.data.AUTOTUNE).batch(batch).map(
            lambda contents: (contents, contents))  # drain() counts the first of a pair
    # What a run's later epochs read: the decoded waveforms cached by the first epoch.
    cached_audio_dataset = ExamplePipeline(
        audio_manifest, MultimodalPreprocessor.from_data_config(data, "minilm"), "multiclass",
        cache=True).batches(batch).map(
        lambda features, targets: (log_mel(features["audio"])[..., 0], targets),
        num_parallel_calls=tf.data.AUTOTUNE)
    fft_length = 1 << (model_config.audio_frame_length - 1).bit_length()
    # librosa's Mel filterbank with tfmm's parameters: HTK Mel scale, no area normalisation,
    # 20 Hz to Nyquist. (TF interpolates the triangles on the Mel axis, librosa on the Hz axis.)
    librosa_basis = librosa.filters.mel(sr=data.audio_sample_rate, n_fft=fft_length,
                                        n_mels=model_config.audio_num_mel_bins, fmin=20.0,
                                        fmax=data.audio_sample_rate / 2, htk=True, norm=None)
    tf_basis = log_mel._mel_matrix.numpy().T

    manifest_name = os.path.relpath(audio_manifest.path, benchlib.REPO_ROOT)
    print(f"audio: {len(audio_rows)} WAV files of {manifest_name}, model rate "
          f"{data.audio_sample_rate} Hz, {data.audio_length} samples, STFT "
          f"{model_config.audio_frame_length}/{model_config.audio_frame_step}, "
          f"{model_config.audio_num_mel_bins} Mel bins; image: {len(image_rows)} PNG files, "
          f"{image_config.data.image_size}x{image_config.data.image_size}; batch {batch}")

    # Same features?
    tf_audio = next(iter(audio_dataset))[0].numpy()
    loop_audio = np.stack([librosa_log_mel(path, data, model_config, librosa_basis)
                           for path in audio_rows[:batch]])
    loop_audio_tf_basis = np.stack([librosa_log_mel(path, data, model_config, tf_basis)
                                    for path in audio_rows[:batch]])
    tf_image = next(iter(image_dataset))[0]["image"].numpy()
    loop_image = np.stack([pillow_image(path, image_config.data.image_size)
                           for path in image_rows[:batch]])
    print(f"same log-Mel (librosa filterbank): np.allclose(atol=0.05) "
          f"{np.allclose(tf_audio, loop_audio, rtol=0, atol=0.05)}, max |difference| "
          f"{np.abs(tf_audio - loop_audio).max():.2e} (log units; values span "
          f"{tf_audio.min():.1f}..{tf_audio.max():.1f})")
    print(f"same log-Mel (TF's Mel matrix in the librosa loop): np.allclose(atol=1e-3) "
          f"{np.allclose(tf_audio, loop_audio_tf_basis, rtol=0, atol=1e-3)}, max |difference| "
          f"{np.abs(tf_audio - loop_audio_tf_basis).max():.2e}")
    print(f"same image (Pillow bilinear): np.allclose(atol=1.0) "
          f"{np.allclose(tf_image, loop_image, rtol=0, atol=1.0)}, max |difference| "
          f"{np.abs(tf_image - loop_image).max():.2e} (pixel values 0..255)")

    def drain(dataset, passes=1):
        def run():
            begin = time.perf_counter()
            count = 0
            for features, _ in (dataset.repeat(passes) if passes > 1 else dataset):
                count += int(tf.shape(tf.nest.flatten(features)[0])[0])
            return count / (time.perf_counter() - begin)
        return run

    def loop(function, rows):
        def run():
            begin = time.perf_counter()
            for path in rows:
                function(path)
            return len(rows) / (time.perf_counter() - begin)
        return run

    for dataset in (audio_dataset, image_dataset, cached_audio_dataset):
        drain(dataset)()  # warm up (tracing; fills the cache of the cached one)
    rates = interleave({
        "tf.data audio": drain(audio_dataset),
        "tf.data audio cached (epoch 2+)": drain(cached_audio_dataset),
        "tf.data audio, one iterator, 3 passes": drain(audio_dataset, STEADY_PASSES),
        "tf.data audio cached, one iterator, 3 passes": drain(cached_audio_dataset,
                                                              STEADY_PASSES),
        "tf.data audio files read only": drain(files_only(audio_rows)),
        "librosa loop": loop(lambda path: librosa_log_mel(path, data, model_config,
                                                          librosa_basis), audio_rows),
        "tf.data image": drain(image_dataset),
        "tf.data image files read only": drain(files_only(image_rows)),
        "Pillow loop": loop(lambda path: pillow_image(path, image_config.data.image_size),
                            image_rows),
    }, args.rounds)
    for name, values in rates.items():
        print(f"{name}: {spread(values)} examples/s")
    print(ratio_line("RATIO audio examples/s tf.data (decode + log-Mel) / librosa loop",
                     paired_ratios(rates["tf.data audio"], rates["librosa loop"])))
    print(ratio_line("ratio audio examples/s tf.data cached (later epochs) / librosa loop",
                     paired_ratios(rates["tf.data audio cached (epoch 2+)"],
                                   rates["librosa loop"])))
    print(ratio_line("ratio audio examples/s tf.data steady state (one iterator, 3 passes) / "
                     "librosa loop", paired_ratios(rates["tf.data audio, one iterator, 3 passes"],
                                                   rates["librosa loop"])))
    print(ratio_line("ratio audio examples/s tf.data cached steady state / librosa loop",
                     paired_ratios(rates["tf.data audio cached, one iterator, 3 passes"],
                                   rates["librosa loop"])))
    print(ratio_line("ratio files/s tf.data reading the audio files only / librosa loop",
                     paired_ratios(rates["tf.data audio files read only"],
                                   rates["librosa loop"])))
    print(ratio_line("ratio files/s tf.data reading the image files only / Pillow loop",
                     paired_ratios(rates["tf.data image files read only"],
                                   rates["Pillow loop"])))
    for name, dataset in (("decoding", audio_dataset), ("cached", cached_audio_dataset)):
        starts = []
        for _ in range(args.rounds):
            begin = time.perf_counter()
            next(iter(dataset))
            starts.append((time.perf_counter() - begin) * 1e3)
        print(f"starting an audio iterator ({name}) and taking its first batch: "
              f"{spread(starts)} ms")
    print(ratio_line("RATIO image examples/s tf.data / Pillow loop",
                     paired_ratios(rates["tf.data image"], rates["Pillow loop"])))

    # --- 2. the pipeline's share of a training step ----------------------------------------
    for modality, steps in (("audio", args.steps), ("image", args.image_steps)):
        if not steps:
            continue
        config = configs[modality]
        manifest = audio_manifest if modality == "audio" else image_manifest
        preprocessor = MultimodalPreprocessor.from_data_config(config.data, "minilm")
        cached = ExamplePipeline(manifest, preprocessor, "multiclass", cache=True)
        uncached = ExamplePipeline(manifest, preprocessor, "multiclass", cache=False)
        keras.utils.set_random_seed(0)
        model = build_multimodal_model(config, len(manifest.labels))
        strategy = tf.distribute.get_strategy()
        steps_per_epoch = cached.steps_per_epoch(batch, drop_remainder=True)
        trainer = Trainer.from_config(model, config, strategy, steps_per_epoch, config.training.run_dir,
                          log=lambda line: None)
        for _ in cached.batches(batch):  # fill the cache (the first epoch of a run does it)
            pass

        def fed_by(pipeline):
            """The Trainer's loop: per-epoch seeded shuffle, batches, distribute, step."""
            state = {"epoch": 0, "iterator": None}

            def next_batch():
                while True:
                    if state["iterator"] is None:
                        dataset = pipeline.batches(
                            batch, shuffle=True, seed=0, epoch=state["epoch"],
                            shuffle_buffer=config.data.shuffle_buffer, drop_remainder=True)
                        state["iterator"] = iter(strategy.experimental_distribute_dataset(dataset))
                        state["epoch"] += 1
                    try:
                        return next(state["iterator"])
                    except StopIteration:
                        state["iterator"] = None

            def run():
                begin = time.perf_counter()
                for _ in range(steps):
                    loss, _ = trainer.train_step(next_batch())
                    float(loss)
                return (time.perf_counter() - begin) / steps
            return run

        in_memory = [item for item, _ in zip(cached.batches(batch, shuffle=True,
                                                             drop_remainder=True), range(steps))]

        def from_memory():
            begin = time.perf_counter()
            for item in in_memory:
                loss, _ = trainer.train_step(item)
                float(loss)
            return (time.perf_counter() - begin) / len(in_memory)

        variants = {"in-memory": from_memory, "pipeline (cached)": fed_by(cached),
                    "pipeline (decoding)": fed_by(uncached)}
        for run in variants.values():
            run()  # compile, fill prefetch buffers
        print(f"\n{modality} encoder training step (tfmm Trainer step, batch {batch}, XLA "
              f"{trainer.jit_compile}), {steps} steps per variant and round:")
        times = interleave(variants, args.step_rounds)
        for name, values in times.items():
            print(f"step {name}: {spread(values)} s")
        for name in ("pipeline (cached)", "pipeline (decoding)"):
            shares = [1.0 - memory / fed for memory, fed in zip(times["in-memory"], times[name])]
            print(f"SHARE {modality} {name} of a step = 1 - in-memory / fed: "
                  f"{median(shares):+.1%} (per-round range {min(shares):+.1%} to "
                  f"{max(shares):+.1%})")
        del trainer, model
    print(f"\ntotal {time.time() - started:.0f} s; {benchlib.machine_line()}")


if __name__ == "__main__":
    main()
