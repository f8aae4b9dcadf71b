"""Draws random numbers on two replicas (MirroredStrategy over two logical CPU devices) and
reports whether the replicas' draws differ.

Logical devices must be configured before TensorFlow initialises, hence a separate process.
Usage: python replica_masks.py OUT.json
Writes OUT.json: {"layers": {layer: {"differ": bool, "reproducible": bool, "kept": [r0, r1]}},
"trainer": {"updated_fraction": f, "one_replica_updated_fraction": f} (see `trainer_step`),
"strategy_name": the strategy's name for log lines}.
"""

import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def main(out_path):
    import numpy as np
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration(), tf.config.LogicalDeviceConfiguration()])
    import keras

    from tfmm.models.dropout import ThreefryDropout, threefry_dropout
    from tfmm.models.fusion.modality_dropout import ModalityDropout
    from tfmm.models.random_shift import RandomShift
    from tfmm.models.replica_seeds import replica_random_streams
    from tfmm.training.strategy import describe_strategy

    strategy = tf.distribute.MirroredStrategy(
        [device.name for device in tf.config.list_logical_devices("CPU")])
    assert strategy.num_replicas_in_sync == 2
    inputs = {"dropout": tf.ones((64, 256)), "modality_dropout": tf.ones((256, 3)),
              "random_shift": tf.reshape(tf.range(64 * 16 * 16 * 1, dtype=tf.float32),
                                         (64, 16, 16, 1))}

    def draws(seed):
        """{layer: [replica 0 output, replica 1 output]} for two calls, fresh layers."""
        keras.utils.set_random_seed(seed)
        with strategy.scope():
            layers = {"dropout": keras.layers.Dropout(0.5),
                      "modality_dropout": ModalityDropout(0.5),
                      "random_shift": RandomShift(0.25)}
        results = {}
        for name, layer in layers.items():
            @tf.function
            def step(values):
                with replica_random_streams(layer):
                    return strategy.run(lambda x: layer(x, training=True), args=(values,))
            per_replica = step(inputs[name])
            results[name] = [np.asarray(value) for value in
                             strategy.experimental_local_results(per_replica)]
        return results

    def threefry_seeds(seed):
        """ThreeFry masks run only under XLA, which MirroredStrategy on logical CPU devices
        cannot compile (docs/distributed.md): compare the seeds each replica's ThreefryDropout
        draws its mask from, outside XLA."""
        keras.utils.set_random_seed(seed)
        with strategy.scope():
            values = keras.Input((4,))
            model = keras.Model(values, keras.layers.Dropout(0.5)(values))

        @tf.function
        def step():
            with threefry_dropout(model), replica_random_streams(model):
                layer = model.layers[-1]
                assert isinstance(layer, ThreefryDropout)
                return strategy.run(lambda: tf.cast(layer.seed_generator.next(), tf.int64))
        return [np.asarray(value) for value in
                strategy.experimental_local_results(step())]

    first, again = draws(5), draws(5)
    first["threefry_seed"], again["threefry_seed"] = threefry_seeds(5), threefry_seeds(5)
    report = {"layers": {}}
    for name, (replica0, replica1) in first.items():
        report["layers"][name] = {
            "differ": bool(np.any(replica0 != replica1)),
            "reproducible": all(np.array_equal(a, b) for a, b in zip(first[name], again[name])),
            "kept": [float(np.mean(replica0 != 0)), float(np.mean(replica1 != 0))]}

    report["strategy_name"] = describe_strategy(strategy)
    report["trainer"] = {
        "updated_fraction": trainer_step(strategy, out_path + ".two_replicas.run"),
        "one_replica_updated_fraction": trainer_step(tf.distribute.get_strategy(),
                                                     out_path + ".one_replica.run")}
    with open(out_path, "w") as handle:
        json.dump(report, handle)
    print(json.dumps(report))


def trainer_step(strategy, run_dir):
    """The fraction of weights one Trainer step moves, global batch 2 of one same example.

    The example's Dropout(0.5) mask decides which of 2000 per-feature weights get a gradient,
    and AdamW's first step moves each weight with a gradient by about the learning rate,
    whatever its size. One replica draws a mask per example: about three quarters move. Two
    replicas of one example each must do the same; sharing one mask, only half would move.
    """
    import keras
    import numpy as np
    import tensorflow as tf

    from tfmm.config import Config
    from tfmm.training.trainer import Trainer

    keras.utils.set_random_seed(3)
    with strategy.scope():
        features = keras.Input((2000,), name="x")
        weighted_sum = keras.layers.Dense(1, use_bias=False, kernel_initializer="zeros",
                                          name="per_feature")(
            keras.layers.Dropout(0.5)(features))
        logits = keras.layers.Dense(2, use_bias=False, trainable=False,
                                    kernel_initializer=keras.initializers.Constant([[1.0, -1.0]]))(
            weighted_sum)
        model = keras.Model({"x": features}, {"logits": logits})
    config = Config()
    config.training.jit_compile = "false"
    config.training.weight_decay = 0.0
    config.training.warmup_fraction = 0.0
    config.training.decay = "constant"
    config.training.learning_rate = 1e-3
    trainer = Trainer.from_config(model, config, strategy, 1, run_dir, log=lambda line: None)
    before = model.get_layer("per_feature").kernel.numpy().copy()
    batch = tf.data.Dataset.from_tensors(({"x": tf.ones((2, 2000))}, tf.constant([0, 0])))
    for distributed in strategy.experimental_distribute_dataset(batch):
        trainer.train_step(distributed)
    after = model.get_layer("per_feature").kernel.numpy()
    return float(np.mean(np.abs(after - before) > 1e-4))


if __name__ == "__main__":
    main(sys.argv[1])
