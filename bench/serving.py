"""The exported SavedModel's raw-input signature against the in-process Keras call.

A small text + audio model (MiniLM BERT, log-Mel CNN, attention fusion: the quickstart's fused
stage without the image; untrained, which does not change the time) is exported with
`tfmm.export.serving_model.export_serving_model` and reloaded with `tf.saved_model.load`. At batch
1 and 32, on AV-digits questions and FSDD WAV files:

- SavedModel `serving_default`: raw strings and WAV bytes in, tokenisation + WAV decoding +
  model + softmax/label inside;
- Keras eager: `model(features, training=False)` on tensors already preprocessed;
- Keras tf.function: the same call compiled into a graph (what a Python server would keep);
- the preprocessing alone (`MultimodalPreprocessor` in a tf.function), to split the signature's
  time into preprocessing and model.

Latency: median and 90th percentile of single calls; throughput: examples/second. Variants run
interleaved in rounds; ratios are SavedModel / Keras (latency) per round.

    python bench/serving.py
    python bench/serving.py --quick
"""

import collections
import json
import os
import tempfile
import time

import benchlib
from benchlib import interleave, median, paired_ratios, ratio_line

import numpy as np


def parse_args():
    parser = benchlib.parser(__doc__, rounds=5, quick="3 rounds of 10 calls")
    parser.add_argument("--data", default="data/generated/av_digits",
                        help="AV-digits folder (relative paths: to the repository root)")
    parser.add_argument("--config", default="configs/av_digits.py")
    parser.add_argument("--calls", type=int, default=20, help="calls per variant and round")
    parser.add_argument("--batch-sizes", default="1,32")
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.calls = 3, 10
    args.data, args.config = benchlib.repo_path(args.data), benchlib.repo_path(args.config)
    return args


def percentile(values, q):
    return float(np.percentile(values, q))


def main():
    args = parse_args()
    import keras
    import tensorflow as tf

    from tfmm.config import load_stages
    from tfmm.data.av_digits import build_av_digits
    from tfmm.export.serving_model import export_serving_model
    from tfmm.models.multimodal_model import build_multimodal_model
    from tfmm.preprocessing.multimodal_preprocessor import MultimodalPreprocessor

    started = time.time()
    print(benchlib.machine_line())
    manifest_path = os.path.join(args.data, "test.jsonl")
    if not os.path.exists(manifest_path):
        print(f"writing the AV-digits data set to {args.data}")
        build_av_digits(args.data)
    config = dict(load_stages(args.config))["fused"]
    config.data.modalities = ("text", "audio")
    config.model.init_encoders_from = ()
    labels = [str(value) for value in range(19)] + ["yes", "no"]
    keras.utils.set_random_seed(0)
    model = build_multimodal_model(config, len(labels))
    preprocessor = MultimodalPreprocessor.from_data_config(config.data, config.model.text_preset)
    with open(manifest_path) as handle:
        rows = [json.loads(line) for line in handle]
    texts = [row["text"] for row in rows]
    wavs = []
    for row in rows:
        with open(os.path.join(args.data, row["audio"]), "rb") as handle:
            wavs.append(handle.read())
    preprocessor({"text": tf.constant(texts[:2]), "audio": tf.constant(wavs[:2])})
    export_dir = os.path.join(tempfile.mkdtemp(prefix="tfmm-bench-serving-"), "1")
    export_serving_model(model, preprocessor, "multiclass", labels, export_dir)
    signature = tf.saved_model.load(export_dir).signatures["serving_default"]
    print(f"model: {', '.join(config.data.modalities)}; BERT {config.model.text_preset}, "
          f"{config.data.text_sequence_length} tokens, audio {config.data.audio_length} samples; "
          f"{model.count_params() / 1e6:.1f} M parameters; exported to a temporary folder")

    preprocess = tf.function(lambda text, audio: preprocessor({"text": text, "audio": audio}))
    keras_graph = tf.function(lambda features: model(features, training=False))

    # Same answers?
    raw = {"text": tf.constant(texts[:4]), "audio": tf.constant(wavs[:4])}
    features = preprocess(raw["text"], raw["audio"])
    served = signature(**raw)["probabilities"].numpy()
    direct = tf.nn.softmax(model(features, training=False)["logits"]).numpy()
    print(f"same outputs: max |SavedModel - Keras| probability {np.abs(served - direct).max():.1e}")

    for batch in (int(value) for value in args.batch_sizes.split(",")):
        batches = []
        for start in range(0, args.calls * batch, batch):
            indices = [(start + offset) % len(rows) for offset in range(batch)]
            text = tf.constant([texts[i] for i in indices])
            audio = tf.constant([wavs[i] for i in indices])
            batches.append((text, audio, preprocess(text, audio)))
        latencies = collections.defaultdict(list)

        def variant(name, call):
            def run():
                begin_round = time.perf_counter()
                for text, audio, ready in batches:
                    begin = time.perf_counter()
                    outputs = call(text, audio, ready)
                    tf.nest.map_structure(lambda tensor: tensor.numpy(), outputs)
                    latencies[name].append(time.perf_counter() - begin)
                return len(batches) * batch / (time.perf_counter() - begin_round)
            return run

        variants = collections.OrderedDict([
            ("SavedModel raw", variant("SavedModel raw", lambda text, audio, ready: signature(
                text=text, audio=audio))),
            ("Keras eager", variant("Keras eager", lambda text, audio, ready: model(
                ready, training=False))),
            ("Keras tf.function", variant("Keras tf.function", lambda text, audio, ready:
                                          keras_graph(ready))),
            ("preprocessing only", variant("preprocessing only", lambda text, audio, ready:
                                           preprocess(text, audio))),
        ])
        for run in variants.values():  # warm up: traces, first calls
            run()
        latencies.clear()
        print(f"\n--- batch {batch}: {args.rounds} rounds x {args.calls} calls per variant ---")
        throughput = interleave(variants, args.rounds, log=lambda line: None)
        per_round = {name: [median(values[r * args.calls:(r + 1) * args.calls])
                            for r in range(args.rounds)] for name, values in latencies.items()}
        for name in variants:
            values = np.array(latencies[name]) * 1000
            print(f"{name}: latency median {np.median(values):.2f} ms, p90 "
                  f"{percentile(values, 90):.2f} ms; throughput {median(throughput[name]):.0f} "
                  "examples/s")
        for reference in ("Keras eager", "Keras tf.function"):
            print(ratio_line(f"RATIO batch {batch} latency SavedModel raw / {reference}",
                             paired_ratios(per_round["SavedModel raw"], per_round[reference])))
            print(ratio_line(f"RATIO batch {batch} throughput SavedModel raw / {reference}",
                             paired_ratios(throughput["SavedModel raw"], throughput[reference])))
        share = [pre / full for pre, full in zip(per_round["preprocessing only"],
                                                 per_round["SavedModel raw"])]
        print(f"preprocessing (tokenise + decode WAV) = {median(share):.0%} of the SavedModel "
              f"call (per-round range {min(share):.0%}-{max(share):.0%})")
    print(f"\ntotal {time.time() - started:.0f} s; {benchlib.machine_line()}")


if __name__ == "__main__":
    main()
