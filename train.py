"""Train a tfmm model: `python train.py CONFIG [--set section.key=value ...]`.

Reads the config, validates every manifest row, trains (any tf.distribute strategy, resuming from
the run folder when it holds checkpoints), evaluates on the test manifest and exports the serving
SavedModel. Example, the offline quickstart:

    python train.py configs/av_digits.py
"""

import argparse
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


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
    parser.add_argument("--skip-invalid", action="store_true",
                        help="skip invalid manifest rows (counted) instead of stopping")
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

    from tfmm.config import load_config
    from tfmm.errors import UserError
    from tfmm.training.run import run_training

    try:
        config = load_config(arguments.config, overrides)
        run_training(config)
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
