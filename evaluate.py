"""Evaluate a trained tfmm model: `python evaluate.py RUN_DIR_OR_MODEL --data MANIFEST`.

RUN_DIR_OR_MODEL is a run folder written by train.py, or a `model.keras` file inside one (its
folder's config.json and run_info.json say how to preprocess and which labels the classes are).
Writes `<name>_report.json` (accuracy, macro-F1, AUROC / MAE, RMSE, Pearson r), a confusion-matrix
or scatter PNG and, when the run has a history, the training-curve PNG.

A question-answering run (data.task "qa") takes a SQuAD v1.1/v2.0 JSON file as --data and writes
`<name>_report.json` (exact match, F1, and the sentence-overlap baseline beside them; HasAns/NoAns
for v2.0) and `<name>_predictions.json` ({question id: answer}, the official format):

    python evaluate.py runs/xquad_minilm --data dev-v1.1.json
"""

import argparse
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def parse_arguments(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("model", help="run folder, or the .keras model file in one")
    parser.add_argument("--data", required=True,
                        help="JSONL manifest to evaluate on (SQuAD JSON for a question-answering "
                        "run)")
    parser.add_argument("--out", help="folder for the report (default: the run folder)")
    parser.add_argument("--name", help="file prefix of the report (default: manifest name)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--skip-invalid", action="store_true",
                        help="skip invalid manifest rows (counted) instead of stopping")
    return parser.parse_args(argv)


def main(argv=None):
    arguments = parse_arguments(sys.argv[1:] if argv is None else argv)
    from tfmm.errors import UserError
    from tfmm.evaluation.evaluate_run import evaluate_run

    try:
        evaluate_run(arguments.model, arguments.data, out_dir=arguments.out,
                     name=arguments.name, batch_size=arguments.batch_size,
                     skip_invalid=arguments.skip_invalid)
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    from train import quiet_tensorflow_start_up  # train.py's imports do not load TensorFlow

    quiet_tensorflow_start_up()
    sys.exit(main())
