"""Share of correctly answered examples whose most important modalities are the ones needed.

Reads the `explain_summary.json` that explain.py writes and, per group (the run's
report_group_field, e.g. question_type), prints the share of correctly answered examples whose
most important modality by removal (and by attribution, when computed) is the one the question
needs besides text (`tfmm.explain.summary.needed_modality_shares`). The quickstart's needs are
the default:

    python scripts/explain_needed_modality.py runs/av_digits/fused/explain/explain_summary.json
"""

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

QUICKSTART_NEEDS = ["written=image", "spoken=audio", "sum=image+audio"]


def parse_arguments(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("summary", help="explain_summary.json written by explain.py")
    parser.add_argument("--group-field", default="question_type")
    parser.add_argument("--needs", nargs="+", default=QUICKSTART_NEEDS, metavar="GROUP=M[+M]",
                        help="the modalities each group needs besides text (default: the "
                        "quickstart's)")
    return parser.parse_args(argv)


def main(argv=None):
    arguments = parse_arguments(sys.argv[1:] if argv is None else argv)
    from tfmm.explain.summary import needed_modality_shares

    needs = {}
    for item in arguments.needs:
        group, _, modalities = item.partition("=")
        if not group or not modalities:
            print(f"error: --needs {item!r}: expected GROUP=MODALITY[+MODALITY]", file=sys.stderr)
            return 2
        needs[group] = tuple(modalities.split("+"))
    with open(arguments.summary) as handle:
        summary = json.load(handle)
    shares = needed_modality_shares(summary["records"], arguments.group_field, needs)
    method = summary["method"]
    print(f"{summary['num_examples']} examples explained (attribution method {method}"
          + (f", {summary['steps']} steps)" if method != "none" else ")"))
    print("| group | needs | correct | removal: top | removal: top besides text "
          "| attribution: top | attribution: top besides text |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for group, row in shares.items():
        cells = [group, " + ".join(needs[group]), str(row["correct"])]
        for method in ("removal", "attribution"):
            for key in ("top", "top_besides_text"):
                value = row.get(method, {}).get(key)
                cells.append("-" if value is None else f"{value:.3f}")
        print("| " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
