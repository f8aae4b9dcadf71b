"""Train a tfmm model: `python train.py CONFIG [--set section.key=value ...]`.

Reads the config, validates every manifest row, trains (any tf.distribute strategy, resuming from
the run folder when it holds checkpoints), evaluates on the test manifest and exports the serving
SavedModel. Example, the offline quickstart:

    python train.py configs/av_digits.py

A config with `data.task = "qa"` trains extractive question answering on SQuAD-format data
instead (the same runner, `tfmm.training.runner`, with the recipe `tfmm.recipes.qa`), e.g.
`python train.py configs/xquad_minilm.py`.
"""

import argparse
import importlib.util
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def native_log_filter():
    """tfmm/native_log_filter.py, loaded by path: `import tfmm` imports TensorFlow, whose
    start-up the filter must wrap."""
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "tfmm", "native_log_filter.py")
    spec = importlib.util.spec_from_file_location("tfmm_native_log_filter", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def prepare_tensorflow():
    """Before TensorFlow is imported: its oneDNN CPU kernels on, its start-up lines off screen.

    TensorFlow leaves oneDNN off on x86 CPUs without AVX-512, such as the 2-core AMD EPYC machines
    tfmm is measured on; there it makes ResNet50's training step without XLA several times faster
    (README "Speed": bench/image_audio_step.py). A TF_ENABLE_ONEDNN_OPTS already set wins.
    The start-up lines (CUDA, oneDNN) are filtered by tfmm/native_log_filter.py.
    """
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")
    native_log_filter().quiet_tensorflow_start_up()


def parse_arguments(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("config", help="config file (.py with get_config(), or .json)")
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        metavar="KEY=VALUE", help="override a config field, e.g. training.epochs=3")
    parser.add_argument("--strategy", help="auto | default | mirrored | tpu | multiworker")
    parser.add_argument("--tpu", help="TPU address for --strategy tpu (empty: auto-detect)")
    parser.add_argument("--mixed-precision", help="bfloat16 | float16 | none")
    parser.add_argument("--seed", type=int, help="random seed")
    parser.add_argument("--run-dir", help="run folder (checkpoints, logs, model, reports)")
    parser.add_argument("--stage", action="append",
                        help="run only this stage of a multi-stage config (repeatable)")
    parser.add_argument("--skip-invalid", action="store_true",
                        help="skip invalid manifest rows (counted) instead of stopping")
    parser.add_argument("--allow-config-change", action="store_true",
                        help="resume a run folder whose saved config differs in fields that "
                        "change the computation (the run folder records the change)")
    parser.add_argument("--target-epsilon", type=float, metavar="E",
                        help="DP-SGD: set training.dp_noise_multiplier so the planned steps "
                        "spend epsilon E (at training.dp_delta; tfmm/training/privacy_target.py)")
    return parser.parse_args(argv)


def main(argv=None):
    arguments = parse_arguments(sys.argv[1:] if argv is None else argv)
    overrides = list(arguments.overrides)
    for flag, key in (("strategy", "training.strategy"), ("tpu", "training.tpu"),
                      ("mixed_precision", "training.mixed_precision"), ("seed", "training.seed"),
                      ("run_dir", "training.run_dir")):
        value = getattr(arguments, flag)
        if value is not None:
            overrides.append(f"{key}={value}")
    if arguments.skip_invalid:
        overrides.append("data.skip_invalid=true")

    from tfmm.atomic_write import is_disk_full
    from tfmm.config import load_stages
    from tfmm.errors import UserError

    run_dir = None
    try:
        stages = load_stages(arguments.config, overrides, only=arguments.stage or ())
        if arguments.target_epsilon is not None:
            from tfmm.training.privacy_target import check_target_epsilon, choose_noise_multiplier

            check_target_epsilon(stages, arguments.target_epsilon, arguments.config)
        results = []
        for number, (name, config) in enumerate(stages, start=1):
            run_dir = config.training.run_dir
            if len(stages) > 1:
                print(f"=== stage {number}/{len(stages)}: {name} ({config.training.run_dir})")
            if arguments.target_epsilon is not None and config.training.dp_l2_clip > 0:
                choose_noise_multiplier(config, arguments.target_epsilon, arguments.config)
            results.append((name, config, run_stage(config, arguments.allow_config_change)))
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except Exception as error:  # a full disk outside tfmm's own writes; an undecodable record
        from tfmm.data.records import undecodable_record_message

        if undecodable_record_message(error):
            print(f"error: {undecodable_record_message(error)}", file=sys.stderr)
            return 2
        if not is_disk_full(error):
            raise
        print(f"error: {getattr(error, 'filename', None) or run_dir}: no space left on device",
              file=sys.stderr)
        return 2
    if len(results) > 1:
        print(stage_table(results))
    return 0


def run_stage(config, allow_config_change: bool = False) -> dict:
    """Trains one config (any task; its recipe supplies what differs: `tfmm.recipes`)."""
    from tfmm.training.runner import run_training

    return run_training(config, allow_config_change=allow_config_change)


def stage_table(results) -> str:
    """A Markdown table of each stage's held-out figures (its task's `table_columns`: accuracy,
    macro-F1, AUROC; MAE...; exact match, F1) and its task's score per group, if reported."""
    titles, groups = [], []
    for _, config, result in results:
        titles += [title for _, title in result["task"].table_columns if title not in titles]
        groups += [group for group in _by_group(config, result) if group not in groups]
    header = ["stage", "modalities"] + titles + groups
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    for name, config, result in results:
        task, report = result["task"], result["report"] or {}
        figures = {title: report.get(key) for key, title in task.table_columns}
        by_group = _by_group(config, result)
        cells = [figures.get(title) for title in titles]
        cells += [by_group.get(group, {}).get(task.score_name) for group in groups]
        lines.append(f"| {name} | {' + '.join(config.data.modalities)} | "
                     + " | ".join(_table_cell(value) for value in cells) + " |")
    return "\n".join(lines)


def _by_group(config, result) -> dict:
    """{group: {score name: value, ...}} of a stage's report (empty without a group field)."""
    field = config.data.report_group_field
    return ((result["report"] or {}).get("by_" + field) or {}) if field else {}


def _table_cell(value) -> str:
    if value is None:
        return "-"
    return str(value) if isinstance(value, int) else f"{value:.3f}"


if __name__ == "__main__":
    prepare_tensorflow()
    sys.exit(main())
