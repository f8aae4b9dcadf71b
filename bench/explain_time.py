"""Time per explained example of each explanation method, side by side on one trained run.

Variants, interleaved round by round on the same examples (batch of `--examples`): removal
importance alone (one forward pass per modality, batched), gradient x input (two points),
integrated gradients at 32 and at 128 steps (explain.py's default). Each variant is traced once
before the rounds. Prints seconds per example (median [min-max] over rounds) and the ratios to
removal. No figures are drawn (drawing a PNG is the same for every method).

    python bench/explain_time.py --run runs/av_digits/fused \
        --data data/generated/av_digits/test.jsonl
"""

import dataclasses
import sys
import time

import benchlib


def main(argv=None):
    parser = benchlib.parser(__doc__, rounds=3)
    parser.add_argument("--run", default=benchlib.repo_path("runs", "av_digits", "fused"))
    parser.add_argument("--data", default=benchlib.repo_path("data", "generated", "av_digits",
                                                             "test.jsonl"))
    parser.add_argument("--examples", type=int, default=4, help="examples timed per round")
    arguments = parser.parse_args(sys.argv[1:] if argv is None else argv)

    from tfmm.data.dataset import ExamplePipeline
    from tfmm.data.manifest import read_manifest_for_config
    from tfmm.explain.explain_examples import ExampleExplainer
    from tfmm.preprocessing.multimodal_preprocessor import MultimodalPreprocessor
    from tfmm.run_folder import load_finished_run

    print(benchlib.machine_line())
    run = load_finished_run(arguments.run)
    config, labels = run.config, tuple(run.run_info["labels"])
    manifest = read_manifest_for_config(arguments.data, config.data, labels=labels)
    manifest = dataclasses.replace(manifest, rows=manifest.rows[:arguments.examples])
    preprocessor = MultimodalPreprocessor.from_data_config(config.data, config.model.text_preset)
    features, _ = next(iter(ExamplePipeline(manifest, preprocessor, config.data.task,
                                            cache=False).batches(arguments.examples)))
    settings = {"removal": ("none", 1), "gradient_x_input": ("gradient_x_input", 1),
                "integrated_gradients_32": ("integrated_gradients", 32),
                "integrated_gradients_128": ("integrated_gradients", 128)}
    variants = {}
    for name, (method, steps) in settings.items():
        explainer = ExampleExplainer(run.model, config.data.task, None, steps=steps,
                                     method=method)
        started = time.perf_counter()
        explainer.explain_batch(features, manifest.rows, labels)  # traces
        print(f"{name}: first call (tracing) {time.perf_counter() - started:.1f} s", flush=True)

        def one_round(explainer=explainer):
            return benchlib.timed(explainer.explain_batch, features, manifest.rows,
                                  labels) / arguments.examples

        variants[name] = one_round
    results = benchlib.interleave(variants, arguments.rounds)
    for name, seconds in results.items():
        print(f"{name}: {benchlib.spread(seconds)} s per example")
    for name in list(settings)[1:]:
        print(benchlib.ratio_line(f"{name} / removal",
                                  benchlib.paired_ratios(results[name], results["removal"])))


if __name__ == "__main__":
    main()
