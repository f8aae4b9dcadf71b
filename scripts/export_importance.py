"""Export a run's SavedModel with a second signature that also returns modality importance.

    python scripts/export_importance.py RUN_DIR EXPORT_DIR

`serving_default` is train.py's (same inputs and outputs); `modality_importance` takes the same
raw inputs and adds `importance_<modality>` (the drop in the predicted class's probability when
the modality is removed through its mask). See tfmm/explain/serving_importance.py.
"""

import argparse
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run", help="finished run folder (a manifest task)")
    parser.add_argument("export_dir", help="SavedModel folder to write")
    arguments = parser.parse_args(sys.argv[1:] if argv is None else argv)
    from tfmm.errors import UserError
    from tfmm.explain.serving_importance import export_with_importance

    try:
        print(export_with_importance(arguments.run, arguments.export_dir))
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
