"""Trains the tiny config in float16 and bfloat16 on one or two replicas, and checks that a
float16 overflow on one replica only skips the step on every replica.

Two logical CPU devices must be configured before TensorFlow initialises, and the mixed
precision policy is global: hence a separate process. The overflow check runs in a process of
its own (MODE "overflow"): a second MirroredStrategy in one process reuses the first one's
collective keys, which fails for a model of other shapes.
Usage: python mixed_precision_steps.py CONFIG.json OUT.json REPLICAS MODE
MODE "train" writes OUT.json: {"runs": {"<precision>_clip<norm>": {"loss": [per epoch],
"replicas": n}}}; MODE "overflow": {"overflow_clip<norm>": {"loss_finite": bool,
"weights_changed": bool, "weights_finite": bool, "loss_scale": [before, after]}}.
"""

import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def overflow_step(strategy, out_path, replicas, clip_norm):
    """One float16 step whose last example (on the last replica) overflows."""
    import keras
    import numpy as np
    import tensorflow as tf

    from tfmm.config import Config
    from tfmm.training.strategy import set_mixed_precision
    from tfmm.training.trainer import Trainer

    set_mixed_precision("float16")
    keras.utils.set_random_seed(1)
    with strategy.scope():
        features = keras.Input((16,), name="x")
        hidden = keras.layers.Dense(16, activation="relu")(features)
        logits = keras.layers.Dense(2, dtype="float32")(hidden)
        model = keras.Model({"x": features}, {"logits": logits})
    config = Config()
    config.training.jit_compile = "false"
    config.training.clip_norm = clip_norm
    config.training.mixed_precision = "float16"
    trainer = Trainer.from_config(model, config, strategy, 1, f"{out_path}.overflow{clip_norm:g}.run",
                      log=lambda line: None)
    before = [weight.numpy().copy() for weight in model.trainable_weights]
    scale_before = float(trainer.optimizer.dynamic_scale.numpy())
    values = np.ones((2 * replicas, 16), np.float32)
    values[-1] = 60000.0  # float16's largest value is 65504: the last replica overflows
    batch = tf.data.Dataset.from_tensors(({"x": values}, np.zeros(2 * replicas, np.int64)))
    for distributed in strategy.experimental_distribute_dataset(batch):
        loss, _ = trainer.train_step(distributed)
    after = [weight.numpy() for weight in model.trainable_weights]
    set_mixed_precision("none")
    return {"loss_finite": bool(np.isfinite(float(loss))),
            "weights_changed": any(not np.array_equal(a, b) for a, b in zip(before, after)),
            "weights_finite": all(np.all(np.isfinite(weight)) for weight in after),
            "loss_scale": [scale_before, float(trainer.optimizer.dynamic_scale.numpy())]}


def main(config_path, out_path, replicas, mode):
    import tensorflow as tf

    replicas = int(replicas)
    if replicas > 1:
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration() for _ in range(replicas)])

    from tfmm.config import load_config
    from tfmm.training.runner import run_training
    from tfmm.training.strategy import create_strategy

    strategy_name = "mirrored" if replicas > 1 else "default"
    if mode == "overflow":
        strategy = create_strategy(strategy_name)
        report = {f"overflow_clip{clip_norm:g}": overflow_step(strategy, out_path, replicas,
                                                               clip_norm)
                  for clip_norm in (0.0, 1.0)}
        with open(out_path, "w") as handle:
            json.dump(report, handle)
        print(json.dumps(report))
        return
    report = {"runs": {}}
    for precision, clip_norm in (("float16", 0.0), ("bfloat16", 1.0)):
        name = f"{precision}_clip{clip_norm:g}"
        config = load_config(config_path, [f"training.mixed_precision={precision}",
                                           f"training.clip_norm={clip_norm}",
                                           f"training.strategy={strategy_name}",
                                           f"training.run_dir={out_path}.{name}.run"])
        result = run_training(config, log=lambda line: print(line, flush=True))
        report["runs"][name] = {"loss": result["history"]["loss"],
                                "replicas": result["replicas"]}
    with open(out_path, "w") as handle:
        json.dump(report, handle)
    print(json.dumps(report))


if __name__ == "__main__":
    main(*sys.argv[1:5])
