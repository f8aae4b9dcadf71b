"""ResNet50 and the log-Mel audio encoder: tfmm's training step, float32 vs bfloat16, XLA on vs off.

The models are the quickstart's encoder stages (`configs/av_digits.py`: `image_encoder` =
`build_image_encoder` ResNet50 at 32x32 + dense head; `audio_encoder` = `build_audio_encoder`,
1 s at 8 kHz + dense head), built by `build_multimodal_model`, trained by the `Trainer`'s own step
(tf.function + GradientTape, AdamW, clipping), batch 64, on random in-memory inputs (the input
pipeline's share is `bench/input_pipeline.py`'s). Four variants per model run interleaved, one
compiled step each: float32 / mixed_bfloat16 x XLA on / off; for the audio encoder a fifth, the
same float32 XLA step with keras `MaxPooling2D` in place of tfmm's `MaxPooling2x2` (before/after).

FLOPs: counted by TensorFlow's profiler (`tf.compat.v1.profiler`, float_operation) on the graph
of the forward + backward pass (convolutions, their two backprops, matmuls, biases: 2 FLOPs per
multiply-add; batch norm, pooling and the FFT are not counted). Model FLOPs utilisation = those
FLOPs / step time / the 2048x2048 matmul rate of the same dtype, measured in the same rounds.

    python bench/image_audio_step.py           # both models
    python bench/image_audio_step.py --quick   # fewer rounds and steps
"""

import collections
import tempfile
import time

import benchlib
from benchlib import (interleave, matmul_peak, median, paired_ratios, ratio_line, spread,
                      step_timer)

import numpy as np

VARIANTS = (("float32", True), ("float32", False), ("bfloat16", True), ("bfloat16", False))


def parse_args():
    parser = benchlib.parser(__doc__, rounds=3, quick="2 rounds, fewer steps")
    parser.add_argument("--config", default="configs/av_digits.py")
    parser.add_argument("--models", default="audio,image")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--audio-steps", type=int, default=5)
    parser.add_argument("--image-steps", type=int, default=1)
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.audio_steps, args.image_steps = 2, 3, 1
    args.config = benchlib.repo_path(args.config)
    return args


BEFORE_POOLING = "float32 XLA on, keras MaxPooling2D (before)"


def with_keras_max_pooling(model):
    """A copy of `model` (same weights) whose MaxPooling2x2 layers are keras MaxPooling2D."""
    import keras

    from tfmm.models.pooling import MaxPooling2x2

    def swap(layer):
        if isinstance(layer, MaxPooling2x2):
            return keras.layers.MaxPooling2D(2, padding="same", name=layer.name)
        return layer.__class__.from_config(layer.get_config())

    copy = keras.models.clone_model(model, clone_function=swap, recursive=True)
    copy.set_weights(model.get_weights())
    return copy


def profiler_flops(model, batch_inputs, targets, task="multiclass"):
    """FLOPs of one forward + backward pass, counted by TF's profiler on the traced graph."""
    import tensorflow as tf
    from tensorflow.python.profiler import model_analyzer, option_builder

    from tfmm.tasks import get_task

    def gradients(features, labels):
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(get_task(task).per_example_loss(
                labels, model(features, training=True)))
        return tape.gradient(loss, model.trainable_variables)

    specs = tf.nest.map_structure(lambda t: tf.TensorSpec(t.shape, t.dtype), (batch_inputs, targets))
    graph = tf.function(gradients).get_concrete_function(*specs).graph
    options = option_builder.ProfileOptionBuilder.float_operation()
    options["output"] = "none"
    return float(model_analyzer.profile(graph, options=options).total_float_ops)


def main():
    args = parse_args()
    import keras
    import tensorflow as tf

    from tfmm.config import load_stages
    from tfmm.models.multimodal_model import build_multimodal_model
    from tfmm.training.strategy import set_mixed_precision
    from tfmm.training.trainer import Trainer

    started = time.time()
    print(benchlib.machine_line())
    stages = dict(load_stages(args.config))
    batch = args.batch_size
    peaks = {dtype: matmul_peak(dtype)[0] for dtype in ("float32", "bfloat16")}
    for modality in args.models.split(","):
        config = stages[f"{modality}_encoder"]
        data = config.data
        data.batch_size = batch
        config.training.checkpoint_every_steps = 0
        steps = args.audio_steps if modality == "audio" else args.image_steps
        random = np.random.default_rng(0)
        if modality == "audio":
            inputs = {"audio": random.uniform(-0.5, 0.5, (batch, data.audio_length))}
        else:
            inputs = {"image": random.uniform(0, 255, (batch, data.image_size, data.image_size, 3))}
        features = {name: tf.constant(value, tf.float32) for name, value in inputs.items()}
        features[f"{modality}_mask"] = tf.ones((batch,), tf.float32)
        targets = tf.constant(random.integers(0, 10, batch), tf.int32)
        print(f"\n=== {modality} encoder ({'ResNet50 ' + str(data.image_size) + 'x' + str(data.image_size) if modality == 'image' else 'log-Mel CNN, ' + str(data.audio_length) + ' samples'}), "
              f"batch {batch}, {steps} step(s) per variant and round ===")

        trainers, flops, compile_seconds = {}, {}, {}
        for dtype, jit in VARIANTS:
            name = f"{dtype} XLA {'on' if jit else 'off'}"
            set_mixed_precision("bfloat16" if dtype == "bfloat16" else "none")
            keras.utils.set_random_seed(0)
            config.training.jit_compile = "true" if jit else "false"
            config.training.mixed_precision = "bfloat16" if dtype == "bfloat16" else "none"
            config.training.run_dir = tempfile.mkdtemp(prefix="tfmm-bench-step-")
            model = build_multimodal_model(config, 10)
            trainer = Trainer.from_config(model, config, tf.distribute.get_strategy(), 100,
                              config.training.run_dir, log=lambda line: None)
            if dtype == "float32" and jit:
                flops["float32"] = profiler_flops(model, features, targets)
            begin = time.perf_counter()
            float(trainer.train_step((features, targets))[0])
            compile_seconds[name] = time.perf_counter() - begin
            trainers[name] = (trainer, dtype)
        if modality == "audio":
            # Before/after tfmm's MaxPooling2x2 (XLA's CPU gradient of MaxPooling2D is slow).
            set_mixed_precision("none")
            config.training.jit_compile, config.training.mixed_precision = "true", "none"
            config.training.run_dir = tempfile.mkdtemp(prefix="tfmm-bench-step-")
            name = BEFORE_POOLING
            trainer = Trainer.from_config(with_keras_max_pooling(trainers["float32 XLA on"][0].model), config,
                              tf.distribute.get_strategy(), 100, config.training.run_dir,
                              log=lambda line: None)
            begin = time.perf_counter()
            float(trainer.train_step((features, targets))[0])
            compile_seconds[name] = time.perf_counter() - begin
            trainers[name] = (trainer, "float32")
        set_mixed_precision("none")
        print(f"FLOPs per training step (TF profiler, fwd + bwd): {flops['float32'] / 1e9:.1f} "
              "GFLOP")
        print("first call (trace + compile + one step), seconds: " + ", ".join(
            f"{name} {value:.0f}" for name, value in compile_seconds.items()))

        def runner(trainer):
            return step_timer(trainer, (features, targets), steps)

        variants = collections.OrderedDict((name, runner(trainer))
                                           for name, (trainer, _) in trainers.items())
        variants["peak float32"] = peaks["float32"]
        variants["peak bfloat16"] = peaks["bfloat16"]
        results = interleave(variants, args.rounds)
        reference = results["float32 XLA on"]
        for name, (_, dtype) in trainers.items():
            times = results[name]
            mfu = [flops["float32"] / seconds / (peak * 1e9)
                   for seconds, peak in zip(times, results[f"peak {dtype}"])]
            speed = paired_ratios(reference, times)
            print(f"step {name}: {spread(times)} s; speed vs float32 XLA on "
                  f"{median(speed):.2f}x [{min(speed):.2f}-{max(speed):.2f}]; MFU "
                  f"{median(mfu):.1%} of the {dtype} matmul peak")
        for dtype in ("float32", "bfloat16"):
            print(ratio_line(f"RATIO {modality} {dtype} XLA on / off (step speed)", paired_ratios(
                results[f"{dtype} XLA off"], results[f"{dtype} XLA on"])))
        for jit in ("on", "off"):
            print(ratio_line(f"RATIO {modality} XLA {jit} bfloat16 / float32 (step speed)",
                             paired_ratios(results[f"float32 XLA {jit}"],
                                           results[f"bfloat16 XLA {jit}"])))
        if BEFORE_POOLING in results:
            print(ratio_line(f"RATIO {modality} float32 XLA on, step speed with tfmm's MaxPooling2x2"
                             " / with keras MaxPooling2D", paired_ratios(
                                 results[BEFORE_POOLING], results["float32 XLA on"])))
        print(f"matmul peak GFLOP/s: float32 {spread(results['peak float32'])}, bfloat16 "
              f"{spread(results['peak bfloat16'])}")
        del trainers
        keras.backend.clear_session()
    print(f"\ntotal {time.time() - started:.0f} s; {benchlib.machine_line()}")


if __name__ == "__main__":
    main()
