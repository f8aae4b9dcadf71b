"""Runs DP-SGD steps on one replica (default strategy) and on two (MirroredStrategy over two
logical CPU devices, XLA off as DESIGN.md requires there) from the same weights, the same global
batch and the same noise key, and on one replica with another key; prints the weights of the
three as JSON lists.

Logical devices must be configured before TensorFlow initialises, hence a separate process.
Usage: python dp_replicas.py RUN_FOLDER
"""

import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def build_model():
    import keras

    keras.utils.set_random_seed(11)
    inputs = keras.Input((6,), name="x")
    hidden = keras.layers.Dense(12, activation="tanh")(inputs)
    return keras.Model({"x": inputs}, {"logits": keras.layers.Dense(3)(hidden)})


def run(strategy, run_dir, noise_key=(123456789, -987654321), steps=3):
    import numpy as np
    import tensorflow as tf

    from tfmm.config import Config
    from tfmm.training.trainer import Trainer

    config = Config()
    config.data.batch_size = 8
    config.training.jit_compile = "false"
    config.training.dp_l2_clip = 0.3  # below most example norms: clipping acts
    config.training.dp_noise_multiplier = 1.5
    config.training.dp_microbatch_size = 2
    with strategy.scope():
        model = build_model()
        trainer = Trainer.from_config(model, config, strategy, steps, run_dir,
                                      log=lambda line: None)
        trainer.private.noise_key.assign(noise_key)
    generator = np.random.default_rng(5)
    features = generator.normal(size=(8, 6)).astype("float32") * 3
    labels = np.array([0, 1, 2, 0, 1, 2, 0, 1])
    dataset = tf.data.Dataset.from_tensors(({"x": features}, labels)).repeat(steps)
    for batch in strategy.experimental_distribute_dataset(dataset):
        trainer.train_step(batch)
    return [variable.numpy().tolist() for variable in model.trainable_variables]


def main(run_dir):
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration(), tf.config.LogicalDeviceConfiguration()])
    one = run(tf.distribute.get_strategy(), os.path.join(run_dir, "one"))
    mirrored = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    assert mirrored.num_replicas_in_sync == 2
    two = run(mirrored, os.path.join(run_dir, "two"))
    other_key = run(tf.distribute.get_strategy(), os.path.join(run_dir, "other"), (1, 2))
    print(json.dumps({"one": one, "two": two, "one_other_key": other_key}))


if __name__ == "__main__":
    main(*sys.argv[1:])
