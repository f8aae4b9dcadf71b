"""Compressed models side by side: size, batch-1 latency, batch-32 throughput and test score of a
run's float32 SavedModel, Keras int8 SavedModel, LiteRT float32, dynamic-range int8 and full int8
(and of pruned runs), printed as one Markdown table.

    python bench/compression.py --run runs/av_digits/fused
    python bench/compression.py --run runs/xquad_minilm --test-examples 0
    python bench/compression.py --run runs/av_digits/fused --pruned 50%=runs/av_digits/pruned50

Write the compressed files first with export.py (a LiteRT conversion of the quickstart model
takes minutes on 2 cores); a missing one leaves its row out, or is written first with
--export-missing. Every variant computes on the same preprocessed tensors (the SavedModels'
raw-input preprocessing is the same for all and left out): the Keras variants in a `tf.function`, the
LiteRT ones with the ai-edge-litert interpreter (XNNPACK, its default threads). Latency and
throughput calls are interleaved across the variants, round by round. The score is the run's own:
accuracy on the test manifest (classification), F1 / exact match on the held-out questions (QA).
"""

import os
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib  # noqa: E402


def file_size(path: str) -> int:
    if os.path.isfile(path):
        return os.path.getsize(path)
    return sum(os.path.getsize(os.path.join(folder, name))
               for folder, _, names in os.walk(path) for name in names)


def keras_caller(model):
    import tensorflow as tf

    step = tf.function(lambda features: model(features, training=False), reduce_retracing=True)
    return lambda features: {name: value.numpy() for name, value in step(features).items()}


def test_data(run, examples: int, log):
    """(two feature batches of 32 as numpy dicts for timing, scorer(model) -> "score text") of
    the run's test manifest (manifest tasks, all of it) or held-out questions (QA; the first
    `examples` when > 0)."""
    from tfmm.recipes import recipe_for
    from tfmm.run_folder import FinishedRun

    config = run.config
    recipe = recipe_for(config.data.task)
    if recipe.task.name == "qa":
        from tfmm.evaluation.evaluate_squad import evaluate_span_model

        data = recipe.load_data(config, chief=False, log=log)
        if examples:
            data.eval_examples = data.eval_examples[:examples]
        recipe.pipelines(config, data, log=log)
        batches = data.eval_pipeline.batches(32).take(2)

        def score(model):
            with tempfile.TemporaryDirectory() as folder:
                report = evaluate_span_model(model, data.eval_examples, data.eval_pipeline,
                                             config.qa, folder, batch_size=32, baseline=False)
            return f"F1 {report['f1']:.2f} / EM {report['exact_match']:.2f}"
    else:
        from tfmm.data.manifest import read_manifest_for_config

        manifest = read_manifest_for_config(config.data.test_manifest, config.data,
                                            labels=tuple(run.run_info["labels"]))
        batches = recipe._pipeline(manifest, recipe._preprocessor(config)).batches(32).take(2)

        def score(model):
            with tempfile.TemporaryDirectory() as folder:
                report = recipe.evaluate_file(FinishedRun(run.folder, config, run.run_info, model),
                                              config.data.test_manifest, folder, "bench", 32,
                                              False, log=lambda line: None)
            return f"{recipe.task.score_name} {report[recipe.task.score_name]:.4f}"
    feature_batches = []
    for element in batches:
        features = element[0]
        feature_batches.append({name: value.numpy() for name, value in features.items()})
    return feature_batches, score


def variants(run, pruned, export_missing: bool, log):
    """name -> (path on disk, model object for scoring, caller(features) -> outputs); a
    compressed file that is missing is written (`export_missing`) or its row left out."""
    import keras

    from tfmm.export.compressed_export import default_output, export_compressed
    from tfmm.export.litert_runner import LiteRTModel

    found = {"float32 SavedModel": (run.folder.export_version, run.model,
                                    keras_caller(run.model))}
    def ready(folder, format, quantize):
        path = default_output(folder, format, quantize)
        if not os.path.exists(path):
            if not export_missing:
                log(f"left out: {path} is missing (export.py, or --export-missing)")
                return None
            export_compressed(folder, format, quantize, log=log)
        return path

    keras_int8_path = ready(run.folder.path, "savedmodel", "keras-int8")
    if keras_int8_path:
        quantized = keras.saving.load_model(run.folder.model)
        quantized.quantize("int8")
        found["Keras int8 SavedModel"] = (keras_int8_path, quantized, keras_caller(quantized))
    for quantize, name in (("none", "LiteRT float32"), ("dynamic", "LiteRT dynamic int8"),
                           ("int8", "LiteRT full int8")):
        path = ready(run.folder.path, "litert", quantize)
        if path:
            model = LiteRTModel(path)
            found[name] = (path, model, model.predict)
    for label, folder in pruned:
        from tfmm.run_folder import load_finished_run

        pruned_run = load_finished_run(folder)
        found[f"pruned {label} (Keras)"] = (pruned_run.folder.model, pruned_run.model,
                                            keras_caller(pruned_run.model))
        path = ready(folder, "litert", "int8")
        if path:
            model = LiteRTModel(path)
            found[f"pruned {label} + LiteRT int8"] = (path, model, model.predict)
    return found


def main():
    arguments = benchlib.parser(__doc__)
    arguments.add_argument("--run", default=benchlib.repo_path("runs", "av_digits", "fused"))
    arguments.add_argument("--pruned", action="append", default=[], metavar="LABEL=RUN",
                           help="a pruned run to add (e.g. 80%%=runs/av_digits/pruned80)")
    arguments.add_argument("--export-missing", action="store_true",
                           help="write missing compressed files first (minutes each)")
    arguments.add_argument("--latency-calls", type=int, default=30)
    arguments.add_argument("--throughput-rounds", type=int, default=5)
    arguments.add_argument("--test-examples", type=int, default=0,
                           help="QA: score the first N held-out questions (0: all)")
    arguments = arguments.parse_args()
    from tfmm.run_folder import load_finished_run
    from tfmm.training.pruning import gzipped_size, kernel_sparsity

    started = time.perf_counter()
    print(benchlib.machine_line())
    run = load_finished_run(arguments.run)
    pruned = [item.split("=", 1) for item in arguments.pruned]
    models = variants(run, pruned, arguments.export_missing, print)
    batches, score = test_data(run, arguments.test_examples, print)
    one = {name: value[:1] for name, value in batches[0].items()}
    full = max(batches, key=lambda batch: len(next(iter(batch.values()))))
    for _, _, call in models.values():  # warm up (tracing, interpreter allocation)
        call(one), call(full)
    latency = benchlib.interleave({name: lambda call=call: benchlib.timed(call, one)
                                   for name, (_, _, call) in models.items()},
                                  arguments.latency_calls, log=lambda line: None)
    size = len(next(iter(full.values())))
    throughput = benchlib.interleave(
        {name: lambda call=call: size / benchlib.timed(call, full)
         for name, (_, _, call) in models.items()}, arguments.throughput_rounds,
        log=lambda line: None)
    lines = ["| model | size MiB | gzip MiB | batch 1 ms median / p90 | batch 32 examples/s | "
             "kernel zeros | score |", "|" + " --- |" * 7]
    for name, (path, model, _) in models.items():
        milliseconds = np.array(latency[name]) * 1000
        zeros = (f"{kernel_sparsity(model)['sparsity']:.1%}" if hasattr(model, "weights")
                 else "")
        lines.append(f"| {name} | {file_size(path) / 2**20:.2f} | "
                     f"{gzipped_size(path) / 2**20:.2f} | {np.median(milliseconds):.1f} / "
                     f"{np.percentile(milliseconds, 90):.1f} | "
                     f"{benchlib.median(throughput[name]):.1f} | {zeros} | {score(model)} |")
        print(lines[-1], flush=True)
    print("\n".join(lines))
    print(f"total {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
