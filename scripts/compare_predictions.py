"""Compares two models on the same test examples from their predictions files.

    python scripts/compare_predictions.py --group-field question_type \
        --a runs/fsdd_seed{0,1,2}/cross_attention/test_predictions.jsonl \
        --b runs/fsdd_seed{0,1,2}/gated/test_predictions.jsonl

(`scripts/fusion_ablation.py ... --run-root runs/fsdd_seedN --set training.seed=N` wrote them.)

Files are paired in order (A's first with B's first: e.g. one pair per seed) and must hold the
same example ids. Prints, for all examples and per group, how many each model gets wrong, how many
only one of them gets wrong, and the two-sided exact McNemar p-value of that split: a large p
means the test examples cannot tell the two models apart. Classification predictions only
(lines with `correct`).
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def parse_arguments(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--a", nargs="+", required=True, metavar="FILE",
                        help="model A's predictions files (NAME_predictions.jsonl)")
    parser.add_argument("--b", nargs="+", required=True, metavar="FILE",
                        help="model B's, in the same order")
    parser.add_argument("--group-field", default="",
                        help="also compare per value of this field (e.g. question_type)")
    return parser.parse_args(argv)


def format_table(groups: dict) -> str:
    """A Markdown table of {group: PairedCounts}, "all" first."""
    lines = ["| examples | n | A wrong | B wrong | only A wrong | only B wrong | McNemar p |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for group in ["all"] + sorted(name for name in groups if name != "all"):
        counts = groups[group]
        lines.append(f"| {group} | {counts.total} | {counts.a_wrong} | {counts.b_wrong} | "
                     f"{counts.only_a_wrong} | {counts.only_b_wrong} | "
                     f"{counts.mcnemar_p_value():.3g} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    arguments = parse_arguments(sys.argv[1:] if argv is None else argv)
    from tfmm.errors import exit_code
    from tfmm.evaluation.paired_comparison import compare_runs

    def work():
        print(format_table(compare_runs(arguments.a, arguments.b, arguments.group_field)))

    return exit_code(work)


if __name__ == "__main__":
    sys.exit(main())
