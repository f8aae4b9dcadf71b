"""DP-SGD's train step against the plain one: the step-time ratio, XLA on and off.

The model is the quickstart's spoken-digit classifier (`configs/av_digits.py` stage
`audio_encoder`: log-Mel CNN, 1 s at 8 kHz, dense head) with its encoder frozen, as DP-SGD needs
(its BatchNorm would mix examples; tfmm/training/privacy.py): the encoder runs forward, the
projection and head train. Both steps are the `Trainer`'s own (`training.dp_l2_clip` 0 against
1.0 with noise multiplier 1.0), batch 64, on random in-memory inputs; the variants run
interleaved round by round (bench/benchlib.py) and the ratio is per round.

    python bench/dp_step.py            # 5 rounds of 5 steps
    python bench/dp_step.py --quick    # 3 rounds of 2 steps
"""

import collections
import tempfile
import time

import benchlib
from benchlib import interleave, paired_ratios, ratio_line, spread, step_timer

import numpy as np


def main():
    arguments = benchlib.parser(__doc__, rounds=5, quick="3 rounds of 2 steps")
    arguments.add_argument("--config", default=benchlib.repo_path("configs", "av_digits.py"))
    arguments.add_argument("--batch-size", type=int, default=64)
    args = arguments.parse_args()
    rounds, steps = (3, 2) if args.quick else (args.rounds, 5)
    import keras
    import tensorflow as tf

    from tfmm.config import load_stages
    from tfmm.models.multimodal_model import build_multimodal_model
    from tfmm.training.trainer import Trainer

    print(benchlib.machine_line())
    config = dict(load_stages(args.config))["audio_encoder"]
    config.data.batch_size = batch = args.batch_size
    config.model.freeze_audio_encoder = True
    config.training.checkpoint_every_steps = 0
    random = np.random.default_rng(0)
    features = {"audio": tf.constant(random.uniform(-0.5, 0.5, (batch, config.data.audio_length)),
                                     tf.float32),
                "audio_mask": tf.ones((batch,), tf.float32)}
    targets = tf.constant(random.integers(0, 10, batch), tf.int32)
    trainers, first_call = collections.OrderedDict(), {}
    for private in (False, True):
        for jit in (True, False):
            name = f"{'DP-SGD' if private else 'plain'} XLA {'on' if jit else 'off'}"
            keras.utils.set_random_seed(0)
            config.training.jit_compile = "true" if jit else "false"
            config.training.dp_l2_clip = 1.0 if private else 0.0
            config.training.dp_noise_multiplier = 1.0 if private else 0.0
            config.training.run_dir = tempfile.mkdtemp(prefix="tfmm-bench-dp-")
            model = build_multimodal_model(config.validate(), 10)
            trainer = Trainer.from_config(model, config, tf.distribute.get_strategy(), 100,
                                          config.training.run_dir, log=lambda line: None)
            begin = time.perf_counter()
            float(trainer.train_step((features, targets))[0])
            first_call[name] = time.perf_counter() - begin
            trainers[name] = trainer
    parameters = sum(int(np.prod(variable.shape)) for variable in model.trainable_variables)
    print(f"audio classifier, encoder frozen, {parameters} trainable parameters, batch {batch}, "
          f"{steps} steps per variant and round")
    print("first call (trace + compile + one step), seconds: " + ", ".join(
        f"{name} {value:.1f}" for name, value in first_call.items()))

    def runner(trainer):
        return step_timer(trainer, (features, targets), steps)

    results = interleave({name: runner(trainer) for name, trainer in trainers.items()}, rounds)
    for name, times in results.items():
        print(f"step {name}: {spread(times)} s")
    for jit in ("on", "off"):
        print(ratio_line(f"DP-SGD / plain step time, XLA {jit}",
                         paired_ratios(results[f"DP-SGD XLA {jit}"],
                                       results[f"plain XLA {jit}"])))


if __name__ == "__main__":
    main()
