"""Explain a trained tfmm model's answers: `python explain.py RUN_DIR_OR_MODEL --data MANIFEST`.

For each example (all rows, `--ids ID ...` or the first `--limit N`) writes `<id>.json` and
`<id>.png` to --out (default: RUN_DIR/explain): the change in the explained class's probability
when each modality is removed through its mask, integrated-gradients attributions (mass per
modality; per token, per pixel, per log-Mel cell), and the attention fusion's weights. Then
`explain_summary.json` (mean importance per class and per the run's report_group_field, every
record) and `explain_summary.png`. See tfmm/explain/ and the README's "Explaining answers".

    python explain.py runs/av_digits/fused --data data/generated/av_digits/test.jsonl --limit 20

A question-answering run takes a SQuAD JSON file as --data: per question, the token attributions
of its answer's start and end logits over question and context (integrated gradients; --method
does not apply).
"""

import argparse
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def parse_arguments(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("model", help="run folder, or the .keras model file in one")
    parser.add_argument("--data", required=True, help="JSONL manifest whose rows to explain")
    parser.add_argument("--ids", nargs="+", metavar="ID", help="explain these row ids")
    parser.add_argument("--limit", type=int, help="explain the first N rows")
    parser.add_argument("--out", help="output folder (default: RUN_DIR/explain)")
    parser.add_argument("--method", default="integrated_gradients",
                        help="integrated_gradients (default) | gradient_x_input | none "
                        "(removal and attention only, no attributions)")
    parser.add_argument("--steps", type=int, default=128,
                        help="integrated gradients' intervals (default 128)")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--no-figures", action="store_true",
                        help="write the records and the summary only, no per-example PNG")
    return parser.parse_args(argv)


def main(argv=None):
    arguments = parse_arguments(sys.argv[1:] if argv is None else argv)
    from tfmm.errors import exit_code
    from tfmm.explain.explain_run import explain_run

    return exit_code(lambda: explain_run(
        arguments.model, arguments.data, ids=arguments.ids, limit=arguments.limit,
        out_dir=arguments.out, steps=arguments.steps, method=arguments.method,
        batch_size=arguments.batch_size, figures=not arguments.no_figures))


if __name__ == "__main__":
    from train import prepare_tensorflow  # train.py's imports do not load TensorFlow

    prepare_tensorflow()
    sys.exit(main())
