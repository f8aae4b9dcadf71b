"""Reading TFRecord shards (`python -m tfmm.pack`) against today's manifest path and the Python
loop (librosa / Pillow), side by side in one run, on the quickstart data and a larger set.

1. Packs the AV-digits quickstart's audio and image training manifests (`configs/av_digits.py`
   stages audio_encoder and image_encoder) into shards (timed), and checks that the shards give
   the manifest path's model inputs (np.allclose, row by row).
2. Examples/s over every training example, each decoded every pass (`data.cache = none`), the
   variants interleaved round by round: shards (`tfmm.data.records.RecordPipeline`), the
   manifest (`tfmm.data.dataset.ExamplePipeline`), and the Python loop of
   `bench/input_pipeline.py` (librosa load + log-Mel; Pillow open + resize). Audio batches get
   the same log-Mel spectrogram on both tf.data sides, as in `bench/input_pipeline.py`. Each
   tf.data side twice: one epoch from a fresh iterator (what one pass of 1,440 examples costs,
   building the iterator included) and 3 epochs through one iterator (that fixed cost paid
   once, as for a data set much larger than the quickstart's).
3. Larger sets built from the quickstart's (each recording and scan reused across many rows,
   `--scale` rows, 50,000 by default), packed; examples/s of one pass from their shards and
   their manifests, the Python loop on their first 3,000 rows, and time to the first batch
   (reading the manifest or the index included: the manifest path validates every row before
   its first batch).
4. Peak resident memory of a fresh process reading two shuffled epochs of shards with
   `data.cache = none` at 1x (the quickstart's audio) and 10x the examples, with a shuffle buffer
   of `--shuffle-buffer` examples (1,000): the bound of what a run holds, whatever the data.
5. FILE sharding: one epoch of the larger audio set's shards read by one process, then by two
   loopback workers of MultiWorkerMirroredStrategy (each reads only its own shards: the examples
   it was given against those its shards hold), each in a process of its own.

Beside examples/s (wall clock), examples per CPU-second of all the process's threads: on a
machine shared with other jobs the wall-clock figures move with the load, the CPU figures much
less.

    python bench/records.py            # about 10 minutes on 2 quiet cores; needs librosa
    python bench/records.py --quick    # 1 round, a 20,000-row larger set
    python bench/records.py --file-sharding-only   # part 5 alone (a few minutes; no librosa)
"""

import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time

import benchlib
from benchlib import interleave, paired_ratios, ratio_line, spread
from input_pipeline import librosa_log_mel, pillow_image, stage_configs

import numpy as np


STEADY_PASSES = 3  # passes through one iterator for the "one iterator" figures
LOOP_SAMPLE = 3000  # rows of the larger set the Python loop decodes (its cost per row is fixed)


def first_batch(make, batch_size):
    """Seconds from nothing to the first batch: the pipeline built (manifest read and checked,
    or index read), then its first batch."""
    begin = time.perf_counter()
    next(iter(make().batches(batch_size)))
    return time.perf_counter() - begin


def parse_args():
    parser = benchlib.parser(__doc__, rounds=3, quick="1 round, a 20,000-row larger set")
    parser.add_argument("--data", default="data/generated/av_digits")
    parser.add_argument("--config", default="configs/av_digits.py")
    parser.add_argument("--scale", type=int, default=50000, help="rows of the larger set")
    parser.add_argument("--shards", type=int, default=8)
    parser.add_argument("--sample-rate", type=int, default=0)
    parser.add_argument("--shuffle-buffer", type=int, default=1000,
                        help="examples in the shuffle buffer of the memory runs (the memory a "
                             "run holds is bounded by it, not by the data)")
    parser.add_argument("--file-sharding-only", action="store_true",
                        help="only part 5 (FILE sharding over two loopback workers) on the "
                             "larger audio set; needs no librosa")
    parser.add_argument("--rss-child", default="", help=argparse_hidden())
    parser.add_argument("--sharding-child", default="", help=argparse_hidden())
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.scale = 1, 20000
    args.data, args.config = benchlib.repo_path(args.data), benchlib.repo_path(args.config)
    return args


def argparse_hidden():
    import argparse

    return argparse.SUPPRESS


def larger_manifest(manifest_path, out_path, rows_wanted):
    """A manifest of `rows_wanted` rows cycling through the rows of `manifest_path` (media
    paths made absolute, ids made unique)."""
    folder = os.path.dirname(os.path.abspath(manifest_path))
    with open(manifest_path) as handle:
        rows = [json.loads(line) for line in handle if line.strip()]
    with open(out_path, "w") as handle:
        for index in range(rows_wanted):
            row = dict(rows[index % len(rows)], id=f"scaled-{index}")
            for field in ("image", "audio"):
                if row.get(field):
                    row[field] = os.path.join(folder, row[field])
            handle.write(json.dumps(row) + "\n")
    return out_path


def child_pipeline(spec_path):
    """(spec, DataConfig, RecordPipeline with data.cache none) of a child process's spec."""
    import dataclasses

    from tfmm.config import DataConfig
    from tfmm.data.record_source import read_records_for_config
    from tfmm.data.records import RecordPipeline
    from tfmm.preprocessing.multimodal_preprocessor import MultimodalPreprocessor

    with open(spec_path) as handle:
        spec = json.load(handle)
    fields = {field.name for field in dataclasses.fields(DataConfig)}
    data = DataConfig(**{key: tuple(value) if isinstance(value, list) else value
                         for key, value in spec["data"].items() if key in fields})
    return spec, data, RecordPipeline(read_records_for_config(spec["pattern"], data),
                                      MultimodalPreprocessor.from_data_config(data, "minilm"),
                                      data.task, "none")


def sharding_child(spec_path):
    """Child process: one epoch of shards, alone or (TF_CONFIG set) as one worker of
    MultiWorkerMirroredStrategy, which shards by FILE; prints the examples it was given, the
    examples its own shards hold (shards k, k + workers, ...), and the epoch's seconds."""
    import tensorflow as tf

    cluster = json.loads(os.environ.get("TF_CONFIG", "{}"))
    strategy = (tf.distribute.MultiWorkerMirroredStrategy() if cluster
                else tf.distribute.get_strategy())
    spec, data, pipeline = child_pipeline(spec_path)
    workers = len(cluster["cluster"]["worker"]) if cluster else 1
    index = cluster["task"]["index"] if cluster else 0
    own = sum(count for count in [count for _, count in pipeline.source.shards][index::workers])
    pipeline.check_workers(workers)  # as the recipe does before training: this worker's shards
    begin = time.perf_counter()
    dataset = pipeline.batches(data.batch_size)
    if cluster:
        dataset = strategy.experimental_distribute_dataset(dataset)
    examples = 0
    for _, targets in dataset:
        for local in strategy.experimental_local_results(targets):
            examples += int(local.shape[0])
    print(json.dumps({"examples": examples, "own_shards_examples": own,
                      "seconds": time.perf_counter() - begin}))


def file_sharding(data_config, pattern, folder):
    """One epoch of the shards read by one process, then by two loopback workers (FILE
    sharding): [(examples, own shards' examples, seconds)] of the one, then of each worker."""
    import socket

    spec = write_spec(data_config, pattern, folder, 0)
    command = [sys.executable, os.path.abspath(__file__), "--sharding-child", spec]
    alone = subprocess.run(command, capture_output=True, text=True, check=True)
    ports = []
    for _ in range(2):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            ports.append(probe.getsockname()[1])
    cluster = {"worker": [f"127.0.0.1:{port}" for port in ports]}
    workers = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                text=True, env=dict(os.environ, TF_CONFIG=json.dumps(
                                    {"cluster": cluster, "task": {"type": "worker",
                                                                  "index": index}})))
               for index in range(2)]
    outputs = [alone.stdout] + [worker.communicate(timeout=1200)[0] for worker in workers]
    return [json.loads(output.strip().splitlines()[-1]) for output in outputs]


def rss_child(spec_path):
    """Child process: two shuffled epochs of a records pipeline; prints peak RSS in MB."""
    spec, data, pipeline = child_pipeline(spec_path)
    steps = pipeline.steps_per_epoch(data.batch_size, True)
    for epoch in range(2):
        for _ in pipeline.batches(data.batch_size, shuffle=True, epoch=epoch,
                                  shuffle_buffer=spec["shuffle_buffer"],
                                  drop_remainder=True).take(steps):
            pass
    print(json.dumps({"examples": pipeline.num_examples,
                      "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


def write_spec(data_config, pattern, folder, shuffle_buffer) -> str:
    """The JSON file a child process reads its data config, shards and buffer from."""
    import dataclasses

    spec = os.path.join(folder, f"spec_{abs(hash((pattern, shuffle_buffer)))}.json")
    with open(spec, "w") as handle:
        json.dump({"data": dataclasses.asdict(data_config), "pattern": pattern,
                   "shuffle_buffer": shuffle_buffer}, handle)
    return spec


def peak_rss(data_config, pattern, folder, shuffle_buffer):
    spec = write_spec(data_config, pattern, folder, shuffle_buffer)
    result = subprocess.run([sys.executable, os.path.abspath(__file__), "--rss-child", spec],
                            capture_output=True, text=True, check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def main():
    args = parse_args()
    if args.rss_child:
        return rss_child(args.rss_child)
    if args.sharding_child:
        return sharding_child(args.sharding_child)
    if args.file_sharding_only:
        return file_sharding_only(args)
    import librosa
    import tensorflow as tf

    from tfmm.data.av_digits import build_av_digits
    from tfmm.data.dataset import ExamplePipeline
    from tfmm.data.manifest import read_manifest_for_config
    from tfmm.data.pack import pack_manifest
    from tfmm.data.record_source import read_records_for_config
    from tfmm.data.records import RecordPipeline
    from tfmm.models.log_mel_spectrogram import LogMelSpectrogram
    from tfmm.preprocessing.multimodal_preprocessor import MultimodalPreprocessor

    started = time.time()
    print(benchlib.machine_line())
    if not os.path.exists(os.path.join(args.data, "audio_digits_train.jsonl")):
        build_av_digits(args.data)
    configs = stage_configs(args)
    folder = tempfile.mkdtemp(prefix="tfmm-bench-records-")
    quiet = lambda line: None  # noqa: E731
    pipelines, loops, patterns = {}, {}, {}
    for modality, config in configs.items():
        data = config.data
        pattern = os.path.join(folder, modality, "train")
        begin = time.perf_counter()
        pack_manifest(data.train_manifest, pattern, args.shards, modalities=data.modalities,
                      audio_sample_rate=data.audio_sample_rate, log=quiet)
        print(f"{modality}: packed {data.train_manifest} into {args.shards} shards in "
              f"{time.perf_counter() - begin:.1f} s")
        patterns[modality] = pattern + "-*"
        preprocessor = MultimodalPreprocessor.from_data_config(data, "minilm")
        manifest = read_manifest_for_config(data.train_manifest, data)
        source = read_records_for_config(patterns[modality], data)
        pipelines[modality] = (ExamplePipeline(manifest, preprocessor, "multiclass", cache=False),
                               RecordPipeline(source, preprocessor, "multiclass", "none"))
        # Same model inputs? The shards' reading order, mapped back to manifest rows by line.
        position = {row.line: index for index, row in enumerate(manifest.rows)}
        order = [position[row.line] for row in source.rows]
        from_manifest = next(iter(pipelines[modality][0].batches(len(order))))[0][modality]
        from_records = next(iter(pipelines[modality][1].batches(len(order))))[0][modality]
        difference = np.abs(np.asarray(from_manifest)[order] - np.asarray(from_records)).max()
        print(f"{modality}: shards give the manifest's model inputs, all {len(order)} rows: "
              f"np.allclose {np.allclose(np.asarray(from_manifest)[order], from_records)}, "
              f"max |difference| {difference:.2e}")
        loops[modality] = [getattr(row, modality) for row in manifest.rows]

    audio = configs["audio"]
    model = audio.model
    log_mel = LogMelSpectrogram(audio.data.audio_sample_rate, model.audio_frame_length,
                                model.audio_frame_step, model.audio_num_mel_bins, dtype="float32")
    fft_length = 1 << (model.audio_frame_length - 1).bit_length()
    basis = librosa.filters.mel(sr=audio.data.audio_sample_rate, n_fft=fft_length,
                                n_mels=model.audio_num_mel_bins, fmin=20.0,
                                fmax=audio.data.audio_sample_rate / 2, htk=True, norm=None)
    batch = audio.data.batch_size

    cpu_rates = {}  # run function -> examples per CPU-second of this process, every call

    def drain(pipeline, with_log_mel=False, passes=1):
        """Examples/s of `passes` unshuffled epochs read through one iterator (its fixed cost,
        building the iterator and its functions, paid once)."""
        dataset = pipeline.batches(batch)
        if with_log_mel:
            dataset = dataset.map(lambda features, target: (log_mel(features["audio"]), target),
                                  num_parallel_calls=tf.data.AUTOTUNE)
        dataset = dataset.repeat(passes) if passes > 1 else dataset

        def run():
            begin, cpu, count = time.perf_counter(), time.process_time(), 0
            for _, targets in dataset:
                count += int(targets.shape[0])
            cpu_rates.setdefault(run, []).append(count / (time.process_time() - cpu))
            return count / (time.perf_counter() - begin)
        return run

    def loop(function, paths):
        def run():
            begin, cpu = time.perf_counter(), time.process_time()
            for path in paths:
                function(path)
            cpu_rates.setdefault(run, []).append(len(paths) / (time.process_time() - cpu))
            return len(paths) / (time.perf_counter() - begin)
        return run

    image_size = configs["image"].data.image_size
    variants = {}
    for modality, with_log_mel in (("audio", True), ("image", False)):
        from_manifest, from_shards = pipelines[modality]
        variants[f"{modality} shards"] = drain(from_shards, with_log_mel)
        variants[f"{modality} shards, one iterator"] = drain(from_shards, with_log_mel,
                                                             STEADY_PASSES)
        variants[f"{modality} manifest"] = drain(from_manifest, with_log_mel)
        variants[f"{modality} manifest, one iterator"] = drain(from_manifest, with_log_mel,
                                                               STEADY_PASSES)
    variants["audio librosa loop"] = loop(
        lambda path: librosa_log_mel(path, audio.data, model, basis), loops["audio"])
    variants["image Pillow loop"] = loop(lambda path: pillow_image(path, image_size),
                                         loops["image"])
    for name in variants:
        if "loop" not in name:
            variants[name]()  # warm up: tracing
    rates = interleave(variants, args.rounds)
    for name, values in rates.items():
        cpu = cpu_rates[variants[name]][-len(values):]  # the warm-up call left out
        print(f"quickstart {name}: {spread(values)} examples/s; per CPU-second of all "
              f"threads {spread(cpu)}")
    for modality, loop_name in (("audio", "audio librosa loop"), ("image", "image Pillow loop")):
        for variant in ("shards", "shards, one iterator", "manifest", "manifest, one iterator"):
            print(ratio_line(f"{'RATIO' if 'shards' in variant else 'ratio'} quickstart "
                             f"{modality} examples/s {variant} / Python loop",
                             paired_ratios(rates[f"{modality} {variant}"], rates[loop_name])))

    # --- the larger set -------------------------------------------------------------------
    for modality, with_log_mel in (("audio", True), ("image", False)):
        data = configs[modality].data
        scaled = larger_manifest(data.train_manifest,
                                 os.path.join(folder, f"scaled_{modality}.jsonl"), args.scale)
        begin = time.perf_counter()
        pack_manifest(scaled, os.path.join(folder, f"scaled_{modality}", "train"), args.shards,
                      modalities=data.modalities, audio_sample_rate=data.audio_sample_rate,
                      log=quiet)
        print(f"larger set: {args.scale} {modality} rows packed into {args.shards} shards in "
              f"{time.perf_counter() - begin:.1f} s")
        preprocessor = MultimodalPreprocessor.from_data_config(data, "minilm")
        scaled_config = type(data)(**dict(data.__dict__, train_manifest=scaled))
        make_records = lambda: RecordPipeline(read_records_for_config(  # noqa: E731
            os.path.join(folder, f"scaled_{modality}", "train-*"), scaled_config),
            preprocessor, "multiclass", "none")
        make_manifest = lambda: ExamplePipeline(read_manifest_for_config(  # noqa: E731
            scaled, scaled_config), preprocessor, "multiclass", cache=False)
        print(f"larger set {modality}, time to the first batch: shards "
              f"{first_batch(make_records, batch):.2f} s, manifest "
              f"{first_batch(make_manifest, batch):.2f} s (reading and validating it included)")
        with open(scaled) as handle:
            sample = [json.loads(line)[modality] for _, line in zip(range(LOOP_SAMPLE), handle)]
        function = ((lambda path: librosa_log_mel(path, data, model, basis))
                    if modality == "audio" else (lambda path: pillow_image(path, image_size)))
        scaled = {"shards": drain(make_records(), with_log_mel),
                  "manifest": drain(make_manifest(), with_log_mel),
                  "Python loop": loop(function, sample)}
        scaled_rates = interleave(scaled, 1)
        print(f"larger set {modality} examples per CPU-second: " + ", ".join(
            f"{name} {cpu_rates[run][-1]:.4g}" for name, run in scaled.items()))
        print(f"larger set {modality} examples/s, one pass of {args.scale}: shards "
              f"{scaled_rates['shards'][0]:.4g}, manifest {scaled_rates['manifest'][0]:.4g}; "
              f"Python loop ({LOOP_SAMPLE} rows) {scaled_rates['Python loop'][0]:.4g}; "
              f"RATIO shards / Python loop "
              f"{scaled_rates['shards'][0] / scaled_rates['Python loop'][0]:.2f}x")

    # --- memory ---------------------------------------------------------------------------
    data = audio.data
    one = peak_rss(data, patterns["audio"], folder, args.shuffle_buffer)
    ten_rows = 10 * one["examples"]
    larger_manifest(data.train_manifest, os.path.join(folder, "ten.jsonl"), ten_rows)
    pack_manifest(os.path.join(folder, "ten.jsonl"), os.path.join(folder, "ten", "train"),
                  args.shards, modalities=data.modalities,
                  audio_sample_rate=data.audio_sample_rate, log=quiet)
    ten = peak_rss(data, os.path.join(folder, "ten", "train-*"), folder, args.shuffle_buffer)
    print(f"peak RSS, two shuffled epochs from shards, data.cache=none, shuffle buffer "
          f"{args.shuffle_buffer}: {one['examples']} "
          f"examples {one['peak_rss_mb']:.0f} MB, {ten['examples']} examples "
          f"{ten['peak_rss_mb']:.0f} MB ({ten['peak_rss_mb'] / one['peak_rss_mb']:.2f}x)")

    # --- FILE sharding over two loopback workers -------------------------------------------
    report_file_sharding(audio.data, os.path.join(folder, "scaled_audio", "train-*"), folder)
    shutil.rmtree(folder, ignore_errors=True)
    print(f"done in {time.time() - started:.0f} s")


def report_file_sharding(data_config, pattern, folder):
    """Runs part 5 on the shards of `pattern` and prints its lines."""
    alone, *workers = file_sharding(data_config, pattern, folder)
    for index, worker in enumerate(workers):
        print(f"FILE sharding, worker {index} of 2: {worker['examples']} examples (its own "
              f"shards hold {worker['own_shards_examples']}) in {worker['seconds']:.1f} s")
    slowest = max(worker["seconds"] for worker in workers)
    print(f"FILE sharding: one epoch of the {alone['examples']} larger-set audio examples, one "
          f"process {alone['seconds']:.1f} s, two workers {slowest:.1f} s (the slower; "
          f"{slowest / alone['seconds']:.2f}x)")


def file_sharding_only(args):
    """`--file-sharding-only`: the larger audio set built and packed as in part 3, then part 5."""
    from tfmm.data.av_digits import build_av_digits
    from tfmm.data.pack import pack_manifest

    started = time.time()
    print(benchlib.machine_line())
    if not os.path.exists(os.path.join(args.data, "audio_digits_train.jsonl")):
        build_av_digits(args.data)
    data = stage_configs(args)["audio"].data
    folder = tempfile.mkdtemp(prefix="tfmm-bench-records-")
    try:
        scaled = larger_manifest(data.train_manifest, os.path.join(folder, "scaled_audio.jsonl"),
                                 args.scale)
        pack_manifest(scaled, os.path.join(folder, "scaled_audio", "train"), args.shards,
                      modalities=data.modalities, audio_sample_rate=data.audio_sample_rate,
                      log=lambda line: None)
        report_file_sharding(data, os.path.join(folder, "scaled_audio", "train-*"), folder)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    print(f"done in {time.time() - started:.0f} s")


if __name__ == "__main__":
    main()
