"""Every fusion method side by side on the quickstart's shapes: parameters, training step time,
serving latency.

The model is the quickstart's fused stage (`configs/av_digits.py`: MiniLM BERT on 24-token
questions, ResNet50 on the scans, the log-Mel CNN on 8000-sample clips, all three encoders frozen,
`training.cache_frozen_features` on), built by `build_multimodal_model` with each `model.fusion`
(cross_attention in both its modes) and each image size (32x32: ResNet50's map is 1x1, one image
token; 64x64: 2x2, four tokens). Untrained weights (time does not depend on them), random inputs.

- parameters: the whole model's, and those that train (projections, fusion, head);
- step: tfmm's `Trainer.train_step` (tf.function + GradientTape, AdamW, clipping, XLA on) on the
  frozen encoders' cached features (what the quickstart trains: projections + fusion + head),
  batch 64, seconds per step;
- serve: the whole model from preprocessed inputs (token ids, pixels, waveform) through every
  encoder, the fusion and the head, `model(features, training=False)` in a tf.function, batch 1:
  milliseconds per example (the raw-input signature adds the same preprocessing to every method).

After one warm-up call each, variants run interleaved in rounds (the order rotates; benchlib's
house rule); the table gives medians over rounds and each variant's step time relative to pooled attention fusion.

    python bench/fusion_ablation.py
    python bench/fusion_ablation.py --quick   # one image size, fewer rounds
"""

import collections
import tempfile
import time

import benchlib
from benchlib import interleave, median, paired_ratios, step_timer, timed

import numpy as np

METHODS = (("concat", None), ("attention", None), ("gated", None), ("tensor", None),
           ("low_rank", None), ("late", None),
           ("cross_attention", {"cross_attention_mode": "single_stream"}),
           ("cross_attention", {"cross_attention_mode": "co_attention"}))


def parse_args():
    parser = benchlib.parser(__doc__, rounds=5, quick="image size 32 only, 2 rounds")
    parser.add_argument("--config", default="configs/av_digits.py")
    parser.add_argument("--image-sizes", default="32,64")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=5, help="training steps per measurement")
    parser.add_argument("--calls", type=int, default=10, help="serving calls per measurement")
    args = parser.parse_args()
    if args.quick:
        args.image_sizes, args.rounds = "32", 2
    args.config = benchlib.repo_path(args.config)
    return args


def method_name(fusion, options) -> str:
    return f"{fusion}:{options['cross_attention_mode']}" if options else fusion


def random_like(tensor, batch, random):
    shape = (batch,) + tuple(tensor.shape[1:])
    if tensor.dtype == "int32":
        return random.integers(0, 2, shape).astype("int32")
    return random.uniform(0, 1, shape).astype("float32")


def main():
    args = parse_args()
    import keras
    import tensorflow as tf

    from tfmm.config import load_stages
    from tfmm.models.multimodal_model import build_multimodal_model
    from tfmm.models.text_encoder import load_bert_backbone
    from tfmm.training.feature_cache import build_feature_models, frozen_modalities
    from tfmm.training.trainer import Trainer

    started = time.time()
    print(benchlib.machine_line())
    config = dict(load_stages(args.config, only=("fused",)))["fused"]
    config.model.init_encoders_from = ()  # untrained: the time does not depend on the weights
    config.model.image_augmentation = 0.0  # frozen: it would not augment anyway
    tf.get_logger().setLevel("ERROR")  # one traced step per variant is the point, not a warning
    config.data.batch_size = args.batch_size
    config.training.jit_compile, config.training.checkpoint_every_steps = "true", 0
    backbone = load_bert_backbone(config.model.text_preset)
    random = np.random.default_rng(0)
    variants, counts, first_calls = collections.OrderedDict(), {}, {}
    for image_size in [int(size) for size in args.image_sizes.split(",")]:
        config.data.image_size = image_size
        for fusion, options in METHODS:
            name = f"{method_name(fusion, options)} @{image_size}"
            config.model.fusion, config.model.fusion_options = fusion, options
            config.training.run_dir = tempfile.mkdtemp(prefix="tfmm-bench-fusion-")
            keras.utils.set_random_seed(0)
            model = build_multimodal_model(config.validate(), 21, text_backbone=backbone)
            _, top = build_feature_models(model, frozen_modalities(config))
            trainer = Trainer.from_config(top, config, tf.distribute.get_strategy(), 100,
                                          config.training.run_dir, log=lambda line: None)
            cached = {name: tf.constant(random_like(tensor, args.batch_size, random))
                      for name, tensor in top.input.items()}
            cached.update({name: tf.ones_like(value) for name, value in cached.items()
                           if name.endswith("_mask")})  # modality and token masks
            targets = tf.constant(random.integers(0, 21, args.batch_size), tf.int32)
            serve = tf.function(lambda features, model=model: model(features, training=False))
            example = {name: tf.constant(random_like(tensor, 1, random))
                       for name, tensor in model.input.items()}
            example.update({f"{modality}_mask": tf.ones((1,)) for modality in model.modalities})
            example["padding_mask"] = tf.ones_like(example["padding_mask"])
            first_calls[name] = (timed(lambda: float(trainer.train_step((cached, targets))[0])),
                                 timed(lambda: keras.tree.map_structure(np.asarray,
                                                                        serve(example))))
            counts[name] = (model.count_params(), sum(int(np.prod(variable.shape))
                                                      for variable in top.trainable_variables))
            step = step_timer(trainer, (cached, targets), args.steps)

            def serving(serve=serve, example=example):
                begin = time.perf_counter()
                for _ in range(args.calls):
                    keras.tree.map_structure(np.asarray, serve(example))
                return (time.perf_counter() - begin) / args.calls
            variants[name + " step"], variants[name + " serve"] = step, serving
            print(f"built {name}: first step + compile {first_calls[name][0]:.1f} s, first "
                  f"serving call {first_calls[name][1]:.1f} s", flush=True)
    for measure in variants.values():  # warm-up: the first calls after building are slower
        measure()
    results = interleave(variants, args.rounds, log=lambda line: print(line, flush=True))
    print(f"\nfusion methods on the quickstart's shapes (text 24 tokens, audio "
          f"{config.data.audio_length} samples; frozen encoders), {args.rounds} rounds; step = "
          f"Trainer.train_step on cached encoder features, batch {args.batch_size}, XLA on; "
          "serve = whole model from preprocessed inputs, batch 1, tf.function")
    print(f"{'method @ image size':32} {'params (all)':>13} {'trained':>10} {'step ms':>8} "
          f"{'vs attention':>12} {'serve ms/ex':>11}")
    for name in counts:
        reference = f"attention @{name.rsplit('@', 1)[1]}"
        ratio = median(paired_ratios(results[name + " step"], results[reference + " step"]))
        print(f"{name:32} {counts[name][0]:>13,} {counts[name][1]:>10,} "
              f"{1e3 * median(results[name + ' step']):>8.2f} {ratio:>11.2f}x "
              f"{1e3 * median(results[name + ' serve']):>11.1f}")
    print(f"\ntotal {time.time() - started:.0f} s; {benchlib.machine_line()}")


if __name__ == "__main__":
    main()
