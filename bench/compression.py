"""Compressed models side by side: size, batch-1 latency, batch-32 throughput and test score of
runs' float32 SavedModel, Keras int8 SavedModel, LiteRT float32, dynamic-range int8, full int8
and 16x8 (int16 activations, int8 weights; when exported) (and of pruned runs, with their Keras
int8), printed as one Markdown table per run.

    python bench/compression.py --run runs/av_digits/fused --run runs/xquad_minilm \
        --pruned 50%=runs/av_digits/fused_pruned50 --pruned 80%=runs/av_digits/fused_pruned80

Write the compressed files first with export.py (a LiteRT conversion of the quickstart model
takes minutes on 2 cores); a missing one leaves its row out, or is written first with
--export-missing. `--pruned` runs belong to the first `--run`. Every variant computes on the same
preprocessed tensors (the SavedModels' raw-input preprocessing is the same for all and left out):
the Keras variants in a `tf.function`, the LiteRT ones with the ai-edge-litert interpreter
(XNNPACK, its default threads). Latency and throughput calls are interleaved across the
variants, round by round.

Scores (the "score from" column says where each comes from): accuracy on the test manifest
(classification) or F1 / exact match on the held-out questions (QA). An evaluate.py report of
the same model and data is read when it exists (`test_report.json` of a run,
`test_model_int8_report.json` of `evaluate.py RUN/litert/model_int8.tflite --data TEST`);
otherwise the bench scores the model and writes `bench_<variant>_report.json` into the run
folder, which later runs read (--rescore scores again). QA scores use the first
--test-examples held-out questions (0: all). gzip sizes are cached the same way
(`bench_gzip_sizes.json`, keyed by file size and time).
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
    """(two feature batches of 32 as numpy dicts for timing, scorer(model) -> report dict) of
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
            return report
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
            return {key: value for key, value in report.items() if not isinstance(value, dict)}
    feature_batches = []
    for element in batches:
        features = element[0]
        feature_batches.append({name: value.numpy() for name, value in features.items()})
    return feature_batches, score


def score_text(report: dict) -> str:
    if "f1" in report:
        return f"F1 {report['f1']:.2f} / EM {report['exact_match']:.2f}"
    return f"accuracy {report['accuracy']:.4f}" if "accuracy" in report else (
        ", ".join(f"{key} {value:.4f}" for key, value in report.items()
                  if isinstance(value, float)))


def variants(run, pruned, export_missing: bool, qa_subset: bool, log):
    """name -> (path on disk, model object for scoring, caller(features) -> outputs, folder
    for the score's report, evaluate.py report names to read first); a compressed file that
    is missing is written (`export_missing`) or its row left out."""
    import keras

    from tfmm.export.compressed_export import default_output, export_compressed
    from tfmm.export.litert_runner import LiteRTModel
    from tfmm.run_folder import load_finished_run

    own = lambda name: [] if qa_subset else [name]  # noqa: E731 (QA reports: all questions)
    float_report = "eval_report.json" if run.config.data.task == "qa" else "test_report.json"
    found = {"float32 SavedModel": (run.folder.export_version, run.model,
                                    keras_caller(run.model), run.folder.path, own(float_report))}

    def ready(folder, format, quantize):
        path = default_output(folder, format, quantize)
        if not os.path.exists(path):
            if not export_missing:
                log(f"left out: {path} is missing (export.py, or --export-missing)")
                return None
            export_compressed(folder, format, quantize, log=log)
        return path

    def keras_int8(name, source):
        path = ready(source.folder.path, "savedmodel", "keras-int8")
        if path:
            quantized = keras.saving.load_model(source.folder.model)
            quantized.quantize("int8")
            found[name] = (path, quantized, keras_caller(quantized), source.folder.path, [])

    keras_int8("Keras int8 SavedModel", run)
    for quantize, name in (("none", "LiteRT float32"), ("dynamic", "LiteRT dynamic int8"),
                           ("int8", "LiteRT full int8"), ("int16x8", "LiteRT 16x8")):
        path = ready(run.folder.path, "litert", quantize)
        if path:
            model = LiteRTModel(path)
            stem = os.path.splitext(os.path.basename(path))[0]
            found[name] = (path, model, model.predict, run.folder.path,
                           own(f"test_{stem}_report.json"))
    for label, folder in pruned:
        pruned_run = load_finished_run(folder)
        found[f"pruned {label} (Keras)"] = (pruned_run.folder.model, pruned_run.model,
                                            keras_caller(pruned_run.model),
                                            pruned_run.folder.path, own("test_report.json"))
        keras_int8(f"pruned {label} + Keras int8", pruned_run)
    return found


def report_score(name, folder, reports, score, model, suffix, rescore, log):
    """(score text, where it came from): an evaluate.py report in `reports`, the bench's own
    report from an earlier run, or `score(model)` now (written for the next run)."""
    import json

    from tfmm.atomic_write import write_json

    slug = "".join(character if character.isalnum() else "_" for character in name.lower())
    own = f"bench_{slug.strip('_')}{suffix}_report.json"
    for report_name in ([] if rescore else list(reports) + [own]):
        path = os.path.join(folder, report_name)
        if os.path.exists(path):
            with open(path) as handle:
                return score_text(json.load(handle)), report_name
    log(f"scoring {name} ...")
    report = score(model)
    write_json(os.path.join(folder, own), report)
    return score_text(report), "bench (now)"


def cached_gzip_size(path: str, cache: dict) -> int:
    """gzip -9 size of a file or folder, remembered by (size, modification time)."""
    from tfmm.training.pruning import gzipped_size

    key = f"{os.path.abspath(path)}|{file_size(path)}|{int(os.path.getmtime(path))}"
    if key not in cache:
        cache[key] = gzipped_size(path)
    return cache[key]


def bench_run(run_path, pruned, arguments, gzip_cache: dict) -> str:
    """The Markdown table of one run's variants."""
    from tfmm.run_folder import load_finished_run
    from tfmm.training.pruning import kernel_sparsity

    run = load_finished_run(run_path)
    qa_subset = run.config.data.task == "qa" and arguments.test_examples > 0
    models = variants(run, pruned, arguments.export_missing, qa_subset, print)
    batches, score = test_data(run, arguments.test_examples if qa_subset else 0, print)
    one = {name: value[:1] for name, value in batches[0].items()}
    full = max(batches, key=lambda batch: len(next(iter(batch.values()))))
    for _, _, call, _, _ in models.values():  # warm up (tracing, interpreter allocation)
        call(one), call(full)
    latency = benchlib.interleave({name: lambda call=call: benchlib.timed(call, one)
                                   for name, (_, _, call, _, _) in models.items()},
                                  arguments.latency_calls, log=lambda line: None)
    size = len(next(iter(full.values())))
    throughput = benchlib.interleave(
        {name: lambda call=call: size / benchlib.timed(call, full)
         for name, (_, _, call, _, _) in models.items()}, arguments.throughput_rounds,
        log=lambda line: None)
    suffix = f"_{arguments.test_examples}q" if qa_subset else ""
    lines = [f"{run.folder.path}:", "| model | size MiB | gzip MiB | batch 1 ms median / p90 | "
             "batch 32 examples/s | kernel zeros (all / trained) | score | score from |",
             "|" + " --- |" * 8]
    for name, (path, model, _, folder, reports) in models.items():
        milliseconds = np.array(latency[name]) * 1000
        zeros = ""
        if hasattr(model, "weights"):
            trained = kernel_sparsity(model, trainable_only=True)  # none once quantized
            zeros = (f"{kernel_sparsity(model)['sparsity']:.1%} / "
                     + (f"{trained['sparsity']:.1%}" if trained["weights"] else "-"))
        text, source = report_score(name, folder, reports, score, model, suffix,
                                    arguments.rescore, print)
        lines.append(f"| {name} | {file_size(path) / 2**20:.2f} | "
                     f"{cached_gzip_size(path, gzip_cache) / 2**20:.2f} | "
                     f"{np.median(milliseconds):.1f} / {np.percentile(milliseconds, 90):.1f} | "
                     f"{benchlib.median(throughput[name]):.1f} | {zeros} | {text} | {source} |")
        print(lines[-1], flush=True)
    return "\n".join(lines)


def main():
    import json

    arguments = benchlib.parser(__doc__)
    arguments.add_argument("--run", action="append", default=[],
                           help="a finished run (repeatable; default: the quickstart's fused "
                                "stage and runs/xquad_minilm)")
    arguments.add_argument("--pruned", action="append", default=[], metavar="LABEL=RUN",
                           help="a pruned run of the first --run (e.g. "
                                "80%%=runs/av_digits/fused_pruned80)")
    arguments.add_argument("--export-missing", action="store_true",
                           help="write missing compressed files first (minutes each)")
    arguments.add_argument("--latency-calls", type=int, default=10)
    arguments.add_argument("--throughput-rounds", type=int, default=3)
    arguments.add_argument("--test-examples", type=int, default=0,
                           help="QA: score the first N held-out questions (0: all)")
    arguments.add_argument("--rescore", action="store_true",
                           help="score every variant now (no report is read)")
    arguments = arguments.parse_args()
    started = time.perf_counter()
    print(benchlib.machine_line())
    runs = arguments.run or [benchlib.repo_path("runs", "av_digits", "fused"),
                             benchlib.repo_path("runs", "xquad_minilm")]
    pruned = [item.split("=", 1) for item in arguments.pruned]
    cache_path = os.path.join(runs[0], "bench_gzip_sizes.json")
    gzip_cache = json.load(open(cache_path)) if os.path.exists(cache_path) else {}
    tables = []
    for index, run_path in enumerate(runs):
        tables.append(bench_run(run_path, pruned if index == 0 else [], arguments, gzip_cache))
        with open(cache_path, "w") as handle:
            json.dump(gzip_cache, handle, indent=1)
    print("\n\n".join(tables))
    print(f"total {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
