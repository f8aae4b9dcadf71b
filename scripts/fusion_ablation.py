"""Every fusion method on the same frozen encoders: the accuracy table of README "Fusion methods".

    python scripts/fusion_ablation.py configs/grid_digits.py --run-root runs/grid_digits/fusion
    python scripts/fusion_ablation.py configs/av_digits.py --run-root runs/av_digits/fusion
    python scripts/fusion_ablation.py configs/grid_digits.py --run-root runs/grid_digits/fusion \\
        --table-only          # the Markdown table of the finished runs

Trains the config's `fused` stage once per method (`model.fusion`), one run after another, each
with `python train.py CONFIG --stage fused --run-dir RUN_ROOT/METHOD --set model.fusion=METHOD`
(no export; the stage's encoders start from its `init_encoders_from` runs, which must exist:
train the encoder stages first). A method whose run folder already holds its test report is not
trained again. The runs share one `training.feature_cache_dir` (RUN_ROOT/feature_cache unless
`--feature-cache-dir` says otherwise; "" for none): the frozen encoders' features are computed by
the first pooled method's run and by cross_attention's (token features), and loaded by the
others. The table: test accuracy overall and per `data.report_group_field` value, the
parameters of the fusion layer and head, and those trained (projections, fusion and head; the
frozen encoders' are not).
"""

import argparse
import json
import os
import re
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from tfmm.fusion_config import FUSION_CHOICES as METHODS  # noqa: E402  (after the path)
TRAINED_WEIGHTS = re.compile(r"training ([\d,]+) weights")


def train_method(config: str, method: str, run_dir: str, overrides=(),
                 feature_cache_dir: str = "") -> float:
    """Trains and evaluates the fused stage with one fusion method; returns the wall seconds.

    The run's output goes to `run_dir`/ablation.log; the parameter counts to
    `run_dir`/parameters.json.
    """
    os.makedirs(run_dir, exist_ok=True)
    command = [sys.executable, os.path.join(ROOT, "train.py"), config, "--stage", "fused",
               "--run-dir", run_dir, "--set", f"model.fusion={method}",
               "--set", "training.export=false"]
    if feature_cache_dir:
        command += ["--set", f"training.feature_cache_dir={feature_cache_dir}"]
    for override in overrides:
        command += ["--set", override]
    start = time.monotonic()
    with open(os.path.join(run_dir, "ablation.log"), "w") as log:
        result = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT)
    seconds = time.monotonic() - start
    if result.returncode != 0:
        raise SystemExit(f"error: {method}: train.py exited with {result.returncode}; see "
                         f"{os.path.join(run_dir, 'ablation.log')}")
    write_parameter_counts(run_dir, seconds)
    return seconds


def write_parameter_counts(run_dir: str, seconds=None) -> dict:
    """Writes `run_dir`/parameters.json: the saved model's fusion and head parameters, the
    trained ones (from the run's ablation.log) and the run's wall seconds."""
    import keras

    from tfmm.run_folder import model_file

    model = keras.saving.load_model(model_file(run_dir), compile=False)
    counts = {"fusion": int(model.fusion.count_params()) if model.fusion.weights else 0,
              "head": int(model.head.count_params()), "trained": None,
              "wall_seconds": None if seconds is None else round(seconds, 1)}
    log_path = os.path.join(run_dir, "ablation.log")
    if os.path.exists(log_path):
        with open(log_path) as log:
            trained = TRAINED_WEIGHTS.findall(log.read())
        counts["trained"] = int(trained[-1].replace(",", "")) if trained else None
    with open(os.path.join(run_dir, "parameters.json"), "w") as handle:
        json.dump(counts, handle, indent=2)
    return counts


def table(run_root: str, methods=METHODS) -> str:
    """The Markdown table of the finished runs under `run_root` (one row per method)."""
    from tfmm.run_folder import RunFolder

    rows, groups, group_field = [], [], ""
    for method in methods:
        folder = RunFolder(os.path.join(run_root, method))
        if not os.path.exists(folder.report("test")):
            continue
        with open(folder.report("test")) as handle:
            report = json.load(handle)
        by_group = next((value for key, value in report.items() if key.startswith("by_")), None)
        if by_group:
            group_field = group_field or next(key for key in report if key.startswith("by_"))
            groups = groups or list(by_group)
        counts_path = os.path.join(run_root, method, "parameters.json")
        counts = json.load(open(counts_path)) if os.path.exists(counts_path) else {}
        rows.append((method, report, by_group or {}, counts))
    header = (["fusion", "test accuracy"] + groups
              + ["fusion + head parameters", "trained parameters"])
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    for method, report, by_group, counts in rows:
        fusion_head = (f"{counts['fusion'] + counts['head']:,}" if "fusion" in counts else "-")
        trained = f"{counts['trained']:,}" if counts.get("trained") else "-"
        cells = ([method, f"{report['accuracy']:.3f}"]
                 + [f"{by_group[group]['accuracy']:.3f}" if group in by_group else "-"
                    for group in groups] + [fusion_head, trained])
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("config", help="a recipe with a `fused` stage, e.g. configs/grid_digits.py")
    parser.add_argument("--run-root", required=True, help="one run folder per method inside")
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        help="extra key=value overrides for every run")
    parser.add_argument("--feature-cache-dir", default=None,
                        help="the runs' shared training.feature_cache_dir (default: "
                             "RUN_ROOT/feature_cache; \"\" for none)")
    parser.add_argument("--table-only", action="store_true", help="only print the table")
    args = parser.parse_args(argv)
    if not args.table_only:
        from tfmm.run_folder import RunFolder

        cache_dir = (os.path.join(args.run_root, "feature_cache")
                     if args.feature_cache_dir is None else args.feature_cache_dir)
        for method in args.methods:
            run_dir = os.path.join(args.run_root, method)
            if os.path.exists(RunFolder(run_dir).report("test")):
                print(f"{method}: finished earlier ({run_dir})", flush=True)
                if not os.path.exists(os.path.join(run_dir, "parameters.json")):
                    write_parameter_counts(run_dir)
                continue
            print(f"{method}: training in {run_dir}", flush=True)
            seconds = train_method(args.config, method, run_dir, args.overrides, cache_dir)
            print(f"{method}: done in {seconds / 60:.1f} min", flush=True)
    print(table(args.run_root, args.methods))


if __name__ == "__main__":
    main()
