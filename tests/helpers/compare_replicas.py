"""Trains one tiny config twice in one process: default strategy (1 replica), then
MirroredStrategy over two logical CPU devices (2 replicas), at the same global batch and seed.

Logical devices must be configured before TensorFlow initialises, hence a separate process.
Usage: python compare_replicas.py CONFIG.json OUT.npz [KEY=VALUE ...] [--repeat-two]
(KEY=VALUE: config overrides; --repeat-two: train the two-replica run a second time as
"two_again", to check that it is reproducible).
Writes OUT.npz with, per run R in ("one", "two"[, "two_again"]): R/<weight path> arrays,
R/loss and R/accuracy (per-epoch means), and R/replicas.
"""

import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def main(config_path, out_path, *arguments):
    import numpy as np
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration(), tf.config.LogicalDeviceConfiguration()])

    from tfmm.config import load_config
    from tfmm.training.runner import run_training

    overrides = [argument for argument in arguments if argument != "--repeat-two"]
    runs = [("one", "default"), ("two", "mirrored")]
    if "--repeat-two" in arguments:
        runs.append(("two_again", "mirrored"))
    arrays = {}
    for name, strategy in runs:
        config = load_config(config_path, [*overrides, f"training.strategy={strategy}",
                                           f"training.run_dir={out_path}.{name}.run"])
        result = run_training(config, log=lambda line: print(line, flush=True))
        model = result["model"]
        arrays[f"{name}/replicas"] = np.asarray(result["replicas"])
        arrays[f"{name}/loss"] = np.asarray(result["history"]["loss"])
        arrays[f"{name}/accuracy"] = np.asarray(result["history"]["accuracy"])
        for variable in model.weights:
            arrays[f"{name}/{variable.path}"] = np.asarray(variable.numpy())
    np.savez(out_path, **arrays)
    print(json.dumps({"done": out_path}))


if __name__ == "__main__":
    main(*sys.argv[1:])
