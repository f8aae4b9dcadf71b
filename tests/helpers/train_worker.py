"""One worker of a multi-worker test: `run_training` on a config, then the final weights to a file.

Usage: TF_CONFIG=... python train_worker.py CONFIG.json WEIGHTS.npz [--set key=value ...]
Every worker (chief or not) writes WEIGHTS.npz (weight path -> array), so a test can check that
they agree; the run folder itself is written by the chief only.
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def main(argv):
    config_path, weights_path, overrides = argv[0], argv[1], argv[2:]
    overrides = [value for flag, value in zip(overrides[::2], overrides[1::2]) if flag == "--set"]
    import numpy as np

    from tfmm.config import load_config
    from tfmm.errors import UserError
    from tfmm.training.runner import run_training

    try:
        result = run_training(load_config(config_path, overrides),
                              log=lambda line: print(line, flush=True))
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    np.savez(weights_path, replicas=result["replicas"],
             **{variable.path: np.asarray(variable.numpy()) for variable in result["model"].weights})
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
