"""What reading one small file per example costs tf.data, against Python and a TFRecord file.

The quickstart's examples are small files (WAV recordings of 2-37 KB, PNG scans of about 120
bytes). Per file, side by side in rounds:
- "python": `open(path, "rb").read()` in a loop;
- "tf.data read_file": the first step of tfmm's pipelines (`read_file_or_empty` in a parallel
  `map`, batched by 64), nothing decoded;
- "tf.data TFRecord": the same bytes written once into one TFRecord file and read back with
  `tf.data.TFRecordDataset`, batched by 64.
Wall time and the process's CPU time (all threads) per file, and the ratios. Then the fixed cost
of starting an iterator (what every epoch pays: the `Trainer` starts one per epoch) for a
pipeline that only reads the audio files and for one that also decodes them with the
preprocessor's batched WAV decoder (`decode_audio_batch`).

    python bench/file_reads.py
    python bench/file_reads.py --rounds 3
"""

import os
import tempfile
import time

import benchlib
from benchlib import interleave, paired_ratios, ratio_line, spread


def main():
    parser = benchlib.parser(__doc__, rounds=5)
    parser.add_argument("--data", default="data/generated/av_digits",
                        help="AV-digits folder (relative paths: to the repository root)")
    args = parser.parse_args()
    args.data = benchlib.repo_path(args.data)
    import tensorflow as tf

    from tfmm.data.av_digits import build_av_digits
    from tfmm.data.dataset import DECODE_BATCH_SIZE, read_file_or_empty
    from tfmm.data.manifest import read_manifest
    from tfmm.preprocessing.decoding import decode_audio_batch

    print(benchlib.machine_line())
    if not os.path.exists(os.path.join(args.data, "audio_digits_train.jsonl")):
        print(f"writing the AV-digits data set to {args.data}")
        build_av_digits(args.data)
    record_dir = tempfile.mkdtemp(prefix="tfmm-bench-reads-")
    files = {}
    for modality in ("audio", "image"):
        manifest = read_manifest(os.path.join(args.data, f"{modality}_digits_train.jsonl"),
                                 modalities=(modality,))
        paths = [getattr(row, modality) for row in manifest.rows]
        record_file = os.path.join(record_dir, f"{modality}.tfrecord")
        with tf.io.TFRecordWriter(record_file) as writer:
            for path in paths:
                with open(path, "rb") as handle:
                    writer.write(handle.read())
        sizes = [os.path.getsize(path) for path in paths]
        files[modality] = (paths, record_file)
        print(f"{modality}: {len(paths)} files, {min(sizes)}-{max(sizes)} bytes")

    cpu = {}  # variant -> CPU us per file, one per round (the rounds return wall us)

    def timed_per_file(name, run, count):
        """A variant: one pass; returns the wall us per file and keeps the CPU us in `cpu`."""
        def measure():
            wall, used = time.perf_counter(), time.process_time()
            run()
            cpu.setdefault(name, []).append((time.process_time() - used) / count * 1e6)
            return (time.perf_counter() - wall) / count * 1e6
        return measure

    def drain(dataset):
        def run():
            for _ in dataset:
                pass
        return run

    def python_reads(paths):
        def run():
            for path in paths:
                with open(path, "rb") as handle:
                    handle.read()
        return run

    variants = {}
    for modality, (paths, record_file) in files.items():
        read_files = tf.data.Dataset.from_tensor_slices(paths).map(
            read_file_or_empty, num_parallel_calls=tf.data.AUTOTUNE).batch(DECODE_BATCH_SIZE)
        records = tf.data.TFRecordDataset(record_file).batch(DECODE_BATCH_SIZE)
        for name, run in (("python", python_reads(paths)),
                          ("tf.data read_file", drain(read_files)),
                          ("tf.data TFRecord", drain(records))):
            run()  # warm up (page cache, tracing)
            variants[f"{modality} {name}"] = timed_per_file(f"{modality} {name}", run,
                                                            len(paths))
    wall = interleave(variants, args.rounds)
    for name in variants:
        print(f"{name}: wall {spread(wall[name])} us per file, CPU {spread(cpu[name])} us")
    for modality in files:
        for name in ("tf.data read_file", "tf.data TFRecord"):
            print(ratio_line(f"RATIO {modality} CPU per file {name} / python",
                             paired_ratios(cpu[f"{modality} {name}"], cpu[f"{modality} python"])))

    # Starting an iterator: the functions of the pipeline are instantiated (and optimised) again.
    audio_paths = files["audio"][0]
    read_only = tf.data.Dataset.from_tensor_slices(audio_paths).map(
        read_file_or_empty, num_parallel_calls=tf.data.AUTOTUNE).batch(DECODE_BATCH_SIZE)
    decoding = read_only.map(lambda contents: decode_audio_batch(contents, 8000, 8000),
                             num_parallel_calls=tf.data.AUTOTUNE)

    def start(dataset):
        def run():
            begin = time.perf_counter()
            iter(dataset)
            return (time.perf_counter() - begin) * 1e3
        return run

    for dataset in (read_only, decoding):
        next(iter(dataset))  # trace once
    starts = interleave({"read only": start(read_only),
                         "read + decode_audio_batch": start(decoding)}, args.rounds)
    for name, values in starts.items():
        print(f"starting an iterator, audio files {name}: {spread(values)} ms")
    print(benchlib.machine_line())


if __name__ == "__main__":
    main()
